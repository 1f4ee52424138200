using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>Query heads per decode work item: enough work per item to amortise the scheduling, few enough to spread R·H over threads.</summary>
    private const int DecodeBlockHeads = 4;

    public void KvCacheWrite(Tensor<float> keyCache, Tensor<float> valueCache, Tensor<float> key, Tensor<float> value,
        Tensor<int> sourceRows, Tensor<int> slots, Tensor<int> positions)
    {
        var shape = KvCacheValidation.Write(keyCache, valueCache, key, value, sourceRows, slots, positions);
        CpuBuffer<float> kc = Data(keyCache, nameof(keyCache));       // (S, L, KVH, D)
        CpuBuffer<float> vc = Data(valueCache, nameof(valueCache));   // (S, L, KVH, D)
        CpuBuffer<float> k = Data(key, nameof(key));                  // (M, KVH, D)
        CpuBuffer<float> v = Data(value, nameof(value));              // (M, KVH, D)
        CpuBuffer<int> rows = Data(sourceRows, nameof(sourceRows));   // (W)
        CpuBuffer<int> dst = Data(slots, nameof(slots));              // (W)
        CpuBuffer<int> at = Data(positions, nameof(positions));       // (W)
        KvCacheValidation.WriteIndices(rows, dst, at, shape);
        int row = shape.KVH * shape.D, l = shape.L;

        // Writes target distinct cells (validated), so any split over threads gives the same caches.
        Parallel.For(0, shape.W, Device.Parallelism, w =>
        {
            long from = (long)rows[w] * row, to = ((long)dst[w] * l + at[w]) * row;
            k.AsSpan((int)from, row).CopyTo(kc.AsSpan((int)to, row));
            v.AsSpan((int)from, row).CopyTo(vc.AsSpan((int)to, row));
        });
    }

    public void AttentionDecode(Tensor<float> output, Tensor<float> query, Tensor<float> keyCache, Tensor<float> valueCache,
        Tensor<int> slots, Tensor<int> lengths, float scale)
    {
        var shape = KvCacheValidation.Decode(output, query, keyCache, valueCache, slots, lengths, scale);
        CpuBuffer<float> o = Data(output, nameof(output));            // (R, H, D)
        CpuBuffer<float> q = Data(query, nameof(query));              // (R, H, D)
        CpuBuffer<float> kc = Data(keyCache, nameof(keyCache));       // (S, L, KVH, D)
        CpuBuffer<float> vc = Data(valueCache, nameof(valueCache));   // (S, L, KVH, D)
        CpuBuffer<int> slot = Data(slots, nameof(slots));             // (R)
        CpuBuffer<int> len = Data(lengths, nameof(lengths));          // (R)
        int longest = KvCacheValidation.DecodeIndices(slot, len, shape);
        var (r, h, kvh, d, _, l) = shape;
        int group = h / kvh, headBlocks = (h + DecodeBlockHeads - 1) / DecodeBlockHeads;

        // Work item (row, block of query heads); every (row, head) is computed by one thread in a
        // fixed order, the same two-pass softmax as AttentionForward: results do not depend on the thread count.
        Parallel.For(0, r * headBlocks, Device.Parallelism, () => new float[longest], (n, _, scores) =>
        {
            int i = n / headBlocks, firstHead = (n - i * headBlocks) * DecodeBlockHeads;
            int keys = len[i];
            long slotStart = (long)slot[i] * l * kvh; // first (position, kv head) row of the slot
            var s = scores.AsSpan(0, keys); // (keys) scores, then unnormalised probabilities
            for (int head = firstHead; head < Math.Min(h, firstHead + DecodeBlockHeads); head++)
            {
                int kvHead = head / group;
                var qi = q.AsSpan((i * h + head) * d, d); // (D)
                for (int t = 0; t < keys; t++)
                    s[t] = TensorPrimitives.Dot(qi, kc.AsSpan((int)((slotStart + (long)t * kvh + kvHead) * d), d));
                TensorPrimitives.Multiply(s, scale, s);
                float max = TensorPrimitives.Max(s);
                TensorPrimitives.Subtract(s, max, s);
                TensorPrimitives.Exp(s, s);
                float sum = TensorPrimitives.Sum(s);

                var oi = o.AsSpan((i * h + head) * d, d); // (D)
                oi.Clear();
                for (int t = 0; t < keys; t++)
                    TensorPrimitives.MultiplyAdd(vc.AsSpan((int)((slotStart + (long)t * kvh + kvHead) * d), d), s[t], oi, oi);
                TensorPrimitives.Multiply(oi, 1f / sum, oi);
            }
            return scores;
        }, _ => { });
    }
}

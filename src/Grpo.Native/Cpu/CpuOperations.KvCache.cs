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

    public void SplitIntoKvCache(Tensor<float> qkv, Tensor<float>? bias, Tensor<float> query, Tensor<float> keyCache,
        Tensor<float> valueCache, Tensor<int> slots, Tensor<int> positions, RotaryEmbedding? rope, HeadNorms? headNorms = null)
    {
        var shape = KvCacheValidation.SplitIntoCache(qkv, bias, query, keyCache, valueCache, slots, positions, rope, headNorms);
        CpuBuffer<float> fused = Data(qkv, nameof(qkv));                                // (R, H·D + 2·KVH·D)
        CpuBuffer<float>? columnBias = bias is null ? null : Data(bias, nameof(bias));  // (H·D + 2·KVH·D)
        CpuBuffer<float> q = Data(query, nameof(query));                                // (R, H, D)
        CpuBuffer<float> kc = Data(keyCache, nameof(keyCache));                         // (S, L, KVH, D)
        CpuBuffer<float> vc = Data(valueCache, nameof(valueCache));                     // (S, L, KVH, D)
        CpuBuffer<int> slot = Data(slots, nameof(slots));                               // (R)
        CpuBuffer<int> pos = Data(positions, nameof(positions));                        // (R)
        int largest = KvCacheValidation.SplitIntoCacheIndices(slot, pos, shape, rope is not null);
        float[]? cosSin = rope is { } angles ? RopeTableCovering(angles.Theta, shape.D, angles.Scaling, largest) : null; // (P, D)
        CpuBuffer<float>? queryNorm = headNorms is not { } norms ? null : Data(norms.QueryWeight, "headNorms.QueryWeight"); // (D)
        CpuBuffer<float>? keyNorm = headNorms is not { } keyNorms ? null : Data(keyNorms.KeyWeight, "headNorms.KeyWeight");       // (D)
        var (r, h, kvh, d, _, l) = shape;
        int width = shape.Width, half = d / 2;

        // Row by row, each value through the same fp32 steps as SplitColumns, (RmsNormForward of each head,) Rope and
        // KvCacheWrite: the bias added (or the value copied) into its destination, then q and k normalised and rotated in
        // place there. Rows write distinct cells.
        Parallel.For(0, r, Device.Parallelism, i =>
        {
            ReadOnlySpan<float> row = fused.AsSpan(i * width, width);
            long cell = ((long)slot[i] * l + pos[i]) * kvh * d;
            Span<float> queryRow = q.AsSpan(i * h * d, h * d), keyRow = kc.AsSpan((int)cell, kvh * d), valueRow = vc.AsSpan((int)cell, kvh * d);
            SplitRow(row, columnBias is { } b ? b : default, queryRow, keyRow, valueRow);
            if (headNorms is { } rowNorms)
            {
                for (int head = 0; head < h; head++)
                    RmsNormRow(queryRow.Slice(head * d, d), queryNorm!.Value, queryRow.Slice(head * d, d), rowNorms.Epsilon);
                for (int head = 0; head < kvh; head++)
                    RmsNormRow(keyRow.Slice(head * d, d), keyNorm!.Value, keyRow.Slice(head * d, d), rowNorms.Epsilon);
            }
            if (cosSin is null) return;
            var cos = cosSin.AsSpan(pos[i] * d, half);        // (D/2)
            var sin = cosSin.AsSpan(pos[i] * d + half, half); // (D/2)
            for (int head = 0; head < h; head++)
                RotatePairs(queryRow.Slice(head * d, half), queryRow.Slice(head * d + half, half), cos, sin, inverse: false);
            for (int head = 0; head < kvh; head++)
                RotatePairs(keyRow.Slice(head * d, half), keyRow.Slice(head * d + half, half), cos, sin, inverse: false);
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

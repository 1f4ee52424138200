using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>Rows per attention work item: small enough to balance the causal triangle over threads.</summary>
    private const int AttentionBlockRows = 16;

    /// <summary>
    /// One work item: rows [First, End) of the sequence [SeqStart, SeqEnd) for one head (a query head
    /// for the forward and dQ, a kv head for dK/dV).
    /// </summary>
    private readonly record struct AttentionBlock(int SeqStart, int SeqEnd, int Head, int First, int End);

    /// <summary>Per-thread scratch: scores of one causal prefix and three D-length accumulators.</summary>
    private sealed class AttentionScratch(int longest, int d)
    {
        public readonly float[] Scores = new float[longest]; // (L) scores, then probabilities or dS
        public readonly float[] A = new float[d];            // (D)
        public readonly float[] B = new float[d];            // (D)
    }

    public void AttentionForward(Tensor<float> output, Tensor<float> logSumExp,
        Tensor<float> query, Tensor<float> key, Tensor<float> value, Tensor<int> seqStarts, float scale)
    {
        var (m, h, kvh, d, _) = AttentionValidation.Forward(output, logSumExp, query, key, value, seqStarts, scale);
        CpuBuffer<float> o = Data(output, nameof(output));          // (M, H, D)
        CpuBuffer<float> lse = Data(logSumExp, nameof(logSumExp));  // (M, H)
        CpuBuffer<float> q = Data(query, nameof(query));            // (M, H, D)
        CpuBuffer<float> k = Data(key, nameof(key));                // (M, KVH, D)
        CpuBuffer<float> v = Data(value, nameof(value));            // (M, KVH, D)
        CpuBuffer<int> starts = Data(seqStarts, nameof(seqStarts)); // (B+1)
        int longest = AttentionValidation.SeqStarts(starts, m);
        int group = h / kvh;

        var blocks = AttentionBlocks(starts, h);
        // Every (row, head) is computed by one thread in a fixed order: the result does not depend on the thread count.
        Parallel.For(0, blocks.Length, Device.Parallelism, () => new AttentionScratch(longest, d), (n, _, scratch) =>
        {
            var block = blocks[n];
            int head = block.Head, kvHead = head / group;
            for (int i = block.First; i < block.End; i++)
            {
                int keys = i - block.SeqStart + 1;
                var scores = scratch.Scores.AsSpan(0, keys); // (keys) over the causal prefix of row i
                var qi = q.AsSpan((i * h + head) * d, d);     // (D)
                for (int t = 0; t < keys; t++)
                    scores[t] = TensorPrimitives.Dot(qi, k.AsSpan(((block.SeqStart + t) * kvh + kvHead) * d, d));
                TensorPrimitives.Multiply(scores, scale, scores);
                float max = TensorPrimitives.Max(scores);
                TensorPrimitives.Subtract(scores, max, scores);
                TensorPrimitives.Exp(scores, scores);
                float sum = TensorPrimitives.Sum(scores);

                var oi = o.AsSpan((i * h + head) * d, d); // (D)
                oi.Clear();
                for (int t = 0; t < keys; t++)
                    TensorPrimitives.MultiplyAdd(v.AsSpan(((block.SeqStart + t) * kvh + kvHead) * d, d), scores[t], oi, oi);
                TensorPrimitives.Multiply(oi, 1f / sum, oi);
                lse[i * h + head] = max + MathF.Log(sum);
            }
            return scratch;
        }, _ => { });
    }

    public void AttentionBackward(Tensor<float> dQuery, Tensor<float> dKey, Tensor<float> dValue,
        Tensor<float> dOutput, Tensor<float> query, Tensor<float> key, Tensor<float> value,
        Tensor<float> output, Tensor<float> logSumExp, Tensor<int> seqStarts, float scale)
    {
        var (m, h, kvh, d, _) = AttentionValidation.Backward(dQuery, dKey, dValue, dOutput, query, key, value,
            output, logSumExp, seqStarts, scale);
        CpuBuffer<float> dq = Data(dQuery, nameof(dQuery));         // (M, H, D)
        CpuBuffer<float> dk = Data(dKey, nameof(dKey));             // (M, KVH, D)
        CpuBuffer<float> dv = Data(dValue, nameof(dValue));         // (M, KVH, D)
        CpuBuffer<float> dO = Data(dOutput, nameof(dOutput));       // (M, H, D)
        CpuBuffer<float> q = Data(query, nameof(query));            // (M, H, D)
        CpuBuffer<float> k = Data(key, nameof(key));                // (M, KVH, D)
        CpuBuffer<float> v = Data(value, nameof(value));            // (M, KVH, D)
        CpuBuffer<float> o = Data(output, nameof(output));          // (M, H, D)
        CpuBuffer<float> lse = Data(logSumExp, nameof(logSumExp));  // (M, H)
        CpuBuffer<int> starts = Data(seqStarts, nameof(seqStarts)); // (B+1)
        int longest = AttentionValidation.SeqStarts(starts, m);
        int group = h / kvh;
        var delta = new float[m * h]; // (M, H) D_i = dO_i·O_i, needed by every key row of the prefix

        // Pass 1, per query row (parallel over sequence, query head, row block): D_i and dQ_i += scale Σ_j dS_ij k_j.
        var queryBlocks = AttentionBlocks(starts, h);
        Parallel.For(0, queryBlocks.Length, Device.Parallelism, () => new AttentionScratch(longest, d), (n, _, scratch) =>
        {
            var block = queryBlocks[n];
            int head = block.Head, kvHead = head / group;
            for (int i = block.First; i < block.End; i++)
            {
                int keys = i - block.SeqStart + 1, row = (i * h + head) * d;
                var qi = q.AsSpan(row, d);   // (D)
                var dOi = dO.AsSpan(row, d); // (D)
                float di = TensorPrimitives.Dot(dOi, o.AsSpan(row, d));
                delta[i * h + head] = di;
                var ds = scratch.Scores.AsSpan(0, keys); // (keys) scores, then p, then dS
                for (int t = 0; t < keys; t++)
                    ds[t] = TensorPrimitives.Dot(qi, k.AsSpan(((block.SeqStart + t) * kvh + kvHead) * d, d));
                TensorPrimitives.Multiply(ds, scale, ds);
                TensorPrimitives.Subtract(ds, lse[i * h + head], ds);
                TensorPrimitives.Exp(ds, ds);
                var acc = scratch.A.AsSpan(0, d); // (D) Σ_j dS_ij k_j
                acc.Clear();
                for (int t = 0; t < keys; t++)
                {
                    int kv = ((block.SeqStart + t) * kvh + kvHead) * d;
                    float dsij = ds[t] * (TensorPrimitives.Dot(dOi, v.AsSpan(kv, d)) - di);
                    TensorPrimitives.MultiplyAdd(k.AsSpan(kv, d), dsij, acc, acc);
                }
                var dqi = dq.AsSpan(row, d); // (D)
                TensorPrimitives.MultiplyAdd(acc, scale, dqi, dqi);
            }
            return scratch;
        }, _ => { });

        // Pass 2, per key row j (parallel over sequence, kv head, row block): the query heads of the
        // group and the rows i ≥ j in a fixed order, so dK/dV never depend on the thread count.
        var keyBlocks = AttentionBlocks(starts, kvh);
        Parallel.For(0, keyBlocks.Length, Device.Parallelism, () => new AttentionScratch(0, d), (n, _, scratch) =>
        {
            var block = keyBlocks[n];
            int kvHead = block.Head;
            var dkAcc = scratch.A.AsSpan(0, d); // (D) Σ_i dS_ij q_i
            var dvAcc = scratch.B.AsSpan(0, d); // (D) Σ_i p_ij dO_i
            for (int j = block.First; j < block.End; j++)
            {
                int kv = (j * kvh + kvHead) * d;
                var kj = k.AsSpan(kv, d); // (D)
                var vj = v.AsSpan(kv, d); // (D)
                dkAcc.Clear();
                dvAcc.Clear();
                for (int head = kvHead * group; head < (kvHead + 1) * group; head++)
                {
                    for (int i = j; i < block.SeqEnd; i++)
                    {
                        int row = (i * h + head) * d;
                        var qi = q.AsSpan(row, d);   // (D)
                        var dOi = dO.AsSpan(row, d); // (D)
                        float p = MathF.Exp(scale * TensorPrimitives.Dot(qi, kj) - lse[i * h + head]);
                        float dsij = p * (TensorPrimitives.Dot(dOi, vj) - delta[i * h + head]);
                        TensorPrimitives.MultiplyAdd(dOi, p, dvAcc, dvAcc);
                        TensorPrimitives.MultiplyAdd(qi, dsij, dkAcc, dkAcc);
                    }
                }
                var dkj = dk.AsSpan(kv, d); // (D)
                var dvj = dv.AsSpan(kv, d); // (D)
                TensorPrimitives.MultiplyAdd(dkAcc, scale, dkj, dkj);
                TensorPrimitives.Add(dvAcc, dvj, dvj);
            }
            return scratch;
        }, _ => { });
    }

    /// <summary>
    /// Work items over (sequence, head, block of rows); empty sequences give none, and no item ever
    /// spans two sequences.
    /// </summary>
    private static AttentionBlock[] AttentionBlocks(ReadOnlySpan<int> starts, int heads)
    {
        var blocks = new List<AttentionBlock>();
        for (int b = 0; b + 1 < starts.Length; b++)
        {
            int start = starts[b], end = starts[b + 1];
            for (int head = 0; head < heads; head++)
                for (int first = start; first < end; first += AttentionBlockRows)
                    blocks.Add(new AttentionBlock(start, end, head, first, Math.Min(end, first + AttentionBlockRows)));
        }
        return blocks.ToArray();
    }
}

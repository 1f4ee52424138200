using ILGPU;
using ILGPU.Algorithms;
using static Grpo.Kernels.SoftmaxAttention;

namespace Grpo.Kernels;

/// <summary>Scalars of the attention kernels.</summary>
public readonly struct AttentionArgs
{
    /// <summary>Query heads H.</summary>
    public readonly int Heads;

    /// <summary>Key/value heads KVH (H is a multiple of it).</summary>
    public readonly int KvHeads;

    /// <summary>Head dimension D.</summary>
    public readonly int HeadDim;

    /// <summary>Sequences B (seqStarts holds B + 1 offsets).</summary>
    public readonly int Sequences;

    /// <summary>Score scale (usually 1/sqrt(D)).</summary>
    public readonly float Scale;

    /// <summary>Creates the arguments.</summary>
    public AttentionArgs(int heads, int kvHeads, int headDim, int sequences, float scale)
    {
        Heads = heads;
        KvHeads = kvHeads;
        HeadDim = headDim;
        Sequences = sequences;
        Scale = scale;
    }
}

/// <summary>
/// Causal self-attention over packed sequences with grouped-query attention. Every kernel runs one
/// group per output row (launch <c>KernelConfig(rows · heads, RowGroupSize)</c>): the group's
/// threads share the keys (or query rows) of the row's causal range in tiles of one key per thread,
/// and each element of the output row is owned by one thread, which sums the tiles in order. No
/// atomics, so every result is deterministic. Scores are only computed within the row's own sequence.
/// </summary>
public static class AttentionKernels
{
    /// <summary>
    /// Forward for query row i, head h (group index i·H + h): lse = log Σ_{j ≤ i} exp(s_ij) with
    /// s_ij = scale · q_i·k_j, then out_i = Σ_j exp(s_ij − lse) v_j.
    /// </summary>
    /// <param name="p">Sizes and scale.</param>
    /// <param name="query">(M, H, D) queries.</param>
    /// <param name="key">(M, KVH, D) keys.</param>
    /// <param name="value">(M, KVH, D) values.</param>
    /// <param name="seqStarts">(B+1) sequence offsets.</param>
    /// <param name="output">(M, H, D) output, overwritten.</param>
    /// <param name="logSumExp">(M, H) output, overwritten.</param>
    public static void AttentionForward(AttentionArgs p, ArrayView<float> query, ArrayView<float> key, ArrayView<float> value,
        ArrayView<int> seqStarts, ArrayView<float> output, ArrayView<float> logSumExp)
    {
        int h = p.Heads, d = p.HeadDim;
        int i = Grid.IdxX / h, head = Grid.IdxX - i * h, kvHead = head / (h / p.KvHeads);
        int start = seqStarts[SequenceOf(seqStarts, p.Sequences, i)], keys = i - start + 1;
        long qRow = ((long)i * h + head) * d;
        float lse = Attend(query, qRow, key, value, start, keys, p.KvHeads, kvHead, d, p.Scale, output, qRow);
        if (Group.IdxX == 0) logSumExp[(long)i * h + head] = lse;
    }

    /// <summary>
    /// Backward for query row i, head h (group index i·H + h): D_i = dO_i·O_i (written to
    /// <paramref name="delta"/> for <see cref="AttentionBackwardKeyValue"/>) and
    /// dQ_i += scale Σ_{j ≤ i} p_ij (dO_i·v_j − D_i) k_j.
    /// </summary>
    /// <param name="p">Sizes and scale.</param>
    /// <param name="query">(M, H, D) queries.</param>
    /// <param name="key">(M, KVH, D) keys.</param>
    /// <param name="value">(M, KVH, D) values.</param>
    /// <param name="dOutput">(M, H, D) gradient of the output.</param>
    /// <param name="output">(M, H, D) the forward's output.</param>
    /// <param name="logSumExp">(M, H) the forward's log-sum-exp.</param>
    /// <param name="seqStarts">(B+1) sequence offsets.</param>
    /// <param name="dQuery">(M, H, D) accumulated (+=).</param>
    /// <param name="delta">(M, H) scratch output: D_i.</param>
    public static void AttentionBackwardQuery(AttentionArgs p, ArrayView<float> query, ArrayView<float> key, ArrayView<float> value,
        ArrayView<float> dOutput, ArrayView<float> output, ArrayView<float> logSumExp, ArrayView<int> seqStarts,
        ArrayView<float> dQuery, ArrayView<float> delta)
    {
        int h = p.Heads, d = p.HeadDim, t = Group.IdxX, threads = Group.DimX;
        int i = Grid.IdxX / h, head = Grid.IdxX - i * h, kvHead = head / (h / p.KvHeads);
        int start = seqStarts[SequenceOf(seqStarts, p.Sequences, i)], keys = i - start + 1;
        long qRow = ((long)i * h + head) * d;

        float partial = 0;
        for (int e = t; e < d; e += threads) partial += dOutput[qRow + e] * output[qRow + e];
        float di = GroupReduce.Sum(partial);
        float lse = logSumExp[(long)i * h + head];

        var dScores = SharedMemory.Allocate<float>(GroupReduce.MaxGroupSize);
        for (int tile = 0; tile < keys; tile += threads)
        {
            int u = tile + t;
            float ds = 0;
            if (u < keys)
            {
                long kv = KvRow(p, start + u, kvHead);
                float prob = KernelMath.Exp(p.Scale * Dot(query, qRow, key, kv, d) - lse);
                ds = prob * (Dot(dOutput, qRow, value, kv, d) - di);
            }
            dScores[t] = ds;
            Group.Barrier();
            int count = XMath.Min(threads, keys - tile);
            for (int e = t; e < d; e += threads)
            {
                float acc = 0;
                for (int w = 0; w < count; w++) acc += dScores[w] * key[KvRow(p, start + tile + w, kvHead) + e];
                dQuery[qRow + e] += p.Scale * acc;
            }
            Group.Barrier();
        }
        if (t == 0) delta[(long)i * h + head] = di;
    }

    /// <summary>
    /// Backward for key row j, kv head g (group index j·KVH + g), over the pairs (query head of the
    /// group, query row i ≥ j of the same sequence) in a fixed order:
    /// dV_j += Σ p_ij dO_i and dK_j += scale Σ p_ij (dO_i·v_j − D_i) q_i.
    /// </summary>
    /// <param name="p">Sizes and scale.</param>
    /// <param name="query">(M, H, D) queries.</param>
    /// <param name="key">(M, KVH, D) keys.</param>
    /// <param name="value">(M, KVH, D) values.</param>
    /// <param name="dOutput">(M, H, D) gradient of the output.</param>
    /// <param name="logSumExp">(M, H) the forward's log-sum-exp.</param>
    /// <param name="delta">(M, H) D_i from <see cref="AttentionBackwardQuery"/>.</param>
    /// <param name="seqStarts">(B+1) sequence offsets.</param>
    /// <param name="dKey">(M, KVH, D) accumulated (+=).</param>
    /// <param name="dValue">(M, KVH, D) accumulated (+=).</param>
    public static void AttentionBackwardKeyValue(AttentionArgs p, ArrayView<float> query, ArrayView<float> key, ArrayView<float> value,
        ArrayView<float> dOutput, ArrayView<float> logSumExp, ArrayView<float> delta, ArrayView<int> seqStarts,
        ArrayView<float> dKey, ArrayView<float> dValue)
    {
        int h = p.Heads, kvh = p.KvHeads, d = p.HeadDim, t = Group.IdxX, threads = Group.DimX;
        int group = h / kvh;
        int j = Grid.IdxX / kvh, kvHead = Grid.IdxX - j * kvh;
        int end = seqStarts[SequenceOf(seqStarts, p.Sequences, j) + 1];
        int rows = end - j, pairs = group * rows; // pair u: head kvHead·group + u / rows, row j + u % rows
        long kv = KvRow(p, j, kvHead);

        var probs = SharedMemory.Allocate<float>(GroupReduce.MaxGroupSize);
        var dScores = SharedMemory.Allocate<float>(GroupReduce.MaxGroupSize);
        for (int tile = 0; tile < pairs; tile += threads)
        {
            int u = tile + t;
            float prob = 0, ds = 0;
            if (u < pairs)
            {
                int hh = u / rows, i = j + u - hh * rows;
                long row = (long)i * h + kvHead * group + hh;
                prob = KernelMath.Exp(p.Scale * Dot(query, row * d, key, kv, d) - logSumExp[row]);
                ds = prob * (Dot(dOutput, row * d, value, kv, d) - delta[row]);
            }
            probs[t] = prob;
            dScores[t] = ds;
            Group.Barrier();
            int count = XMath.Min(threads, pairs - tile);
            int firstHead = tile / rows;
            for (int e = t; e < d; e += threads)
            {
                float accV = 0, accK = 0;
                // Walk the tile's pairs in order: rows j..end-1 of one head, then the next head.
                int hh = firstHead, i = j + tile - firstHead * rows;
                for (int w = 0; w < count; w++)
                {
                    long at = ((long)i * h + kvHead * group + hh) * d + e;
                    accV += probs[w] * dOutput[at];
                    accK += dScores[w] * query[at];
                    if (++i == end)
                    {
                        i = j;
                        hh++;
                    }
                }
                dValue[kv + e] += accV;
                dKey[kv + e] += p.Scale * accK;
            }
            Group.Barrier();
        }
    }

    /// <summary>The sequence b with seqStarts[b] ≤ row &lt; seqStarts[b+1] (the last such b when empty sequences repeat an offset).</summary>
    private static int SequenceOf(ArrayView<int> seqStarts, int sequences, int row)
    {
        int lo = 0, hi = sequences - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (seqStarts[mid] <= row) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>Offset of token row <paramref name="row"/>, kv head <paramref name="kvHead"/> in a (M, KVH, D) tensor.</summary>
    private static long KvRow(AttentionArgs p, int row, int kvHead) => Row(row, p.KvHeads, kvHead, p.HeadDim);
}

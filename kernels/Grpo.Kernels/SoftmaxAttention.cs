using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>
/// One query row's attention over a run of key/value rows, computed by the calling group: what the packed forward
/// (<see cref="AttentionKernels.AttentionForward"/>, keys of the row's sequence up to itself) and cached decoding
/// (<see cref="KvCacheKernels.AttentionDecode"/>, keys of the row's cache slot) share, so both sum in one order.
/// </summary>
internal static class SoftmaxAttention
{
    /// <summary>
    /// out = Σ_j exp(s_j − lse) v_j with s_j = scale · q·k_j over the rows firstKeyRow .. firstKeyRow + keyCount − 1 of
    /// (rows, KVH, D) key and value tensors, head <paramref name="kvHead"/>; returns lse = log Σ_j exp(s_j). Every thread of
    /// the group must call it (it reduces over the group and waits at barriers).
    /// </summary>
    /// <param name="query">Queries.</param>
    /// <param name="queryAt">Where the row's D query values start.</param>
    /// <param name="key">(rows, KVH, D) keys.</param>
    /// <param name="value">(rows, KVH, D) values.</param>
    /// <param name="firstKeyRow">The first key row attended.</param>
    /// <param name="keyCount">Key rows attended, at least 1.</param>
    /// <param name="kvHeads">KVH.</param>
    /// <param name="kvHead">The key/value head.</param>
    /// <param name="headDim">D.</param>
    /// <param name="scale">The score scale.</param>
    /// <param name="output">The output, overwritten at the row's D values.</param>
    /// <param name="outputAt">Where the row's D output values start.</param>
    public static float Attend(ArrayView<float> query, long queryAt, ArrayView<float> key, ArrayView<float> value, long firstKeyRow,
        int keyCount, int kvHeads, int kvHead, int headDim, float scale, ArrayView<float> output, long outputAt)
    {
        int t = Group.IdxX, threads = Group.DimX, d = headDim;

        // Pass 1: each thread keeps an online max and sum over its keys; the group merges them.
        float max = float.NegativeInfinity, sum = 0;
        for (int u = t; u < keyCount; u += threads)
        {
            float s = scale * Dot(query, queryAt, key, Row(firstKeyRow + u, kvHeads, kvHead, d), d);
            if (s > max)
            {
                sum = (sum == 0 ? 0 : sum * KernelMath.Exp(max - s)) + 1;
                max = s;
            }
            else sum += KernelMath.Exp(s - max);
        }
        float groupMax = GroupReduce.Max(max);
        float total = GroupReduce.Sum(sum == 0 ? 0 : sum * KernelMath.Exp(max - groupMax));
        float lse = groupMax + KernelMath.Log(total);

        // Pass 2: tiles of one key per thread; the probabilities go through shared memory and the
        // owner of each output element adds the tile's Σ p_j v_j to it, tile after tile.
        var probs = SharedMemory.Allocate<float>(GroupReduce.MaxGroupSize);
        for (int e = t; e < d; e += threads) output[outputAt + e] = 0;
        for (int tile = 0; tile < keyCount; tile += threads)
        {
            int u = tile + t;
            probs[t] = u < keyCount ? KernelMath.Exp(scale * Dot(query, queryAt, key, Row(firstKeyRow + u, kvHeads, kvHead, d), d) - lse) : 0;
            Group.Barrier();
            int count = XMath.Min(threads, keyCount - tile);
            for (int e = t; e < d; e += threads)
            {
                float acc = 0;
                for (int w = 0; w < count; w++) acc += probs[w] * value[Row(firstKeyRow + tile + w, kvHeads, kvHead, d) + e];
                output[outputAt + e] += acc;
            }
            Group.Barrier();
        }
        return lse;
    }

    /// <summary>Offset of row <paramref name="row"/>, head <paramref name="kvHead"/> in a (rows, KVH, D) tensor.</summary>
    public static long Row(long row, int kvHeads, int kvHead, int headDim) => (row * kvHeads + kvHead) * headDim;

    /// <summary>Σ_e a[aStart + e] · b[bStart + e] over e &lt; d, in order.</summary>
    public static float Dot(ArrayView<float> a, long aStart, ArrayView<float> b, long bStart, int d)
    {
        float sum = 0;
        for (int e = 0; e < d; e++) sum += a[aStart + e] * b[bStart + e];
        return sum;
    }
}

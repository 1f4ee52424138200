using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>Scalars of the KV-cache kernels.</summary>
public readonly struct KvCacheArgs
{
    /// <summary>Query heads H (the write kernel ignores it).</summary>
    public readonly int Heads;

    /// <summary>Key/value heads KVH (H is a multiple of it).</summary>
    public readonly int KvHeads;

    /// <summary>Head dimension D.</summary>
    public readonly int HeadDim;

    /// <summary>Cache capacity L (positions per slot).</summary>
    public readonly int Capacity;

    /// <summary>Score scale (the write kernel ignores it).</summary>
    public readonly float Scale;

    /// <summary>Creates the arguments.</summary>
    public KvCacheArgs(int heads, int kvHeads, int headDim, int capacity, float scale)
    {
        Heads = heads;
        KvHeads = kvHeads;
        HeadDim = headDim;
        Capacity = capacity;
        Scale = scale;
    }
}

/// <summary>
/// KV-cache decoding: an element-wise write of key/value rows into (S, L, KVH, D) caches, and the
/// attention of one query row per decoding sequence over its slot's first lengths_r positions. The
/// decode kernel is <see cref="AttentionKernels.AttentionForward"/>'s with the keys read from the
/// cache: one group per (row, query head), tiles of one key per thread, each output element owned
/// by one thread that sums the tiles in order. No atomics; nothing beyond a row's length is read.
/// </summary>
public static class KvCacheKernels
{
    /// <summary>
    /// Element i = w·(KVH·D) + e of write w: keyCache[slots_w, positions_w][e] = key[sourceRows_w][e],
    /// and the same for values. The writes target distinct cells (validated on the host), so no
    /// two threads store to one element.
    /// </summary>
    /// <param name="i">Element index over W·KVH·D.</param>
    /// <param name="p">Sizes (KvHeads, HeadDim, Capacity).</param>
    /// <param name="keyCache">(S, L, KVH, D) keys, written.</param>
    /// <param name="valueCache">(S, L, KVH, D) values, written.</param>
    /// <param name="key">(M, KVH, D) source keys.</param>
    /// <param name="value">(M, KVH, D) source values.</param>
    /// <param name="sourceRows">(W) source row per write.</param>
    /// <param name="slots">(W) destination slot per write.</param>
    /// <param name="positions">(W) destination position per write.</param>
    public static void KvCacheWrite(Index1D i, KvCacheArgs p, ArrayView<float> keyCache, ArrayView<float> valueCache,
        ArrayView<float> key, ArrayView<float> value, ArrayView<int> sourceRows, ArrayView<int> slots, ArrayView<int> positions)
    {
        int row = p.KvHeads * p.HeadDim, index = i;
        int w = index / row, e = index - w * row;
        long from = (long)sourceRows[w] * row + e;
        long to = ((long)slots[w] * p.Capacity + positions[w]) * row + e;
        keyCache[to] = key[from];
        valueCache[to] = value[from];
    }

    /// <summary>
    /// Decode for row r, query head h (group index r·H + h), kv head g = h / (H / KVH), over the
    /// positions j &lt; lengths_r of slot slots_r: lse = log Σ_j exp(s_j) with s_j = scale · q·K[j],
    /// then out = Σ_j exp(s_j − lse) V[j].
    /// </summary>
    /// <param name="p">Sizes and scale.</param>
    /// <param name="query">(R, H, D) queries.</param>
    /// <param name="keyCache">(S, L, KVH, D) keys.</param>
    /// <param name="valueCache">(S, L, KVH, D) values.</param>
    /// <param name="slots">(R) slot per row.</param>
    /// <param name="lengths">(R) positions per row, in [1, L].</param>
    /// <param name="output">(R, H, D) output, overwritten.</param>
    public static void AttentionDecode(KvCacheArgs p, ArrayView<float> query, ArrayView<float> keyCache, ArrayView<float> valueCache,
        ArrayView<int> slots, ArrayView<int> lengths, ArrayView<float> output)
    {
        int h = p.Heads, d = p.HeadDim, t = Group.IdxX, threads = Group.DimX;
        int r = Grid.IdxX / h, head = Grid.IdxX - r * h, kvHead = head / (h / p.KvHeads);
        int keys = lengths[r];
        long qRow = ((long)r * h + head) * d;
        long slotStart = (long)slots[r] * p.Capacity; // position 0 of the row's slot

        // Pass 1: each thread keeps an online max and sum over its keys; the group merges them.
        float max = float.NegativeInfinity, sum = 0;
        for (int u = t; u < keys; u += threads)
        {
            float s = p.Scale * Dot(query, qRow, keyCache, CacheRow(p, slotStart + u, kvHead), d);
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
        for (int e = t; e < d; e += threads) output[qRow + e] = 0;
        for (int tile = 0; tile < keys; tile += threads)
        {
            int u = tile + t;
            probs[t] = u < keys ? KernelMath.Exp(p.Scale * Dot(query, qRow, keyCache, CacheRow(p, slotStart + u, kvHead), d) - lse) : 0;
            Group.Barrier();
            int count = XMath.Min(threads, keys - tile);
            for (int e = t; e < d; e += threads)
            {
                float acc = 0;
                for (int w = 0; w < count; w++) acc += probs[w] * valueCache[CacheRow(p, slotStart + tile + w, kvHead) + e];
                output[qRow + e] += acc;
            }
            Group.Barrier();
        }
    }

    /// <summary>Offset of cache row <paramref name="slotPosition"/> (slot · L + position), kv head <paramref name="kvHead"/> in a (S, L, KVH, D) cache.</summary>
    private static long CacheRow(KvCacheArgs p, long slotPosition, int kvHead) => (slotPosition * p.KvHeads + kvHead) * p.HeadDim;

    /// <summary>Σ_e a[aStart + e] · b[bStart + e] over e &lt; d, in order.</summary>
    private static float Dot(ArrayView<float> a, long aStart, ArrayView<float> b, long bStart, int d)
    {
        float sum = 0;
        for (int e = 0; e < d; e++) sum += a[aStart + e] * b[bStart + e];
        return sum;
    }
}

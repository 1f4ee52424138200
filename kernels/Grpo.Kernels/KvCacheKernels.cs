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
/// decode kernel runs the same <see cref="SoftmaxAttention.Attend"/> as <see cref="AttentionKernels.AttentionForward"/>, keys read from the
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
    /// Decode's q/k/v epilogue over the fused (R, H·D + 2·KVH·D) rows, one thread per unit of a head: with RoPE a unit is the
    /// pair (j, j + D/2), else the one element j; unit i = (r·(H + 2·KVH) + head)·units + j. Each value gets its column's bias
    /// (when <paramref name="addsBias"/> is 1), then the pair of a query or key head is rotated by the angle of position_r with
    /// <see cref="ActivationKernels.Rotate"/>; a query head goes to query[r, head], a key or value head to its cache at
    /// (slots_r, positions_r). The same fp32 operations as <see cref="LinearKernels.CopyColumns"/>,
    /// <see cref="ActivationKernels.Rope"/> and <see cref="KvCacheWrite"/> in turn, so the same bits.
    /// </summary>
    /// <param name="i">The unit index over R·(H + 2·KVH)·(D/2 with RoPE, else D).</param>
    /// <param name="p">Sizes (Heads, KvHeads, HeadDim, Capacity).</param>
    /// <param name="qkv">(R, H·D + 2·KVH·D) the fused projection's rows.</param>
    /// <param name="bias">(H·D + 2·KVH·D) column biases; not read when <paramref name="addsBias"/> is 0.</param>
    /// <param name="query">(R, H, D) rotated queries, written.</param>
    /// <param name="keyCache">(S, L, KVH, D) keys, written at each row's cell.</param>
    /// <param name="valueCache">(S, L, KVH, D) values, written at each row's cell.</param>
    /// <param name="slots">(R) validated slots; distinct (slot, position) cells.</param>
    /// <param name="positions">(R) validated positions, each below the table's length and the capacity.</param>
    /// <param name="table">(P, D) per position: cos of the D/2 angles, then their sin; not read when <paramref name="rotates"/> is 0.</param>
    /// <param name="addsBias">1 to add the bias.</param>
    /// <param name="rotates">1 to rotate q and k (D even).</param>
    public static void SplitIntoCache(Index1D i, KvCacheArgs p, ArrayView<float> qkv, ArrayView<float> bias, ArrayView<float> query,
        ArrayView<float> keyCache, ArrayView<float> valueCache, ArrayView<int> slots, ArrayView<int> positions, ArrayView<float> table,
        int addsBias, int rotates)
    {
        int d = p.HeadDim, half = d / 2, units = rotates != 0 ? half : d, rowHeads = p.Heads + 2 * p.KvHeads;
        int unit = i, rowHead = unit / units, j = unit - rowHead * units;
        int r = rowHead / rowHeads, head = rowHead - r * rowHeads;
        int position = positions[r];
        long from = (long)rowHead * d + j; // r·(H + 2·KVH)·D + head·D + j
        float x = WithBias(qkv[from], bias, head * d + j, addsBias), y = 0;
        if (rotates != 0)
        {
            y = WithBias(qkv[from + half], bias, head * d + j + half, addsBias);
            if (head < p.Heads + p.KvHeads)
            {
                long t = (long)position * d + j;
                x = ActivationKernels.Rotate(x, y, table[t], table[t + half], out y);
            }
        }
        if (head < p.Heads)
            Store(query, ((long)r * p.Heads + head) * d + j, x, y, half, rotates);
        else if (head < p.Heads + p.KvHeads)
            Store(keyCache, CacheRow(p, (long)slots[r] * p.Capacity + position, head - p.Heads) + j, x, y, half, rotates);
        else
            Store(valueCache, CacheRow(p, (long)slots[r] * p.Capacity + position, head - p.Heads - p.KvHeads) + j, x, y, half, rotates);
    }

    /// <summary>
    /// <see cref="SplitIntoCache"/> with Qwen3's per-head RMSNorm before RoPE: one group per (row r, head) of the fused
    /// (R, H·D + 2·KVH·D) rows, group index r·(H + 2·KVH) + head. A query or key head's D values (plus bias) are normalised
    /// with q_norm's or k_norm's weight by the steps and reduction of <see cref="NormalizationKernels.RmsNormForward"/> on a
    /// row of D (the same group size), written to their destination, and rotated there in place after a barrier, pair by
    /// pair as <see cref="ActivationKernels.Rope"/> rotates; a value head is copied (plus bias) to the value cache.
    /// </summary>
    /// <param name="p">Sizes (Heads, KvHeads, HeadDim, Capacity).</param>
    /// <param name="epsilon">rms_norm_eps.</param>
    /// <param name="qkv">(R, H·D + 2·KVH·D) the fused projection's rows.</param>
    /// <param name="bias">(H·D + 2·KVH·D) column biases; not read when <paramref name="addsBias"/> is 0.</param>
    /// <param name="query">(R, H, D) normalised, rotated queries, written.</param>
    /// <param name="keyCache">(S, L, KVH, D) keys, written at each row's cell.</param>
    /// <param name="valueCache">(S, L, KVH, D) values, written at each row's cell.</param>
    /// <param name="slots">(R) validated slots; distinct (slot, position) cells.</param>
    /// <param name="positions">(R) validated positions, each below the table's length and the capacity.</param>
    /// <param name="table">(P, D) per position: cos of the D/2 angles, then their sin; not read when <paramref name="rotates"/> is 0.</param>
    /// <param name="queryWeight">(D) q_norm's weight.</param>
    /// <param name="keyWeight">(D) k_norm's weight.</param>
    /// <param name="addsBias">1 to add the bias.</param>
    /// <param name="rotates">1 to rotate q and k (D even).</param>
    public static void SplitNormIntoCache(KvCacheArgs p, float epsilon, ArrayView<float> qkv, ArrayView<float> bias, ArrayView<float> query,
        ArrayView<float> keyCache, ArrayView<float> valueCache, ArrayView<int> slots, ArrayView<int> positions, ArrayView<float> table,
        ArrayView<float> queryWeight, ArrayView<float> keyWeight, int addsBias, int rotates)
    {
        int d = p.HeadDim, rowHeads = p.Heads + 2 * p.KvHeads;
        int rowHead = Grid.IdxX, r = rowHead / rowHeads, head = rowHead - r * rowHeads; // uniform across the group
        int position = positions[r];
        long from = (long)rowHead * d;             // r·(H + 2·KVH)·D + head·D
        long cell = (long)slots[r] * p.Capacity + position;
        if (head < p.Heads)
            NormRotateHead(query, ((long)r * p.Heads + head) * d, queryWeight, p, epsilon, qkv, from, bias, head * d, addsBias, table, position, rotates);
        else if (head < p.Heads + p.KvHeads)
            NormRotateHead(keyCache, CacheRow(p, cell, head - p.Heads), keyWeight, p, epsilon, qkv, from, bias, head * d, addsBias, table,
                position, rotates);
        else
        {
            long to = CacheRow(p, cell, head - p.Heads - p.KvHeads);
            for (int j = Group.IdxX; j < d; j += Group.DimX)
                valueCache[to + j] = WithBias(qkv[from + j], bias, head * d + j, addsBias);
        }
    }

    // One query or key head of SplitNormIntoCache: target[at + j] = RMSNorm(qkv[from + j] + bias[column + j]) · weight[j], then
    // (after a barrier, so every element is written) each pair (j, j + D/2) rotated in place.
    private static void NormRotateHead(ArrayView<float> target, long at, ArrayView<float> weight, KvCacheArgs p, float epsilon,
        ArrayView<float> qkv, long from, ArrayView<float> bias, int column, int addsBias, ArrayView<float> table, int position, int rotates)
    {
        int d = p.HeadDim, half = d / 2, t = Group.IdxX, threads = Group.DimX;
        float squares = 0;
        for (int j = t; j < d; j += threads)
        {
            float x = WithBias(qkv[from + j], bias, column + j, addsBias);
            squares += x * x;
        }
        float rstd = NormalizationKernels.RmsInverse(GroupReduce.Sum(squares), d, epsilon);
        for (int j = t; j < d; j += threads)
            target[at + j] = NormalizationKernels.RmsScaled(WithBias(qkv[from + j], bias, column + j, addsBias), rstd, weight[j]);
        if (rotates == 0) return;
        Group.Barrier();
        long angles = (long)position * d;
        for (int j = t; j < half; j += threads)
        {
            target[at + j] = ActivationKernels.Rotate(target[at + j], target[at + j + half], table[angles + j], table[angles + j + half], out float y);
            target[at + j + half] = y;
        }
    }

    // A fused value on its way out: plus its column's bias when there is one, one fp32 addition as CopyColumns does it.
    private static float WithBias(float value, ArrayView<float> bias, int column, int addsBias) =>
        addsBias != 0 ? value + bias[column] : value;

    // Writes x at target[at] and, for a rotated pair, y at target[at + D/2].
    private static void Store(ArrayView<float> target, long at, float x, float y, int half, int rotates)
    {
        target[at] = x;
        if (rotates != 0) target[at + half] = y;
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
        int h = p.Heads, d = p.HeadDim;
        int r = Grid.IdxX / h, head = Grid.IdxX - r * h, kvHead = head / (h / p.KvHeads);
        int keys = lengths[r];
        long qRow = ((long)r * h + head) * d;
        long slotStart = (long)slots[r] * p.Capacity; // position 0 of the row's slot
        SoftmaxAttention.Attend(query, qRow, keyCache, valueCache, slotStart, keys, p.KvHeads, kvHead, d, p.Scale, output, qRow);
    }

    /// <summary>Offset of cache row <paramref name="slotPosition"/> (slot · L + position), kv head <paramref name="kvHead"/> in a (S, L, KVH, D) cache.</summary>
    private static long CacheRow(KvCacheArgs p, long slotPosition, int kvHead) => SoftmaxAttention.Row(slotPosition, p.KvHeads, kvHead, p.HeadDim);
}

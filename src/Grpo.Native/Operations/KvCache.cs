using System.Buffers;
using Grpo.Native.Checkpoints;
using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// Writes key/value rows into a layer's cache: for each write w,
    /// keyCache[slots_w, positions_w] = key[sourceRows_w] and the same for values. Repeating a source
    /// row fans one prompt's keys out to the G slots of its group; after a decode step each slot
    /// writes its one new row. Writes must not target the same (slot, position) twice.
    /// </summary>
    /// <param name="keyCache">(S, L, KVH, D) keys: S sequence slots of capacity L.</param>
    /// <param name="valueCache">(S, L, KVH, D) values.</param>
    /// <param name="key">(M, KVH, D) new key rows.</param>
    /// <param name="value">(M, KVH, D) new value rows.</param>
    /// <param name="sourceRows">(W) row of key/value each write copies, in [0, M).</param>
    /// <param name="slots">(W) destination slot, in [0, S).</param>
    /// <param name="positions">(W) destination position, in [0, L).</param>
    void KvCacheWrite(Tensor<float> keyCache, Tensor<float> valueCache, Tensor<float> key, Tensor<float> value,
        Tensor<int> sourceRows, Tensor<int> slots, Tensor<int> positions);

    /// <summary>
    /// A decode step's q/k/v epilogue in one pass: splits the fused projection rows into q, k and v (adding
    /// <paramref name="bias"/>), rotates q and k by RoPE at positions_r (unless <paramref name="rope"/> is null: GPT-2),
    /// with Qwen3's <paramref name="headNorms"/> RMSNorm-ing each q and k head first,
    /// writes q to <paramref name="query"/> and k and v straight into the caches at (slots_r, positions_r). Row r's token
    /// sits at position positions_r of its sequence, and that is also where its slot caches it. Each value is the one
    /// <see cref="SplitColumns"/>, (<see cref="RmsNormForward"/> of each head,) <see cref="Rope"/> and <see cref="KvCacheWrite"/>
    /// give in turn (tested bit for bit):
    /// one launch where those take three, and k and v never pass through their own buffers.
    /// </summary>
    /// <param name="qkv">(R, H·D + 2·KVH·D) the fused projection's rows: the H query heads, the KVH key heads, the KVH value heads.</param>
    /// <param name="bias">(H·D + 2·KVH·D) added to each column on the way, or null.</param>
    /// <param name="query">(R, H, D) the rotated queries, overwritten.</param>
    /// <param name="keyCache">(S, L, KVH, D) keys; row r's rotated key is written at (slots_r, positions_r).</param>
    /// <param name="valueCache">(S, L, KVH, D) values; row r's value is written at (slots_r, positions_r).</param>
    /// <param name="slots">(R) the cache slot of each row, in [0, S); no two rows write the same (slot, position).</param>
    /// <param name="positions">(R) each row's position, in [0, L): its RoPE angle and its cache position.</param>
    /// <param name="rope">θ and scaling of the rotation, as <see cref="Rope"/> takes them; null to copy q and k unrotated.</param>
    /// <param name="headNorms">Qwen3's q_norm and k_norm, applied to each query and key head before RoPE; null for none.</param>
    void SplitIntoKvCache(Tensor<float> qkv, Tensor<float>? bias, Tensor<float> query, Tensor<float> keyCache, Tensor<float> valueCache,
        Tensor<int> slots, Tensor<int> positions, RotaryEmbedding? rope, HeadNorms? headNorms = null);

    /// <summary>
    /// Attention of one new query row per decoding sequence against its cache (grouped-query, as
    /// <see cref="AttentionForward"/>): out_r = Σ_{j &lt; lengths_r} softmax_j(scale · q_r·K[slots_r, j]) V[slots_r, j].
    /// The row's own key and value must already be written (lengths_r counts them).
    /// Output is overwritten.
    /// </summary>
    /// <param name="output">(R, H, D) attention output per row and query head.</param>
    /// <param name="query">(R, H, D) the new queries.</param>
    /// <param name="keyCache">(S, L, KVH, D) keys.</param>
    /// <param name="valueCache">(S, L, KVH, D) values.</param>
    /// <param name="slots">(R) the cache slot each row reads, in [0, S).</param>
    /// <param name="lengths">(R) how many cached positions each row attends to, in [1, L].</param>
    /// <param name="scale">Score scale, positive and finite; usually 1/sqrt(D).</param>
    void AttentionDecode(Tensor<float> output, Tensor<float> query, Tensor<float> keyCache, Tensor<float> valueCache,
        Tensor<int> slots, Tensor<int> lengths, float scale);
}

/// <summary>The sizes of one KV-cache write.</summary>
/// <param name="S">Sequence slots of the cache.</param>
/// <param name="L">Cache capacity (positions per slot).</param>
/// <param name="KVH">Key/value heads.</param>
/// <param name="D">Head dimension.</param>
/// <param name="M">Source rows of key/value.</param>
/// <param name="W">Writes.</param>
internal readonly record struct KvCacheWriteShape(int S, int L, int KVH, int D, int M, int W);

/// <summary>The rotation <see cref="IGrpoOperations.SplitIntoKvCache"/> applies: RoPE's θ and the checkpoint's rope_scaling.</summary>
/// <param name="Theta">rope_theta, positive and finite.</param>
/// <param name="Scaling">rope_scaling, or null for plain RoPE.</param>
public readonly record struct RotaryEmbedding(float Theta, RopeScaling? Scaling = null);

/// <summary>
/// Qwen3's per-head RMSNorms as <see cref="IGrpoOperations.SplitIntoKvCache"/> applies them: each query head's D values
/// normalised with q_norm's weight, each key head's with k_norm's, as <see cref="IGrpoOperations.RmsNormForward"/> would.
/// </summary>
/// <param name="QueryWeight">(D) q_norm's weight.</param>
/// <param name="KeyWeight">(D) k_norm's weight.</param>
/// <param name="Epsilon">The config's rms_norm_eps, positive and finite.</param>
public readonly record struct HeadNorms(Tensor<float> QueryWeight, Tensor<float> KeyWeight, float Epsilon);

/// <summary>The sizes of one <see cref="IGrpoOperations.SplitIntoKvCache"/> call.</summary>
/// <param name="R">Rows (one new token each).</param>
/// <param name="H">Query heads.</param>
/// <param name="KVH">Key/value heads.</param>
/// <param name="D">Head dimension.</param>
/// <param name="S">Sequence slots of the cache.</param>
/// <param name="L">Cache capacity (positions per slot).</param>
internal readonly record struct SplitIntoKvCacheShape(int R, int H, int KVH, int D, int S, int L)
{
    /// <summary>H·D + 2·KVH·D: the width of a fused q|k|v row.</summary>
    public int Width => (H + 2 * KVH) * D;
}

/// <summary>The sizes of one decode attention call.</summary>
/// <param name="R">Decoding rows (one query row each).</param>
/// <param name="H">Query heads.</param>
/// <param name="KVH">Key/value heads (H is a multiple of it).</param>
/// <param name="D">Head dimension.</param>
/// <param name="S">Sequence slots of the cache.</param>
/// <param name="L">Cache capacity (positions per slot).</param>
internal readonly record struct KvCacheDecodeShape(int R, int H, int KVH, int D, int S, int L);

/// <summary>
/// Argument checks both backends run before the KV-cache operations, so they reject the same inputs
/// with the same messages. The integer inputs are checked on the host (the ILGPU backend downloads them:
/// a few ints per row), because an out-of-range slot or position would write or read outside the cache.
/// </summary>
internal static class KvCacheValidation
{
    /// <summary>Checks the shapes of <see cref="IGrpoOperations.KvCacheWrite"/>.</summary>
    public static KvCacheWriteShape Write(Tensor<float> keyCache, Tensor<float> valueCache, Tensor<float> key, Tensor<float> value,
        Tensor<int> sourceRows, Tensor<int> slots, Tensor<int> positions)
    {
        var (s, l, kvh, d) = Cache(keyCache, valueCache);
        Guard.Rank(key, nameof(key), 3, "(rows, kv heads, head dimension)");
        if (key.Shape[1] != kvh || key.Shape[2] != d)
            throw new ArgumentException(
                $"'key' has shape {key.Shape} but the caches have shape {keyCache.Shape}; the rows must be (rows, {kvh}, {d}): " +
                "the caches' kv heads and head dimension.", nameof(key));
        int m = key.Shape[0];
        Guard.Shape(value, nameof(value), m, kvh, d);
        Guard.Rank(sourceRows, nameof(sourceRows), 1, "(writes) of source rows");
        int w = sourceRows.Shape[0];
        IndexList(slots, nameof(slots), w, "write");
        IndexList(positions, nameof(positions), w, "write");
        return new KvCacheWriteShape(s, l, kvh, d, m, w);
    }

    /// <summary>Checks the shapes, aliasing and rotation of <see cref="IGrpoOperations.SplitIntoKvCache"/>.</summary>
    public static SplitIntoKvCacheShape SplitIntoCache(Tensor<float> qkv, Tensor<float>? bias, Tensor<float> query, Tensor<float> keyCache,
        Tensor<float> valueCache, Tensor<int> slots, Tensor<int> positions, RotaryEmbedding? rope, HeadNorms? headNorms)
    {
        var (s, l, kvh, d) = Cache(keyCache, valueCache);
        var (r, h) = QueryRows(query, keyCache, d);
        var shape = new SplitIntoKvCacheShape(r, h, kvh, d, s, l);
        if ((long)r * (h + 2 * kvh) * d > int.MaxValue)
            throw new ArgumentException(
                $"'qkv' would hold {(long)r * (h + 2 * kvh) * d} elements, more than one launch indexes ({int.MaxValue}); split the rows.",
                nameof(qkv));
        Guard.Rank(qkv, nameof(qkv), 2, "(rows, H·D + 2·KVH·D) of a fused q/k/v projection");
        if (qkv.Shape[0] != r || qkv.Shape[1] != shape.Width)
            throw new ArgumentException(
                $"'qkv' has shape {qkv.Shape} but ({r}, {shape.Width}) was expected: one row per query row, holding the {h} query " +
                $"heads, then the {kvh} key heads and the {kvh} value heads of the caches, {d} wide each.", nameof(qkv));
        if (bias is not null) Guard.Shape(bias, nameof(bias), shape.Width);
        IndexList(slots, nameof(slots), r, "query row");
        IndexList(positions, nameof(positions), r, "query row");
        // Every output against every input, and the outputs against each other.
        OutputReadsNoInput(query, nameof(query), qkv, bias, headNorms);
        OutputReadsNoInput(keyCache, nameof(keyCache), qkv, bias, headNorms);
        OutputReadsNoInput(valueCache, nameof(valueCache), qkv, bias, headNorms);
        Aliasing.NoOverlap(query, nameof(query), keyCache, nameof(keyCache));
        Aliasing.NoOverlap(query, nameof(query), valueCache, nameof(valueCache));
        Aliasing.NoOverlap(keyCache, nameof(keyCache), valueCache, nameof(valueCache));
        if (rope is { } angles) ActivationsValidation.RopeAngles(d, nameof(query), query.Shape, angles.Theta, angles.Scaling, nameof(rope));
        if (headNorms is { } norms)
        {
            HeadNormWeight(norms.QueryWeight, "headNorms.QueryWeight", d);
            HeadNormWeight(norms.KeyWeight, "headNorms.KeyWeight", d);
            NormalizationValidation.Epsilon(norms.Epsilon, "the config's rms_norm_eps (1e-6 for Qwen3)", nameof(headNorms));
        }
        return shape;
    }

    /// <summary>Throws when a tensor <see cref="IGrpoOperations.SplitIntoKvCache"/> writes shares memory with one it reads.</summary>
    private static void OutputReadsNoInput(Tensor<float> written, string name, Tensor<float> qkv, Tensor<float>? bias, HeadNorms? headNorms)
    {
        Aliasing.NoOverlap(written, name, qkv, nameof(qkv));
        Aliasing.NoOverlap(written, name, bias, nameof(bias));
        Aliasing.NoOverlap(written, name, headNorms?.QueryWeight, "headNorms.QueryWeight");
        Aliasing.NoOverlap(written, name, headNorms?.KeyWeight, "headNorms.KeyWeight");
    }

    /// <summary>Throws unless a head norm's weight is a (D) tensor.</summary>
    private static void HeadNormWeight(Tensor<float> weight, string name, int d)
    {
        ArgumentNullException.ThrowIfNull(weight, name);
        if (weight.Shape.Rank != 1 || weight.Shape[0] != d)
            throw new ArgumentException(
                $"'{name}' has shape {weight.Shape} but [{d}] was expected: one weight per element of a head (the caches' D).",
                "headNorms");
    }

    /// <summary>
    /// Throws unless every downloaded slot and position of <see cref="IGrpoOperations.SplitIntoKvCache"/> is in range and no two
    /// rows write one (slot, position); when <paramref name="rotates"/>, also that each position has a RoPE angle. Returns
    /// the largest position.
    /// </summary>
    public static int SplitIntoCacheIndices(ReadOnlySpan<int> slots, ReadOnlySpan<int> positions, SplitIntoKvCacheShape shape, bool rotates)
    {
        InRange(slots, "slots", shape.S, "a slot of the caches");
        InRange(positions, "positions", shape.L, "a position within the cache capacity");
        DistinctCells(slots, positions, shape.S, shape.L, "row");
        if (rotates) return ActivationsValidation.RopePositions(positions);
        int largest = 0;
        foreach (int p in positions) largest = Math.Max(largest, p);
        return largest;
    }

    /// <summary>
    /// Throws unless every downloaded write index is in range and no two writes target the same
    /// (slot, position), naming the first bad write and its value (or both colliding writes).
    /// </summary>
    public static void WriteIndices(ReadOnlySpan<int> sourceRows, ReadOnlySpan<int> slots, ReadOnlySpan<int> positions,
        KvCacheWriteShape shape)
    {
        InRange(sourceRows, "sourceRows", shape.M, "a row of 'key' and 'value'");
        InRange(slots, "slots", shape.S, "a slot of the caches");
        InRange(positions, "positions", shape.L, "a position within the cache capacity");
        DistinctCells(slots, positions, shape.S, shape.L, "write");
    }

    /// <summary>
    /// Throws when two entries target the same (slot, position): two writes to one cell would race on the device (and the
    /// winner would depend on the schedule). <paramref name="entry"/> names what an index counts ("write", "row").
    /// </summary>
    private static void DistinctCells(ReadOnlySpan<int> slots, ReadOnlySpan<int> positions, int slotCount, int capacity, string entry)
    {
        // A decode step runs this for every layer, on the host, between launches: its usual case, each row in a slot of its
        // own, cannot repeat a cell, and one pass over a bitmap of the slots says so (a dictionary of cells costs 20× more).
        if (EachSlotOnce(slots, slotCount)) return;
        var first = new Dictionary<long, int>(slots.Length);
        for (int i = 0; i < slots.Length; i++)
        {
            long cell = (long)slots[i] * capacity + positions[i];
            if (!first.TryAdd(cell, i))
                throw new ArgumentException(
                    $"{char.ToUpperInvariant(entry[0])}{entry[1..]}s {first[cell]} and {i} both target slot {slots[i]}, position {positions[i]} " +
                    $"('slots'[{i}] is {slots[i]}, 'positions'[{i}] is {positions[i]}); every {entry} needs its own (slot, position): " +
                    "fan a prompt out to different slots, and give each decode step of a slot a new position.", "positions");
        }
    }

    /// <summary>True when no slot repeats; every slot must already be checked to lie in [0, <paramref name="slotCount"/>).</summary>
    private static bool EachSlotOnce(ReadOnlySpan<int> slots, int slotCount)
    {
        if (slots.Length > slotCount) return false;
        bool[]? rented = null;
        Span<bool> seen = slotCount <= 4096 ? stackalloc bool[slotCount] : (rented = ArrayPool<bool>.Shared.Rent(slotCount)).AsSpan(0, slotCount);
        try
        {
            seen.Clear();
            foreach (int slot in slots)
            {
                if (seen[slot]) return false;
                seen[slot] = true;
            }
            return true;
        }
        finally
        {
            if (rented is not null) ArrayPool<bool>.Shared.Return(rented);
        }
    }

    /// <summary>Checks the shapes and scale of <see cref="IGrpoOperations.AttentionDecode"/>.</summary>
    public static KvCacheDecodeShape Decode(Tensor<float> output, Tensor<float> query, Tensor<float> keyCache,
        Tensor<float> valueCache, Tensor<int> slots, Tensor<int> lengths, float scale)
    {
        var (s, l, kvh, d) = Cache(keyCache, valueCache);
        var (r, h) = QueryRows(query, keyCache, d);
        if (h % kvh != 0)
            throw new ArgumentException(
                $"'query' has {h} heads but the caches have {kvh} kv heads; the query heads must be a multiple of the kv heads " +
                "(each kv head serves H / KVH query heads).", nameof(query));
        Guard.Shape(output, nameof(output), r, h, d);
        IndexList(slots, nameof(slots), r, "query row");
        IndexList(lengths, nameof(lengths), r, "query row");
        if (!(scale > 0) || !float.IsFinite(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), scale,
                $"'scale' must be positive and finite but was {scale}; use 1 / sqrt(head dimension) = {1 / MathF.Sqrt(d)}.");
        return new KvCacheDecodeShape(r, h, kvh, d, s, l);
    }

    /// <summary>
    /// Throws unless every downloaded slot is in [0, S) and every length in [1, L], naming the first
    /// bad row and its value. Returns the longest length (the backends' per-row scratch length).
    /// </summary>
    public static int DecodeIndices(ReadOnlySpan<int> slots, ReadOnlySpan<int> lengths, KvCacheDecodeShape shape)
    {
        InRange(slots, "slots", shape.S, "a slot of the caches");
        int longest = 0;
        for (int r = 0; r < lengths.Length; r++)
        {
            int length = lengths[r];
            if (length < 1 || length > shape.L)
                throw new ArgumentOutOfRangeException("lengths", length,
                    $"'lengths'[{r}] is {length} but must be in [1, {shape.L}]: a decoding row attends to at least its own " +
                    $"position (write its key and value first, then count it) and at most the cache capacity {shape.L}.");
            longest = Math.Max(longest, length);
        }
        return longest;
    }

    /// <summary>Checks that the queries are (R, H, D) with the caches' D; returns (R, H).</summary>
    private static (int R, int H) QueryRows(Tensor<float> query, Tensor<float> keyCache, int d)
    {
        Guard.Rank(query, nameof(query), 3, "(rows, heads, head dimension)");
        if (query.Shape[2] != d)
            throw new ArgumentException(
                $"'query' has shape {query.Shape} but the caches have shape {keyCache.Shape}; the queries' head dimension " +
                $"must be the caches' ({d}).", nameof(query));
        return (query.Shape[0], query.Shape[1]);
    }

    /// <summary>Checks the two caches: (S, L, KVH, D), the same shape.</summary>
    private static (int S, int L, int Kvh, int D) Cache(Tensor<float> keyCache, Tensor<float> valueCache)
    {
        Guard.Rank(keyCache, nameof(keyCache), 4, "(slots, capacity, kv heads, head dimension)");
        var c = keyCache.Shape;
        Guard.Shape(valueCache, nameof(valueCache), c[0], c[1], c[2], c[3]);
        return (c[0], c[1], c[2], c[3]);
    }

    /// <summary>Throws unless <paramref name="list"/> is a rank-1 tensor of <paramref name="count"/> ints.</summary>
    private static void IndexList(Tensor<int> list, string name, int count, string per)
    {
        ArgumentNullException.ThrowIfNull(list, name);
        if (list.Shape.Rank != 1 || list.Shape[0] != count)
            throw new ArgumentException(
                $"'{name}' has shape {list.Shape} but [{count}] was expected: one entry per {per}.", name);
    }

    /// <summary>Throws unless every value is in [0, count), naming the first bad index and its value.</summary>
    private static void InRange(ReadOnlySpan<int> values, string name, int count, string meaning)
    {
        for (int i = 0; i < values.Length; i++)
            if ((uint)values[i] >= (uint)count)
                throw new ArgumentOutOfRangeException(name, values[i],
                    $"'{name}'[{i}] is {values[i]} but must be in [0, {count}): {meaning}.");
    }
}

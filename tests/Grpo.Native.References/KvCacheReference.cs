namespace Grpo.Native.References;

/// <summary>
/// KV-cache writes and single-query decode attention, in double, straight from the maths.
/// Layouts: caches (S, L, KVH, D); key/value rows (M, KVH, D); queries and outputs (R, H, D).
/// Decode: for row r and query head h (reading kv head h / (H / KVH)), over positions j &lt; lengths_r
/// of slot slots_r: s_j = scale · q·K[j], p = softmax(s), out = Σ_j p_j V[j].
/// </summary>
public static class KvCacheReference
{
    /// <summary>Element (slot, position, kvHead, e) of a (S, L, KVH, D) cache.</summary>
    private static int CacheIndex(int slot, int position, int kvHead, int e, int l, int kvh, int d) =>
        ((slot * l + position) * kvh + kvHead) * d + e;

    /// <summary>
    /// Applies the writes to copies of the caches and returns them: cache[slots_w, positions_w] = rows[sourceRows_w]
    /// for every kv head and element, in write order.
    /// </summary>
    public static (double[] KeyCache, double[] ValueCache) Write(double[] keyCache, double[] valueCache,
        double[] key, double[] value, int[] sourceRows, int[] slots, int[] positions, int l, int kvh, int d)
    {
        var kc = (double[])keyCache.Clone();
        var vc = (double[])valueCache.Clone();
        for (int w = 0; w < sourceRows.Length; w++)
            for (int g = 0; g < kvh; g++)
                for (int e = 0; e < d; e++)
                {
                    int to = CacheIndex(slots[w], positions[w], g, e, l, kvh, d);
                    int from = (sourceRows[w] * kvh + g) * d + e;
                    kc[to] = key[from];
                    vc[to] = value[from];
                }
        return (kc, vc);
    }

    /// <summary>The decode output (R, H, D).</summary>
    public static double[] Decode(double[] query, double[] keyCache, double[] valueCache, int[] slots, int[] lengths,
        int h, int kvh, int d, int l, double scale)
    {
        int r = slots.Length;
        var output = new double[r * h * d];
        for (int i = 0; i < r; i++)
            for (int head = 0; head < h; head++)
            {
                int kvHead = head / (h / kvh), n = lengths[i];
                var scores = new double[n];
                for (int j = 0; j < n; j++)
                {
                    double dot = 0;
                    for (int e = 0; e < d; e++)
                        dot += query[(i * h + head) * d + e] * keyCache[CacheIndex(slots[i], j, kvHead, e, l, kvh, d)];
                    scores[j] = scale * dot;
                }
                double lse = ReferenceMath.LogSumExp(scores);
                for (int e = 0; e < d; e++)
                {
                    double sum = 0;
                    for (int j = 0; j < n; j++)
                        sum += Math.Exp(scores[j] - lse) * valueCache[CacheIndex(slots[i], j, kvHead, e, l, kvh, d)];
                    output[(i * h + head) * d + e] = sum;
                }
            }
        return output;
    }
}

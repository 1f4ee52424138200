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

    /// <summary>
    /// A decode step's q/k/v epilogue: row r of qkv holds H query heads, KVH key heads and KVH value heads of D values; each
    /// value plus its column's bias; with <paramref name="queryNorm"/> and <paramref name="keyNorm"/>, each query and key head
    /// RMS-normalised (rstd = 1/sqrt(mean(x²) + eps), then x·rstd·weight); the query and key heads rotated by RoPE at
    /// positions_r (when <paramref name="theta"/> is given, with <see cref="ActivationsReference.RopeAngle"/>); the queries
    /// into a new (R, H, D) array and the keys and values into copies of the caches at (slots_r, positions_r).
    /// With <paramref name="magnitudes"/>, each result is instead the scale its fp32 rounding is bounded against: every
    /// value, bias, weight, cos and sin taken by its absolute value, (|x| + |b|)·rstd·|w| rotated to
    /// n_j|cos| + n_(j+D/2)|sin| (rstd the true one, from the signed values).
    /// </summary>
    public static (double[] Query, double[] KeyCache, double[] ValueCache) SplitIntoCache(double[] qkv, double[]? bias,
        double[] keyCache, double[] valueCache, int[] slots, int[] positions, int h, int kvh, int d, int l, float? theta,
        bool magnitudes = false, double[]? queryNorm = null, double[]? keyNorm = null, double epsilon = 0)
    {
        int r = slots.Length, width = (h + 2 * kvh) * d, half = d / 2;
        var query = new double[r * h * d];
        var kc = (double[])keyCache.Clone();
        var vc = (double[])valueCache.Clone();
        for (int i = 0; i < r; i++)
            for (int head = 0; head < h + 2 * kvh; head++)
            {
                var values = new double[d]; // x + b
                var scale = new double[d];  // |x| + |b|
                for (int e = 0; e < d; e++)
                {
                    int column = head * d + e;
                    double x = qkv[i * width + column], b = bias is null ? 0 : bias[column];
                    values[e] = x + b;
                    scale[e] = Math.Abs(x) + Math.Abs(b);
                }
                double[]? norm = head < h ? queryNorm : head < h + kvh ? keyNorm : null;
                if (norm is not null)
                {
                    double squares = 0;
                    foreach (double v in values) squares += v * v;
                    double rstd = 1 / Math.Sqrt(squares / d + epsilon);
                    for (int e = 0; e < d; e++)
                    {
                        values[e] *= rstd * norm[e];
                        scale[e] *= rstd * Math.Abs(norm[e]);
                    }
                }
                if (theta is { } t && head < h + kvh)
                {
                    var rotated = new double[d];
                    var rotatedScale = new double[d];
                    for (int j = 0; j < half; j++)
                    {
                        double angle = ActivationsReference.RopeAngle(positions[i], j, d, t);
                        double cos = Math.Cos(angle), sin = Math.Sin(angle);
                        rotated[j] = values[j] * cos - values[j + half] * sin;
                        rotated[j + half] = values[j + half] * cos + values[j] * sin;
                        rotatedScale[j] = scale[j] * Math.Abs(cos) + scale[j + half] * Math.Abs(sin);
                        rotatedScale[j + half] = scale[j + half] * Math.Abs(cos) + scale[j] * Math.Abs(sin);
                    }
                    (values, scale) = (rotated, rotatedScale);
                }
                var result = magnitudes ? scale : values;
                for (int e = 0; e < d; e++)
                {
                    if (head < h) query[(i * h + head) * d + e] = result[e];
                    else if (head < h + kvh) kc[CacheIndex(slots[i], positions[i], head - h, e, l, kvh, d)] = result[e];
                    else vc[CacheIndex(slots[i], positions[i], head - h - kvh, e, l, kvh, d)] = result[e];
                }
            }
        return (query, kc, vc);
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

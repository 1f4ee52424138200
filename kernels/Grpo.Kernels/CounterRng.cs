namespace Grpo.Kernels;

/// <summary>
/// The counter-based random number generator the samplers use: a pure function of
/// (seed, row, step, column), so every backend, every thread count and every launch shape draws
/// exactly the same uniform for the same token, with no generator state to carry between calls.
/// </summary>
/// <remarks>
/// The exact construction (the reference re-implements it from this text):
/// <code>
/// Mix64(h):  h ^= h >> 33; h *= 0xFF51AFD7ED558CCD; h ^= h >> 33; h *= 0xC4CEB9FE1A85EC53; h ^= h >> 33   (murmur3 fmix64)
/// rowKey   = Mix64(Mix64(seed ^ (C1 * (row + 1))) ^ (C2 * (step + 1)))
/// h        = Mix64(rowKey ^ (C3 * (column + 1)))
/// u        = ((h >> 41) + 0.5) * 2^-23            in (0, 1), exactly representable as a float
/// C1 = 0x9E3779B97F4A7C15, C2 = 0xBF58476D1CE4E5B9, C3 = 0x94D049BB133111EB
/// </code>
/// All arithmetic is on unsigned 64-bit integers and wraps; row, step and column are non-negative.
/// Every method is a plain static function, so ILGPU kernels and the managed CPU backend share it.
/// </remarks>
public static class CounterRng
{
    /// <summary>Odd multiplier that spreads the row index (the 64-bit golden ratio).</summary>
    public const ulong RowMultiplier = 0x9E3779B97F4A7C15UL;

    /// <summary>Odd multiplier that spreads the step index (SplitMix64's first constant).</summary>
    public const ulong StepMultiplier = 0xBF58476D1CE4E5B9UL;

    /// <summary>Odd multiplier that spreads the column (token) index (SplitMix64's second constant).</summary>
    public const ulong ColumnMultiplier = 0x94D049BB133111EBUL;

    /// <summary>The murmur3 fmix64 finaliser: a bijection on 64-bit words with full avalanche.</summary>
    public static ulong Mix64(ulong h)
    {
        h ^= h >> 33;
        h *= 0xFF51AFD7ED558CCDUL;
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53UL;
        h ^= h >> 33;
        return h;
    }

    /// <summary>The per-(row, step) key; computed once per row, then combined with each column.</summary>
    public static ulong RowKey(ulong seed, int row, int step)
    {
        ulong h = Mix64(seed ^ (RowMultiplier * ((ulong)row + 1UL)));
        return Mix64(h ^ (StepMultiplier * ((ulong)step + 1UL)));
    }

    /// <summary>The uniform in (0, 1) for <paramref name="column"/>: ((h &gt;&gt; 41) + 0.5) · 2^-23.</summary>
    public static float Uniform(ulong rowKey, int column)
    {
        ulong h = Mix64(rowKey ^ (ColumnMultiplier * ((ulong)column + 1UL)));
        // 23 random bits plus one half: at most 24 significant bits, so the float is exact.
        return ((uint)(h >> 41) + 0.5f) * (1.0f / 8388608.0f);
    }
}

using ILGPU;

namespace Grpo.Kernels;

/// <summary>
/// Floats as unsigned keys with the same order, so that bisection over keys is bisection over floats (the sampler's top-k and
/// top-p thresholds, the entropy mask's quantile).
/// </summary>
public static class OrderedFloatKeys
{
    /// <summary>The key of <paramref name="value"/>: −∞ … −0 &lt; +0 … +∞ map to increasing keys. NaN is not expected.</summary>
    public static uint Of(float value)
    {
        uint bits = Interop.FloatAsInt(value);
        return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
    }

    /// <summary>The inverse of <see cref="Of"/>.</summary>
    public static float ToFloat(uint key) =>
        Interop.IntAsFloat((key & 0x80000000u) != 0 ? key & 0x7FFFFFFFu : ~key);

    /// <summary>The key halfway up the interval (lo, hi], rounded up, so that bisection for the largest passing key terminates.</summary>
    public static uint UpperMidpoint(uint lo, uint hi) => (uint)(lo + ((ulong)hi - lo + 1UL) / 2UL);
}

using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>
/// exp and log in fp32 to about one ulp on every backend. ILGPU.Algorithms compiles <c>XMath.Exp/Log(float)</c> for CUDA
/// to PTX's <c>ex2.approx.f32</c> and <c>lg2.approx.f32</c> (exp x = ex2(x · log₂e), log x = lg2(x) · ln 2): the rounding of
/// x · log₂e alone costs |x|·2⁻²⁴ relative, and lg2's error is absolute (about 2⁻²² near 1), so log of a sum close to 1, a
/// log-prob near 0, would lose most of its digits; the CPU simulator, running .NET's MathF, shows none of it. These are the
/// textbook reductions in plain arithmetic, so the GPU computes what the simulator computes:
/// exp x = 2ᵏ·eʳ with k = round(x / ln 2), r = x − k·ln 2 in two parts (Cody–Waite), eʳ by its Taylor series to r⁷
/// (|r| ≤ 0.35: truncation below 2⁻²⁷); log x = e·ln 2 + log m with m ∈ [√½, √2), log m = 2 atanh s, s = (m − 1)/(m + 1),
/// by its series to s¹¹ (|s| ≤ 0.172: truncation below 2⁻³²), arranged as f − s·(f − r) (f = m − 1, exact) as fdlibm does. <c>KernelMathTests</c> measures both against double precision.
/// </summary>
public static class KernelMath
{
    private const float Log2E = 1.44269504f;
    private const float Ln2High = 0.693359375f;       // ln 2 to 9 bits (0x3F318000): k·Ln2High is exact for |k| < 2^15
    private const float Ln2Low = -2.12194440e-4f;     // ln 2 − Ln2High
    private const float MaxArgument = 88.7228394f;    // ln(float.MaxValue): above it e^x overflows
    private const float MinArgument = -103.972084f;   // ln(2^−150): below it e^x rounds to 0
    private const float SmallestNormal = 1.17549435e-38f;

    /// <summary>e^x, within about 1 ulp; +∞ above ln(float.MaxValue), 0 below ln 2⁻¹⁵⁰, NaN for NaN.</summary>
    public static float Exp(float x)
    {
        if (XMath.IsNaN(x)) return x;
        if (x > MaxArgument) return float.PositiveInfinity;
        if (x < MinArgument) return 0f;
        float k = XMath.Floor(x * Log2E + 0.5f);      // nearest integer to x / ln 2
        float r = (x - k * Ln2High) - k * Ln2Low;      // x − k ln 2, |r| ≤ ln 2 / 2 (plus rounding)
        float p = 1f / 5040f;
        p = p * r + 1f / 720f;
        p = p * r + 1f / 120f;
        p = p * r + 1f / 24f;
        p = p * r + 1f / 6f;
        p = p * r + 0.5f;
        p = p * r + 1f;
        p = p * r + 1f;                                // e^r
        int n = (int)k;                                // −150 .. 128
        if (n > 127) { p *= 2f; n--; }                 // 2^n as normal floats: 2^128 = 2 · 2^127
        if (n < -126) { p *= 5.96046448e-8f; n += 24; } // 2^−150 .. 2^−127 = 2^−24 · 2^(n+24)
        return p * Interop.IntAsFloat((uint)(n + 127) << 23);
    }

    /// <summary>The natural logarithm, within about 1 ulp (and to full relative precision near 1); NaN below 0, −∞ at 0.</summary>
    public static float Log(float x)
    {
        if (XMath.IsNaN(x) || x < 0f) return float.NaN;
        if (x == 0f) return float.NegativeInfinity;
        if (XMath.IsInfinity(x)) return x;
        int e = 0;
        if (x < SmallestNormal) { x *= 16777216f; e = -24; }         // a subnormal, scaled by 2^24 into the normal range
        uint bits = Interop.FloatAsInt(x);
        e += (int)(bits >> 23) - 127;
        float m = Interop.IntAsFloat((bits & 0x007FFFFFu) | 0x3F800000u); // the significand, in [1, 2)
        if (m > 1.41421356f) { m *= 0.5f; e++; }                         // in [√½, √2)
        float f = m - 1f;                                                  // exact (m within a factor 2 of 1)
        float s = f / (2f + f);                                            // |s| ≤ 0.172
        float z = s * s;
        float r = 2f / 11f;
        r = r * z + 2f / 9f;
        r = r * z + 2f / 7f;
        r = r * z + 2f / 5f;
        r = r * z + 2f / 3f;
        r *= z;                                                            // 2 atanh(s)/s − 2 = 2z/3 + 2z²/5 + … + 2z⁵/11
        // log m = 2 atanh s = 2s + s·r, and 2s = f − f·s: so log m = f − s·(f − r), the exact f plus a correction at most
        // a fifth of it, whose rounding therefore costs a fifth as much.
        float logM = f - s * (f - r);
        return e * Ln2High + (logM + e * Ln2Low);
    }
}

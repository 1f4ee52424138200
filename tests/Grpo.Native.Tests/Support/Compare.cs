using NUnit.Framework;

namespace Grpo.Native.Tests.Support;

/// <summary>
/// Compares an fp32 result with a double-precision reference and prints the worst relative error.
/// The error of element i is |actual − expected| / max(|expected|, floor), with
/// floor = 1e-3 · max_j |expected_j| (and at least 1e-30), so values near zero in a tensor of
/// large values are judged against the tensor's scale rather than against themselves.
/// NaN or infinity where the reference is finite always fails.
/// </summary>
public static class Compare
{
    public const double DefaultRelativeTolerance = 1e-4;

    public static double WorstRelativeError(string what, ReadOnlySpan<double> expected, ReadOnlySpan<float> actual,
        double tolerance = DefaultRelativeTolerance)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        double scale = 0;
        foreach (double e in expected) if (double.IsFinite(e)) scale = Math.Max(scale, Math.Abs(e));
        double floor = Math.Max(1e-3 * scale, 1e-30);
        double worst = 0;
        int worstIndex = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            double error;
            if (double.IsNaN(e)) error = double.IsNaN(a) ? 0 : double.PositiveInfinity;
            else if (double.IsInfinity(e)) error = a == e ? 0 : double.PositiveInfinity;
            else if (!double.IsFinite(a)) error = double.PositiveInfinity;
            else error = Math.Abs(a - e) / Math.Max(Math.Abs(e), floor);
            if (error > worst || worstIndex < 0) { worst = error; worstIndex = i; }
        }
        string where = worstIndex < 0 ? "no elements"
            : $"at [{worstIndex}]: expected {expected[worstIndex]:G9}, got {actual[worstIndex]:G9}";
        TestContext.Out.WriteLine($"{what}: worst relative error {worst:E2} over {expected.Length} values ({where})");
        Assert.That(worst, Is.LessThanOrEqualTo(tolerance), $"{what}: worst relative error {worst:E2} {where}");
        return worst;
    }

    public static double WorstRelativeError(string what, ReadOnlySpan<double> expected, ReadOnlySpan<double> actual,
        double tolerance)
    {
        var asFloat = new float[actual.Length];
        for (int i = 0; i < actual.Length; i++) asFloat[i] = (float)actual[i];
        return WorstRelativeError(what, expected, asFloat, tolerance);
    }

    public static double WorstRelativeError(string what, double expected, float actual,
        double tolerance = DefaultRelativeTolerance) =>
        WorstRelativeError(what, [expected], [actual], tolerance);
}

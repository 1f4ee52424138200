using Grpo.Native.References;
using NUnit.Framework;

namespace Grpo.Native.Tests.Support;

/// <summary>
/// Compares an fp32 result with a double-precision reference with <see cref="ErrorMeasure"/> and
/// prints the worst relative error (and where it is).
/// </summary>
public static class Compare
{
    public const double DefaultRelativeTolerance = 1e-4;

    public static double WorstRelativeError(string what, ReadOnlySpan<double> expected, ReadOnlySpan<float> actual,
        double tolerance = DefaultRelativeTolerance)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        return Report(what, expected, actual, ErrorMeasure.WorstRelativeError(expected, actual), tolerance);
    }

    /// <summary>The same with <see cref="ErrorMeasure.WorstRowRelativeError"/>: each error against its row's largest value.</summary>
    public static double WorstRowRelativeError(string what, ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, int rowLength,
        double tolerance)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        return Report(what + " (per row)", expected, actual, ErrorMeasure.WorstRowRelativeError(expected, actual, rowLength), tolerance);
    }

    private static double Report(string what, ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, (double, int) measured,
        double tolerance)
    {
        var (worst, worstIndex) = measured;
        string where = worstIndex < 0 ? "no elements"
            : $"at [{worstIndex}]: expected {expected[worstIndex]:G9}, got {actual[worstIndex]:G9}";
        // "bound" is printed so that a run's margins can be read from its log (scripts/stress-tests.py does).
        TestContext.Out.WriteLine($"{what}: worst relative error {worst:E2} (bound {tolerance:E2}) over {expected.Length} values ({where})");
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

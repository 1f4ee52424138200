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

    /// <summary>
    /// ‖actual − expected‖₂ / ‖expected‖₂, for a whole gradient whose elements are cancelling sums: a bound on the
    /// rounding of such a computation holds for the vector's norm, which no near-zero element can inflate. Prints it
    /// and the bound.
    /// </summary>
    public static double NormwiseRelativeError(string what, ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, double tolerance)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        double error = ErrorMeasure.NormwiseRelativeError(expected, actual);
        TestContext.Out.WriteLine($"{what}: normwise relative error {error:E2} (bound {tolerance:E2}) over {expected.Length} values");
        Assert.That(error, Is.LessThanOrEqualTo(tolerance), $"{what}: normwise relative error {error:E2}");
        return error;
    }

    public static double WorstRelativeError(string what, ReadOnlySpan<double> expected, ReadOnlySpan<double> actual,
        double tolerance)
    {
        var asFloat = new float[actual.Length];
        for (int i = 0; i < actual.Length; i++) asFloat[i] = (float)actual[i];
        return WorstRelativeError(what, expected, asFloat, tolerance);
    }

    /// <summary>
    /// The worst |actual_i − expected_i| / scale_i, for values summed from signed terms: fp32 rounding
    /// of such a sum is bounded by a multiple of scale_i = Σ |terms| however much the terms cancel, so
    /// a bound derived as (ulps per term) · 2^-24 holds for every element, including those that cancel
    /// to nearly 0. A scale of 0 demands equality. Prints the worst error and the bound.
    /// </summary>
    public static double WorstScaledError(string what, ReadOnlySpan<double> expected, ReadOnlySpan<double> scale,
        ReadOnlySpan<double> actual, double tolerance)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        Assert.That(scale.Length, Is.EqualTo(expected.Length), $"{what}: scale length");
        var (worst, worstIndex) = ErrorMeasure.WorstScaledError(expected, scale, actual);
        string where = worstIndex < 0 ? "no elements"
            : $"at [{worstIndex}]: expected {expected[worstIndex]:G9}, got {actual[worstIndex]:G9}, scale {scale[worstIndex]:G3}";
        TestContext.Out.WriteLine($"{what}: worst error / scale {worst:E2} (bound {tolerance:E2}) over {expected.Length} values ({where})");
        Assert.That(worst, Is.LessThanOrEqualTo(tolerance), $"{what}: worst error / scale {worst:E2} {where}");
        return worst;
    }

    /// <summary><see cref="WorstScaledError(string, ReadOnlySpan{double}, ReadOnlySpan{double}, ReadOnlySpan{double}, double)"/> for an fp32 result.</summary>
    public static double WorstScaledError(string what, ReadOnlySpan<double> expected, ReadOnlySpan<double> scale,
        ReadOnlySpan<float> actual, double tolerance)
    {
        var asDouble = new double[actual.Length];
        for (int i = 0; i < actual.Length; i++) asDouble[i] = actual[i];
        return WorstScaledError(what, expected, scale, asDouble, tolerance);
    }

    public static double WorstRelativeError(string what, double expected, float actual,
        double tolerance = DefaultRelativeTolerance) =>
        WorstRelativeError(what, [expected], [actual], tolerance);
}

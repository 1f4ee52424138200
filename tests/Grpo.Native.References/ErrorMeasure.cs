namespace Grpo.Native.References;

/// <summary>
/// The error measure every comparison with a reference uses (the NUnit tests and <c>grpo selfcheck</c>):
/// the error of element i is |actual − expected| / max(|expected|, floor), with
/// floor = 1e-3 · max_j |expected_j| (at least 1e-30), so values near zero in a tensor of large
/// values are judged against the tensor's scale. NaN or infinity where the reference is finite is an
/// infinite error; a NaN where the reference is NaN, or the same infinity, is no error.
/// </summary>
public static class ErrorMeasure
{
    /// <summary>The worst error and where it is (index −1 when there are no elements).</summary>
    public static (double Worst, int Index) WorstRelativeError(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual)
    {
        if (actual.Length != expected.Length)
            throw new ArgumentException($"{actual.Length} values were compared with {expected.Length} expected.", nameof(actual));
        return WorstRelativeErrorAgainstScale(expected, actual, floorFraction: 1e-3);
    }

    /// <summary>
    /// The worst |actual_i − expected_i| / scale_i and where it is: for values computed from signed terms, whose fp32 rounding
    /// is bounded by a multiple of scale_i = Σ |terms| however much they cancel. A scale of 0 demands equality; NaN is an
    /// infinite error.
    /// </summary>
    public static (double Worst, int Index) WorstScaledError(ReadOnlySpan<double> expected, ReadOnlySpan<double> scale,
        ReadOnlySpan<double> actual)
    {
        if (actual.Length != expected.Length || scale.Length != expected.Length)
            throw new ArgumentException($"{actual.Length} values and {scale.Length} scales were given for {expected.Length} expected.",
                nameof(actual));
        double worst = 0;
        int worstIndex = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double difference = Math.Abs(actual[i] - expected[i]);
            double error = double.IsNaN(difference) ? double.PositiveInfinity
                : scale[i] > 0 ? difference / scale[i] : difference == 0 ? 0 : double.PositiveInfinity;
            if (error > worst || worstIndex < 0) { worst = error; worstIndex = i; }
        }
        return (worst, worstIndex);
    }

    /// <summary><see cref="WorstScaledError(ReadOnlySpan{double}, ReadOnlySpan{double}, ReadOnlySpan{double})"/> of an fp32 result.</summary>
    public static (double Worst, int Index) WorstScaledError(ReadOnlySpan<double> expected, ReadOnlySpan<double> scale, ReadOnlySpan<float> actual)
    {
        var asDouble = new double[actual.Length];
        for (int i = 0; i < actual.Length; i++) asDouble[i] = actual[i];
        return WorstScaledError(expected, scale, asDouble);
    }

    /// <summary>
    /// ‖actual − expected‖₂ / ‖expected‖₂: for a whole gradient whose elements are cancelling sums, a rounding bound holds
    /// for the vector's norm, which no near-zero element can inflate. Infinite when a value is NaN or infinite.
    /// </summary>
    public static double NormwiseRelativeError(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual)
    {
        if (actual.Length != expected.Length)
            throw new ArgumentException($"{actual.Length} values were compared with {expected.Length} expected.", nameof(actual));
        double difference = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = actual[i] - expected[i];
            difference += d * d;
            norm += expected[i] * expected[i];
        }
        double error = norm > 0 ? Math.Sqrt(difference / norm) : difference == 0 ? 0 : double.PositiveInfinity;
        return double.IsNaN(error) ? double.PositiveInfinity : error;
    }

    /// <summary>Each error relative to max(|expected_i|, floorFraction · max_j |expected_j|).</summary>
    private static (double Worst, int Index) WorstRelativeErrorAgainstScale(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual,
        double floorFraction)
    {
        double scale = 0;
        foreach (double e in expected) if (double.IsFinite(e)) scale = Math.Max(scale, Math.Abs(e));
        double floor = Math.Max(floorFraction * scale, 1e-30);
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
        return (worst, worstIndex);
    }

    /// <summary>
    /// The worst error measured row by row: the error of element i of a row is
    /// |actual − expected| / max_j |expected_j| over that row alone (at least 1e-30). For outputs whose
    /// rounding error is bounded relative to the row's magnitude rather than the element's, as a norm
    /// layer's: an element near zero keeps the absolute rounding of the row's O(1) terms, which no
    /// element-relative bound can hold for every draw, while a whole row of C random values does not
    /// cancel. NaN and infinity are judged as in <see cref="WorstRelativeError"/>.
    /// </summary>
    public static (double Worst, int Index) WorstRowRelativeError(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, int rowLength)
    {
        if (rowLength <= 0 || expected.Length % rowLength != 0)
            throw new ArgumentException($"{expected.Length} values do not split into rows of {rowLength}.", nameof(rowLength));
        double worst = 0;
        int worstIndex = -1;
        for (int start = 0; start < expected.Length; start += rowLength)
        {
            var (rowWorst, rowIndex) = WorstRelativeErrorAgainstScale(expected.Slice(start, rowLength), actual.Slice(start, rowLength), floorFraction: 1.0);
            if (rowWorst > worst || worstIndex < 0) { worst = rowWorst; worstIndex = start + rowIndex; }
        }
        return (worst, worstIndex);
    }
}

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
        return (worst, worstIndex);
    }
}

using NUnit.Framework;

namespace Grpo.Native.Tests.Support;

/// <summary>The comparison every numerical test relies on must itself catch what it is there to catch.</summary>
public sealed class CompareTests
{
    [Test]
    public void PoisonedElementFails() =>
        Assert.Throws<AssertionException>(() =>
            Compare.WorstRelativeError("poisoned", [1.0, 2.0], [1.0f, float.NaN]));

    [Test]
    public void InfinityWhereTheReferenceIsFiniteFails() =>
        Assert.Throws<AssertionException>(() =>
            Compare.WorstRelativeError("infinite", [1.0], [float.PositiveInfinity]));

    [Test]
    public void ErrorAboveToleranceFails() =>
        Assert.Throws<AssertionException>(() =>
            Compare.WorstRelativeError("off", [1.0, 3.0], [1.0f, 3.001f], tolerance: 1e-4));

    [Test]
    public void NearZeroValuesAreJudgedAgainstTheTensorScale()
    {
        // 1e-7 absolute error on a value of 1e-6 in a tensor whose largest value is 1: error 1e-4 of the floor 1e-3.
        double worst = Compare.WorstRelativeError("scaled", [1.0, 1e-6], [1.0f, 1.1e-6f], tolerance: 1e-3);
        Assert.That(worst, Is.LessThan(1e-3));
    }

    [Test]
    public void MatchingNaNIsAccepted() =>
        Assert.That(Compare.WorstRelativeError("nan", [double.NaN], [float.NaN]), Is.EqualTo(0));

    [Test]
    public void RowsAreJudgedAgainstTheirOwnLargestValue()
    {
        // Row 0 is large, row 1 small: an absolute error of 1e-6 is 1e-6 of row 0's scale but 1e-2 of row 1's,
        // so the per-row measure fails where a tensor-wide floor would have hidden it.
        double[] expected = [100.0, -50.0, 1e-4, 1e-4];
        float[] actual = [100.0f, -50.000001f, 1e-4f, 1.01e-4f];
        Assert.That(Compare.WorstRelativeError("tensor-wide", expected, actual, tolerance: 1e-3), Is.LessThan(1e-3));
        Assert.Throws<AssertionException>(() => Compare.WorstRowRelativeError("per row", expected, actual, 2, tolerance: 1e-3));

        // A near-zero element of a row is judged against that row's largest value.
        double worst = Compare.WorstRowRelativeError("near zero", [1.0, 1e-9], [1.0f, 2e-7f], 2, tolerance: 1e-6);
        Assert.That(worst, Is.EqualTo(2e-7).Within(1e-9));
        Assert.Throws<AssertionException>(() => Compare.WorstRowRelativeError("nan", [1.0, 1.0], [1.0f, float.NaN], 2, tolerance: 1));
        Assert.Throws<ArgumentException>(() => Compare.WorstRowRelativeError("ragged", [1.0, 2.0, 3.0], [1f, 2f, 3f], 2, tolerance: 1));
    }
}

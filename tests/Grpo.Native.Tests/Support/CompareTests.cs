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
}

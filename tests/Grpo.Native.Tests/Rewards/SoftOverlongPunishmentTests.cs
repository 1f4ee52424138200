using Grpo.Native.Rewards;
using NUnit.Framework;

namespace Grpo.Native.Tests.Rewards;

/// <summary>
/// TRL's get_soft_overlong_punishment: 0 for L ≤ L_max − c, (L_max − c − L) / c up to L_max, −1 beyond,
/// at the boundaries, with values computed by hand.
/// </summary>
public sealed class SoftOverlongPunishmentTests
{
    // L_max = 10, c = 3: the band is L = 8, 9, 10, where the values are −1/3, −2/3, −1.
    [TestCase(0, 0.0)]
    [TestCase(7, 0.0, TestName = "L = L_max − c")]
    [TestCase(8, -1.0 / 3, TestName = "L = L_max − c + 1")]
    [TestCase(9, -2.0 / 3)]
    [TestCase(10, -1.0, TestName = "L = L_max")]
    [TestCase(11, -1.0, TestName = "L = L_max + 1")]
    [TestCase(1000, -1.0)]
    public void BoundariesOfTheBand(int length, double expected) =>
        Assert.That(new SoftOverlongPunishment(10, 3).Score(length), Is.EqualTo(expected).Within(1e-7), $"L = {length}");

    [Test]
    public void TrlsDocstringExample()
    {
        // get_soft_overlong_punishment(max_completion_len=100, soft_punish_cache=20)([[1] * 90]) == [-0.5]
        var p = new SoftOverlongPunishment(100, 20);
        Assert.That(p.Score(90), Is.EqualTo(-0.5f));
        Assert.That(p.Score(80), Is.EqualTo(0f));
        Assert.That(p.Score(81), Is.EqualTo(-0.05f).Within(1e-7));
    }

    [Test]
    public void ABandAsWideAsTheLimitPunishesFromTheFirstToken()
    {
        var p = new SoftOverlongPunishment(4, 4);
        Assert.That(new[] { p.Score(0), p.Score(1), p.Score(2), p.Score(4), p.Score(5) }, Is.EqualTo(new[] { 0f, -0.25f, -0.5f, -1f, -1f }));
    }

    [TestCase(100, 20)]
    [TestCase(64, 12)]
    [TestCase(9, 1)]
    [TestCase(4, 1)]
    [TestCase(1, 1)]
    public void TheDefaultBandIsTwentyPercentRoundedDownAtLeastOne(int max, int expected)
    {
        Assert.That(SoftOverlongPunishment.DefaultBuffer(max), Is.EqualTo(expected));
        Assert.That(new SoftOverlongPunishment(max).Buffer, Is.EqualTo(expected));
    }

    [Test]
    public void TheRewardFunctionCountsCompletionTokensNotCharacters()
    {
        var function = new SoftOverlongPunishment(100, 20).ToRewardFunction(weight: 2f);
        Assert.That(function.Name, Is.EqualTo("soft_overlong_punishment"));
        Assert.That(function.Weight, Is.EqualTo(2f));
        Assert.That(function.Score(RewardInputs.Of("short text", tokens: 90), default).Result, Is.EqualTo(-0.5f));
        Assert.That(function.Score(RewardInputs.Of(new string('x', 500), tokens: 3), default).Result, Is.EqualTo(0f));
    }

    [TestCase(0, null, "maxCompletionLength")]
    [TestCase(-5, 1, "maxCompletionLength")]
    [TestCase(100, 0, "buffer")]
    [TestCase(100, -1, "buffer")]
    [TestCase(100, 101, "buffer")]
    public void OutOfRangeArgumentsAreRefusedByName(int max, int? buffer, string parameter)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new SoftOverlongPunishment(max, buffer));
        Assert.That(error!.ParamName, Is.EqualTo(parameter));
        Assert.That(error.Message, Does.Contain($"'{parameter}' is"));
    }

    [Test]
    public void ANegativeLengthIsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new SoftOverlongPunishment(10, 3).Score(-1));
}

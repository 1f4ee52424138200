using Grpo.Native.Rewards;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Training;

/// <summary>What pass@1 counts as a pass: the best weighted reward of the functions.</summary>
public sealed class EvaluatorTests
{
    private static readonly BuiltInRewardOptions Options = new() { MaxCompletionLength = 8, RepetitionMaxPenalty = -0.5f };

    [Test]
    public void TheBuiltInRewardsCarryTheirScoreRanges()
    {
        var ranges = BuiltInRewards.Names.ToDictionary(name => name, name =>
        {
            var f = BuiltInRewards.Create(name, Options);
            return (f.MinScore, f.MaxScore);
        });
        Assert.That(ranges["accuracy"], Is.EqualTo(((float?)0f, (float?)1f)));
        Assert.That(ranges["think_format"], Is.EqualTo(((float?)0f, (float?)1f)));
        Assert.That(ranges["soft_overlong_punishment"], Is.EqualTo(((float?)-1f, (float?)0f)));
        Assert.That(ranges["repetition_penalty"], Is.EqualTo(((float?)-0.5f, (float?)0f)));
    }

    [Test]
    public void TheBestWeightedRewardTakesTheMaximumOfPositiveWeightsAndTheMinimumOfNegativeOnes()
    {
        var rewards = BuiltInRewards.Parse("accuracy,think_format,soft_overlong_punishment", "2,-0.5,1", Options);
        // 2·1 + (−0.5)·0 + 1·0
        Assert.That(Evaluator.BestWeightedReward(rewards), Is.EqualTo(2.0));
        Assert.That(Evaluator.BestWeightedReward(BuiltInRewards.Parse("soft_overlong_punishment", "-2", Options)), Is.EqualTo(2.0));
        Assert.That(Evaluator.BestWeightedReward(BuiltInRewards.Parse("accuracy", null, Options)), Is.EqualTo(1.0));
    }

    [Test]
    public void AFunctionWithoutTheBoundItsWeightNeedsIsNamed()
    {
        var custom = RewardFunction.Create("length", (p, c) => c.Length);
        var e = Assert.Throws<ArgumentException>(() => Evaluator.BestWeightedReward([custom]))!;
        Assert.That(e.Message, Does.Contain("'length'").And.Contain("MaxScore").And.Contain("PassThreshold"));
        Assert.That(Evaluator.BestWeightedReward([custom with { MaxScore = 10 }]), Is.EqualTo(10.0));
        Assert.That(() => Evaluator.BestWeightedReward([RewardFunction.Create("length", (p, c) => c.Length, weight: -1f) with { MaxScore = 10 }]),
            Throws.ArgumentException.With.Message.Contain("MinScore"));
    }

    [Test]
    public void OptionsOutOfRangeAreNamed()
    {
        Assert.That(() => new EvaluatorOptions { Samples = 0 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contain("Samples"));
        Assert.That(() => new EvaluatorOptions { MaxCompletionLength = 0 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contain("MaxCompletionLength"));
        Assert.That(() => new EvaluatorOptions { BatchSize = 0 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contain("BatchSize"));
        Assert.That(() => new EvaluatorOptions { PassThreshold = double.NaN }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contain("PassThreshold"));
    }
}

using Grpo.Native.Rewards;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Rewards;

/// <summary>The registry of built-in rewards, its options and the parser of --reward and --reward-weights.</summary>
public sealed class BuiltInRewardsTests
{
    private static readonly BuiltInRewardOptions Options = new() { MaxCompletionLength = 10, OverlongBuffer = 3, RepetitionNgram = 1, RepetitionMaxPenalty = -0.5f };

    private static float ScoreOf(RewardFunction function, RewardInput input) => function.Score(input, default).AsTask().GetAwaiter().GetResult();

    [Test]
    public void TheNamesAreTrlsInAStableOrder() =>
        Assert.That(BuiltInRewards.Names, Is.EqualTo(new[] { "accuracy", "think_format", "soft_overlong_punishment", "repetition_penalty" }));

    [Test]
    public void EveryNameCreatesAFunctionOfThatNameAndWeight()
    {
        foreach (string name in BuiltInRewards.Names)
        {
            var function = BuiltInRewards.Create(name, Options, weight: 0.75f);
            Assert.That((function.Name, function.Weight), Is.EqualTo((name, 0.75f)));
        }
    }

    [Test]
    public void EachFunctionIsTheRewardItIsNamedAfterWithTheOptions()
    {
        var input = RewardInputs.Of("<think>x x</think> \\boxed{4}", tokens: 9, ("answer", "#### 4"));
        Assert.That(ScoreOf(BuiltInRewards.Create("accuracy", Options), input), Is.EqualTo(1f));
        Assert.That(ScoreOf(BuiltInRewards.Create("think_format", Options), input), Is.EqualTo(1f));
        // L_max 10, band 3, 9 tokens: (10 − 3 − 9) / 3.
        Assert.That(ScoreOf(BuiltInRewards.Create("soft_overlong_punishment", Options), input), Is.EqualTo(-2f / 3).Within(1e-7));
        // Unigrams "<think>x", "x</think>", "\boxed{4}": 3 unique of 3.
        Assert.That(ScoreOf(BuiltInRewards.Create("repetition_penalty", Options), input), Is.EqualTo(0f));
        // Unigrams x x x y: 2 unique of 4, times −0.5.
        Assert.That(ScoreOf(BuiltInRewards.Create("repetition_penalty", Options), RewardInputs.Of("x x x y")), Is.EqualTo(-0.25f));
    }

    [Test]
    public void DefaultOptionsAreTwentyPercentTrigramsAndMinusOne()
    {
        var options = new BuiltInRewardOptions { MaxCompletionLength = 100 };
        Assert.That((options.OverlongBuffer, options.RepetitionNgram, options.RepetitionMaxPenalty), Is.EqualTo(((int?)null, 3, -1f)));
        // Band 20 of 100: 90 tokens score (80 − 90) / 20.
        Assert.That(ScoreOf(BuiltInRewards.Create("soft_overlong_punishment", options), RewardInputs.Of("x", tokens: 90)), Is.EqualTo(-0.5f));
        // Trigrams of "a a a a": 1 unique of 2.
        Assert.That(ScoreOf(BuiltInRewards.Create("repetition_penalty", options), RewardInputs.Of("a a a a")), Is.EqualTo(-0.5f));
    }

    [TestCase("acc")]
    [TestCase("Accuracy")]
    [TestCase("accuracy_reward")]
    [TestCase("")]
    public void AnUnknownNameIsRefusedWithTheKnownOnes(string name)
    {
        var error = Assert.Throws<ArgumentException>(() => BuiltInRewards.Create(name, Options));
        Assert.That(error!.ParamName, Is.EqualTo("name"));
        Assert.That(error.Message, Does.Contain($"'{name}'").And.Contain("accuracy, think_format, soft_overlong_punishment, repetition_penalty"));
    }

    [TestCase(0, null, 3, -1f, "MaxCompletionLength")]
    [TestCase(10, 0, 3, -1f, "OverlongBuffer")]
    [TestCase(10, 11, 3, -1f, "OverlongBuffer")]
    [TestCase(10, null, 0, -1f, "RepetitionNgram")]
    [TestCase(10, null, 3, 1f, "RepetitionMaxPenalty")]
    [TestCase(10, null, 3, float.NaN, "RepetitionMaxPenalty")]
    public void OutOfRangeOptionsAreRefusedByName(int max, int? buffer, int ngram, float penalty, string option)
    {
        var options = new BuiltInRewardOptions { MaxCompletionLength = max, OverlongBuffer = buffer, RepetitionNgram = ngram, RepetitionMaxPenalty = penalty };
        var error = Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
        Assert.That(error!.ParamName, Is.EqualTo(option));
        Assert.That(error.Message, Does.Contain($"'{option}' is"));
        Assert.Throws<ArgumentOutOfRangeException>(() => BuiltInRewards.Create("accuracy", options), "Create validates the options");
    }

    [Test]
    public void TheWholeLimitIsAValidBand() =>
        Assert.DoesNotThrow(new BuiltInRewardOptions { MaxCompletionLength = 10, OverlongBuffer = 10 }.Validate);

    [Test]
    public void ParseGivesOneFunctionPerNameInOrderWithItsWeight()
    {
        var functions = BuiltInRewards.Parse("accuracy, think_format ,repetition_penalty", " 1,0.5 , -2e-1", Options);
        Assert.That(functions.Select(f => f.Name), Is.EqualTo(new[] { "accuracy", "think_format", "repetition_penalty" }));
        Assert.That(functions.Select(f => f.Weight), Is.EqualTo(new[] { 1f, 0.5f, -0.2f }));
    }

    [Test]
    public void WithoutWeightsEveryWeightIsOne()
    {
        var functions = BuiltInRewards.Parse("think_format,soft_overlong_punishment", null, Options);
        Assert.That(functions.Select(f => (f.Name, f.Weight)), Is.EqualTo(new[] { ("think_format", 1f), ("soft_overlong_punishment", 1f) }));
    }

    [TestCase("", "--reward is empty")]
    [TestCase(" ", "--reward is empty")]
    [TestCase("accuracy,,think_format", "empty name at position 2")]
    [TestCase("accuracy,", "empty name at position 2")]
    [TestCase("accuracy,format", "--reward names 'format', which is not a built-in reward; choose from accuracy, think_format, soft_overlong_punishment, repetition_penalty")]
    [TestCase("accuracy,think_format,accuracy", "--reward names 'accuracy' twice")]
    public void MalformedRewardListsAreRefused(string names, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => BuiltInRewards.Parse(names, null, Options));
        Assert.That(error!.ParamName, Is.EqualTo("names"));
        Assert.That(error.Message, Does.Contain(message));
    }

    [TestCase("1", "--reward-weights has 1 weight but --reward names 2 functions (accuracy, think_format); give one weight per function, in the same order, e.g. --reward-weights 1,0.5")]
    [TestCase("1,2,3", "--reward-weights has 3 weights but --reward names 2 functions")]
    [TestCase("", "--reward-weights has 1 weight but")]
    [TestCase("1,abc", "--reward-weights: 'abc' (weight 2, of think_format) is not a number")]
    [TestCase("1,", "--reward-weights: '' (weight 2, of think_format) is not a number")]
    [TestCase("1;0.5", "--reward-weights has 1 weight but")]
    [TestCase("1,0,5", "--reward-weights has 3 weights but")]
    [TestCase("NaN,1", "--reward-weights: 'NaN' (weight 1, of accuracy) is not finite")]
    [TestCase("1,Infinity", "'Infinity' (weight 2, of think_format) is not finite")]
    [TestCase("1,1e39", "'1e39' (weight 2, of think_format) is not finite")]
    public void MalformedWeightsAreRefused(string weights, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => BuiltInRewards.Parse("accuracy,think_format", weights, Options));
        Assert.That(error!.ParamName, Is.EqualTo("weights"));
        Assert.That(error.Message, Does.Contain(message));
    }
}

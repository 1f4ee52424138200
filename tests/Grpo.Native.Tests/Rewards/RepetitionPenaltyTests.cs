using Grpo.Native.Rewards;
using NUnit.Framework;

namespace Grpo.Native.Tests.Rewards;

/// <summary>
/// open-r1's get_repetition_penalty_reward: (1 − unique / total word n-grams) · max_penalty over
/// text.lower().split(); n-gram counts computed by hand in each case.
/// </summary>
public sealed class RepetitionPenaltyTests
{
    // (text, n, max penalty, expected)
    [TestCase("a b c a b c a b c", 3, -1f, -4.0 / 7, TestName = "trigrams abc bca cab abc bca cab abc: 3 unique of 7")]
    [TestCase("the the the the the", 3, -1f, -2.0 / 3, TestName = "a fully repeated word: 1 unique trigram of 3")]
    [TestCase("the the the the the", 3, -0.5f, -1.0 / 3, TestName = "the same scaled by max penalty -0.5")]
    [TestCase("one two three four five", 3, -1f, 0.0, TestName = "no repeats: 3 unique of 3")]
    [TestCase("a b c", 3, -1f, 0.0, TestName = "exactly n words: 1 trigram")]
    [TestCase("hello world", 3, -1f, 0.0, TestName = "fewer words than n")]
    [TestCase("", 3, -1f, 0.0, TestName = "empty")]
    [TestCase(" \n\t ", 1, -1f, 0.0, TestName = "only whitespace")]
    [TestCase("The cat THE cat the CAT", 2, -1f, -0.6, TestName = "lowercased first: bigrams (the cat)(cat the) x, 2 unique of 5")]
    [TestCase("a  b\tc\na b c", 3, -1f, -0.25, TestName = "whitespace runs split words: abc bca cab abc, 3 unique of 4")]
    [TestCase("a b. a b", 2, -1f, 0.0, TestName = "punctuation stays in the word: (a b.)(b. a)(a b) all differ")]
    [TestCase("x x y", 1, -1f, -1.0 / 3, TestName = "unigrams: 2 unique of 3")]
    [TestCase("a\u001Fa\u001Fa", 1, -1f, -2.0 / 3, TestName = "U+001F separates words, as in Python's str.split")]
    [TestCase("a\u00A0a\u2003a", 1, -1f, -2.0 / 3, TestName = "Unicode spaces separate words")]
    public void PenaltyOfHandCountedNgrams(string text, int n, float maxPenalty, double expected) =>
        Assert.That(new RepetitionPenalty(n, maxPenalty).Score(text), Is.EqualTo(expected).Within(1e-7), text);

    [Test]
    public void DefaultsAreTrigramsAndMinusOne()
    {
        var p = new RepetitionPenalty();
        Assert.That((p.NgramSize, p.MaxPenalty), Is.EqualTo((3, -1f)));
        Assert.That(p.Score("a b c a b c a b c"), Is.EqualTo(-4.0 / 7).Within(1e-7));
    }

    [Test]
    public void ZeroMaxPenaltyScoresZero() => Assert.That(new RepetitionPenalty(1, 0f).Score("x x x x"), Is.EqualTo(0f));

    [Test]
    public void TheRewardFunctionScoresTheCompletionText()
    {
        var function = new RepetitionPenalty(1, -1f).ToRewardFunction(weight: 0.5f);
        Assert.That(function.Name, Is.EqualTo("repetition_penalty"));
        Assert.That(function.Weight, Is.EqualTo(0.5f));
        Assert.That(function.Score(RewardInputs.Of("x x x x", tokens: 1), default).Result, Is.EqualTo(-0.75f));
    }

    [TestCase(0, -1f, "ngramSize")]
    [TestCase(3, 0.5f, "maxPenalty")]
    [TestCase(3, float.NaN, "maxPenalty")]
    [TestCase(3, float.NegativeInfinity, "maxPenalty")]
    public void OutOfRangeArgumentsAreRefusedByName(int n, float maxPenalty, string parameter)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new RepetitionPenalty(n, maxPenalty));
        Assert.That(error!.ParamName, Is.EqualTo(parameter));
        Assert.That(error.Message, Does.Contain($"'{parameter}' is"));
    }
}

using Grpo.Native.Rewards;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Rewards;

/// <summary>
/// The accuracy check: reference from solution/answer (#### and \boxed), completion's last \boxed else
/// last number, numbers compared numerically; 1 right, 0 wrong or no answer, NaN without a reference.
/// </summary>
public sealed class AccuracyRewardTests
{
    private const string Gsm8kAnswer =
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72";

    private static float Score(string completion, string? reference) => AccuracyReward.Score(completion, reference);

    [TestCase("She sold 72 clips in total.", 1f)]
    [TestCase("The answer is \\boxed{72}.", 1f)]
    [TestCase("She sold 24 clips in May.", 0f, TestName = "a number the reference's worked solution contains, not its answer")]
    [TestCase("#### 71", 0f)]
    public void Gsm8kAnswersAreTheTextAfterTheLastHashes(string completion, float expected) =>
        Assert.That(Score(completion, Gsm8kAnswer), Is.EqualTo(expected));

    [Test]
    public void OnlyTheLastHashesCount()
    {
        Assert.That(Score("5", "first guess #### 3\nthen #### 5"), Is.EqualTo(1f));
        Assert.That(Score("3", "first guess #### 3\nthen #### 5"), Is.EqualTo(0f));
        Assert.That(Score("1000", "#### 1,000"), Is.EqualTo(1f));
    }

    [TestCase("so \\boxed{\\frac{3}{4}}", "3/4", 1f, TestName = "nested braces inside the box")]
    [TestCase("so \\boxed{\\frac{3}{4}}", "0.75", 1f, TestName = "a boxed fraction against a decimal")]
    [TestCase("maybe \\boxed{3}, no: \\boxed{4}", "4", 1f, TestName = "several boxes: the last, right")]
    [TestCase("maybe \\boxed{3}, no: \\boxed{4}", "3", 0f, TestName = "several boxes: the last, wrong")]
    [TestCase("\\boxed{7}, and 8 more lines", "7", 1f, TestName = "a box wins over a later number")]
    [TestCase("\\boxed {12}", "12", 1f, TestName = "a space before the brace")]
    [TestCase("\\boxed{\\text{(B)}}", "(B)", 1f, TestName = "a boxed choice")]
    [TestCase("\\boxed{\\}} and 7", "\\}", 1f, TestName = "an escaped brace in the box is a literal brace, not the box's end")]
    [TestCase("\\boxed{}", "5", 0f, TestName = "an empty box is no answer")]
    [TestCase("12 apples, so \\boxed{1", "1", 1f, TestName = "a box cut off (truncated completion) falls back to the last number")]
    public void BoxedAnswers(string completion, string reference, float expected) =>
        Assert.That(Score(completion, reference), Is.EqualTo(expected));

    [Test]
    public void AReferenceWithABoxUsesItsLastBox()
    {
        const string solution = "We try $x = \\boxed{1}$, which fails; then $x = 3$ works, so the answer is $\\boxed{3}$.";
        Assert.That(Score("\\boxed{3}", solution), Is.EqualTo(1f));
        Assert.That(Score("The answer is 3", solution), Is.EqualTo(1f));
        Assert.That(Score("\\boxed{1}", solution), Is.EqualTo(0f));
        Assert.That(Score("x", "#### the answer is \\boxed{\\frac{1}{2}}"), Is.EqualTo(0f));
        Assert.That(Score("0.5", "#### the answer is \\boxed{\\frac{1}{2}}"), Is.EqualTo(1f));
    }

    [TestCase("First 3 apples, then 5, so 8 in all.", "8", 1f)]
    [TestCase("First 3 apples, then 5, so 8 in all.", "3", 0f)]
    [TestCase("The result is 3.75.", "3.75", 1f, TestName = "a decimal, the sentence's dot not part of it")]
    [TestCase("half, i.e. 1/2", "0.5", 1f, TestName = "a plain fraction in the text")]
    [TestCase("so $\\frac{1}{2}$ of them", "0.5", 1f, TestName = "a LaTeX fraction in the text")]
    [TestCase("12,345 people came", "12345", 1f, TestName = "thousands groups in the text")]
    [TestCase("items 1,2,3", "3", 1f, TestName = "a list is not a thousands group")]
    public void WithoutABoxTheLastNumberIsTheAnswer(string completion, string reference, float expected) =>
        Assert.That(Score(completion, reference), Is.EqualTo(expected));

    [TestCase("The total is 1,000 dollars.", "1000")]
    [TestCase("\\boxed{1000}", "1,000")]
    [TestCase("\\boxed{10{,}000}", "10000", TestName = "LaTeX's {,} grouping")]
    [TestCase("\\boxed{10\\,000}", "10000", TestName = "LaTeX's thin space")]
    [TestCase("\\boxed{5}", "$5")]
    [TestCase("\\boxed{\\$5}", "5")]
    [TestCase("It costs $5.", "5")]
    [TestCase("\\boxed{ 42 }", "42.")]
    [TestCase("\\boxed{42.0}", "42")]
    [TestCase("\\boxed{+7}", "7")]
    public void FormattingDoesNotMatter(string completion, string reference) =>
        Assert.That(Score(completion, reference), Is.EqualTo(1f));

    [TestCase("0.5")]
    [TestCase(".5")]
    [TestCase("1/2")]
    [TestCase("2/4")]
    [TestCase("\\frac{1}{2}")]
    [TestCase("\\dfrac{1}{2}")]
    [TestCase("\\tfrac{1}{2}")]
    [TestCase("\\frac12")]
    [TestCase("\\frac{1}{2}.")]
    public void HalfInEveryNotation(string reference)
    {
        Assert.That(Score("\\boxed{0.5}", reference), Is.EqualTo(1f), "boxed 0.5 against " + reference);
        Assert.That(Score("\\boxed{\\frac{1}{2}}", reference), Is.EqualTo(1f), "boxed \\frac{1}{2} against " + reference);
        Assert.That(Score("\\boxed{1/2}", reference), Is.EqualTo(1f), "boxed 1/2 against " + reference);
        Assert.That(Score("\\boxed{0.51}", reference), Is.EqualTo(0f), "boxed 0.51 against " + reference);
    }

    [TestCase("x = -3", "-3", 1f)]
    [TestCase("\\boxed{-3}", "-3", 1f)]
    [TestCase("x = \u22123", "-3", 1f, TestName = "the Unicode minus sign")]
    [TestCase("\\boxed{-\\frac{3}{4}}", "-0.75", 1f)]
    [TestCase("\\boxed{\\frac{-3}{4}}", "-3/4", 1f)]
    [TestCase("x = 3", "-3", 0f)]
    [TestCase("10-3", "-3", 0f, TestName = "a binary minus is no sign: the last number is 3")]
    [TestCase("(-3)", "-3", 1f)]
    public void NegativeNumbers(string completion, string reference, float expected) =>
        Assert.That(Score(completion, reference), Is.EqualTo(expected));

    [TestCase("\\boxed{50}", "50\\%")]
    [TestCase("\\boxed{50\\%}", "50")]
    [TestCase("about 50% of them", "50")]
    [TestCase("\\boxed{50%}", "50\\%")]
    public void APercentageEqualsItsNumber(string completion, string reference) =>
        Assert.That(Score(completion, reference), Is.EqualTo(1f));

    [Test]
    public void NumbersAgreeWithinARelativeToleranceOf1e9()
    {
        Assert.That(AccuracyReward.RelativeTolerance, Is.EqualTo(1e-9));
        Assert.That(Score("\\boxed{\\frac{1}{3}}", "0.3333333333"), Is.EqualTo(1f), "relative difference 1e-10");
        Assert.That(Score("\\boxed{\\frac{1}{3}}", "0.333333"), Is.EqualTo(0f), "relative difference 1e-6");
        Assert.That(Score("\\boxed{1000000001}", "1000000000"), Is.EqualTo(1f), "|a − b| = 1 ≤ 1e-9 · 1000000001");
        Assert.That(Score("\\boxed{1000000002}", "1000000000"), Is.EqualTo(0f), "|a − b| = 2 > 1e-9 · 1000000002");
        Assert.That(Score("\\boxed{0}", "0"), Is.EqualTo(1f));
        Assert.That(Score("\\boxed{0.000001}", "0"), Is.EqualTo(0f), "no absolute tolerance");
    }

    [TestCase("\\boxed{\\text{(B)}}", "\\text{(B)}", 1f)]
    [TestCase("\\boxed{(C)}", "\\text{(B)}", 0f)]
    [TestCase("\\boxed{x^2+1}", "x^2 + 1", 1f, TestName = "whitespace is ignored")]
    [TestCase("\\boxed{\\textbf{Monday}}", "\\text{Monday}.", 1f)]
    [TestCase("\\boxed{monday}", "Monday", 0f, TestName = "text compares case-sensitively")]
    [TestCase("\\boxed{1+x}", "x+1", 0f, TestName = "no symbolic equivalence")]
    [TestCase("\\boxed{12,34}", "1234", 0f, TestName = "a comma that is no thousands separator is kept")]
    public void NonNumericAnswersCompareAsNormalizedText(string completion, string reference, float expected) =>
        Assert.That(Score(completion, reference), Is.EqualTo(expected));

    [TestCase("I do not know.")]
    [TestCase("")]
    [TestCase("\\boxed{x}")]
    public void ACompletionWithoutTheRightAnswerScoresZero(string completion) => Assert.That(Score(completion, "7"), Is.EqualTo(0f));

    [TestCase(null)]
    [TestCase("")]
    [TestCase("   \n")]
    [TestCase("Natalia sold clips.\n#### ")]
    [TestCase("$ $")]
    [TestCase("\\boxed{12")]
    [TestCase("the answer is \\boxed 12")]
    public void AnUnparseableReferenceIsNoScore(string? reference) => Assert.That(Score("\\boxed{12}", reference), Is.NaN);

    [Test]
    public void TheReferenceIsTheSolutionColumnElseTheAnswerColumn()
    {
        Assert.That(AccuracyReward.ReferenceColumns, Is.EqualTo(new[] { "solution", "answer" }));
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("7", ("solution", "7"), ("answer", "8"))), Is.EqualTo(1f));
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("8", ("solution", "7"), ("answer", "8"))), Is.EqualTo(0f));
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("8", ("solution", null), ("answer", "#### 8"))), Is.EqualTo(1f));
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("72", ("question", "How many?"), ("answer", Gsm8kAnswer))), Is.EqualTo(1f));
    }

    [Test]
    public void NumericColumnsAreReferencesToo()
    {
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("so 72", ("answer", 72L))), Is.EqualTo(1f));
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("so 71", ("answer", 72L))), Is.EqualTo(0f));
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("\\boxed{\\frac{1}{2}}", ("answer", 0.5))), Is.EqualTo(1f));
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("\\boxed{0.00001}", ("answer", 1e-5))), Is.EqualTo(1f));
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("\\boxed{3}", ("answer", 3))), Is.EqualTo(1f));
    }

    [Test]
    public void ARowWithoutAUsableReferenceIsNoScore()
    {
        Assert.That(AccuracyReward.Score(RewardInputs.Of("\\boxed{1}")), Is.NaN, "no columns");
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("\\boxed{1}", ("question", "1"), ("Answer", "1"))), Is.NaN, "no solution or answer column (names are case-sensitive)");
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("\\boxed{1}", ("solution", null), ("answer", null))), Is.NaN, "both null");
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("\\boxed{1}", ("answer", true))), Is.NaN, "a bool");
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("\\boxed{1}", ("answer", new List<object?> { 1L }))), Is.NaN, "a list");
        Assert.That(AccuracyReward.Score(RewardInputs.WithColumns("\\boxed{1}", ("answer", double.NaN))), Is.NaN, "a NaN");
    }

    [Test]
    public void NoScoreIsNotAFailureOfTheScorer()
    {
        var inputs = new[]
        {
            RewardInputs.WithColumns("\\boxed{4}", ("answer", "#### 4")),
            RewardInputs.WithColumns("\\boxed{4}"),
            RewardInputs.WithColumns("\\boxed{5}", ("answer", "#### 4")),
        };
        var scores = RewardScorer.ScoreAsync([AccuracyReward.Create(weight: 2f)], inputs, timeout: null).GetAwaiter().GetResult();
        Assert.That(scores.Scores, Is.EqualTo(new[] { 1f, float.NaN, 0f }));
        Assert.That(scores.Failures, Is.EqualTo(new[] { 0 }));
    }
}

using Grpo.Native.Rewards;
using NUnit.Framework;

namespace Grpo.Native.Tests.Rewards;

/// <summary>
/// TRL's think_format_reward, r"^&lt;think&gt;(?!.*&lt;think&gt;)(.*?)&lt;/think&gt;.*$" under re.match with
/// DOTALL | MULTILINE: each case's expected value is what Python's re.match gives.
/// </summary>
public sealed class ThinkFormatRewardTests
{
    [TestCase("<think>\nThis is my reasoning.\n</think>\nThis is my answer.", TestName = "TRL's docstring example, positive")]
    [TestCase("<think></think>", TestName = "an empty think block")]
    [TestCase("<think>a</think>", TestName = "nothing after the block")]
    [TestCase("<think>line 1\nline 2\n\n</think>\nanswer\nmore lines", TestName = "newlines inside and after (DOTALL)")]
    [TestCase("<think>a</think>b</think>", TestName = "a second closing tag is allowed")]
    [TestCase("<think> </think> 42 <answer>x</answer>", TestName = "anything after the block")]
    public void WellFormedCompletionsScoreOne(string completion) =>
        Assert.That(ThinkFormatReward.Score(completion), Is.EqualTo(1f), completion);

    [TestCase("<think>\nThis is my reasoning.\nThis is my answer.", TestName = "TRL's docstring example, negative: never closed")]
    [TestCase(" <think>a</think>", TestName = "a leading space")]
    [TestCase("\n<think>a</think>", TestName = "a leading newline (MULTILINE's ^ must not rescue it)")]
    [TestCase("Let me think.\n<think>a</think>", TestName = "text before, the tag at a later line start")]
    [TestCase("answer <think>a</think>", TestName = "text before on the same line")]
    [TestCase("<think>a</think><think>b</think>", TestName = "a second think block")]
    [TestCase("<think><think>a</think>", TestName = "a second opening tag inside")]
    [TestCase("<think>a</think>\nthen <think>", TestName = "a second opening tag after the block")]
    [TestCase("<think>a<think></think>", TestName = "a second opening tag before the close")]
    [TestCase("</think>", TestName = "only a closing tag")]
    [TestCase("<THINK>a</THINK>", TestName = "upper case tags")]
    [TestCase("", TestName = "empty")]
    public void MalformedCompletionsScoreZero(string completion) =>
        Assert.That(ThinkFormatReward.Score(completion), Is.EqualTo(0f), completion);

    [Test]
    public void TheRewardFunctionScoresTheCompletionText()
    {
        var function = ThinkFormatReward.Create(weight: 0.25f);
        Assert.That(function.Name, Is.EqualTo("think_format"));
        Assert.That(function.Weight, Is.EqualTo(0.25f));
        Assert.That(function.Score(RewardInputs.Of("<think>x</think>y"), default).Result, Is.EqualTo(1f));
        Assert.That(function.Score(RewardInputs.Of("y<think>x</think>"), default).Result, Is.EqualTo(0f));
    }
}

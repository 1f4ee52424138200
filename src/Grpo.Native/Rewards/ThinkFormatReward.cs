using System.Text.RegularExpressions;
using Grpo.Native.Training;

namespace Grpo.Native.Rewards;

/// <summary>
/// TRL's <c>think_format_reward</c>: 1 when the completion starts with <c>&lt;think&gt;</c>, opens no
/// second <c>&lt;think&gt;</c>, and closes the block with <c>&lt;/think&gt;</c> (anything may follow); else 0.
/// </summary>
public static partial class ThinkFormatReward
{
    /// <summary>The name in metrics and on the command line.</summary>
    public const string Name = "think_format";

    // TRL, trl/rewards/format_rewards.py, verbatim:
    //   pattern = r"^<think>(?!.*<think>)(.*?)</think>.*$"
    //   re.match(pattern, content, re.DOTALL | re.MULTILINE)
    [GeneratedRegex(@"^<think>(?!.*<think>)(.*?)</think>.*$", RegexOptions.Singleline | RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();

    /// <summary>1 when <paramref name="completion"/> has TRL's think format, else 0.</summary>
    public static float Score(string completion)
    {
        ArgumentNullException.ThrowIfNull(completion);
        // re.match tries position 0 only; .NET searches on, and with Multiline '^' also matches after any '\n'.
        // A match at 0, when there is one, is the leftmost, so Index == 0 is exactly re.match's answer.
        var match = Pattern().Match(completion);
        return match.Success && match.Index == 0 ? 1f : 0f;
    }

    /// <summary>The reward as a <see cref="RewardFunction"/> named <see cref="Name"/>.</summary>
    /// <param name="weight">Its weight in the sum of rewards.</param>
    /// <returns>The function, with scores in [0, 1] (<see cref="RewardFunction.MinScore"/>, <see cref="RewardFunction.MaxScore"/>).</returns>
    public static RewardFunction Create(float weight = 1f) =>
        RewardFunction.Create(Name, input => Score(input.Completion), weight) with { MinScore = 0f, MaxScore = 1f };
}

using Grpo.Native.Training;

namespace Grpo.Native.Rewards;

/// <summary>
/// The built-in reward functions by name (TRL's and open-r1's, see each type): <c>accuracy</c>,
/// <c>think_format</c>, <c>soft_overlong_punishment</c>, <c>repetition_penalty</c>. Each carries its score range
/// (<see cref="RewardFunction.MinScore"/>, <see cref="RewardFunction.MaxScore"/>): accuracy and think_format [0, 1],
/// soft_overlong_punishment [−1, 0], repetition_penalty [max penalty, 0]; the best is 1, 1, 0 and 0.
/// </summary>
public static partial class BuiltInRewards
{
    /// <summary>The names <see cref="Create"/> knows, in a stable order.</summary>
    public static IReadOnlyList<string> Names { get; } =
        [AccuracyReward.Name, ThinkFormatReward.Name, SoftOverlongPunishment.Name, RepetitionPenalty.Name];

    /// <summary>The built-in reward named <paramref name="name"/>, as a <see cref="RewardFunction"/> of that name.</summary>
    /// <param name="name">One of <see cref="Names"/> (exact, lowercase).</param>
    /// <param name="options">Parameters of the rewards that have any; validated here.</param>
    /// <param name="weight">Its weight in the sum of rewards; finite.</param>
    /// <exception cref="ArgumentException">The name is unknown (the message lists the known ones).</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option or the weight is out of range.</exception>
    public static RewardFunction Create(string name, BuiltInRewardOptions options, float weight = 1f)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return name switch
        {
            AccuracyReward.Name => AccuracyReward.Create(weight),
            ThinkFormatReward.Name => ThinkFormatReward.Create(weight),
            SoftOverlongPunishment.Name => new SoftOverlongPunishment(options.MaxCompletionLength, options.OverlongBuffer).ToRewardFunction(weight),
            RepetitionPenalty.Name => new RepetitionPenalty(options.RepetitionNgram, options.RepetitionMaxPenalty).ToRewardFunction(weight),
            _ => throw new ArgumentException($"There is no built-in reward named '{name}'; choose from {string.Join(", ", Names)}.", nameof(name)),
        };
    }
}

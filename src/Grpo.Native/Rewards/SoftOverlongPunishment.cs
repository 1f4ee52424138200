using Grpo.Native.Training;

namespace Grpo.Native.Rewards;

/// <summary>
/// TRL's <c>get_soft_overlong_punishment(max_completion_len, soft_punish_cache)</c>, DAPO's Eq. 13. With
/// L the completion's token count (stop token included, as TRL's completion_ids), L_max =
/// <see cref="MaxCompletionLength"/> and c = <see cref="Buffer"/>: 0 when L ≤ L_max − c;
/// (L_max − c − L) / c when L_max − c &lt; L ≤ L_max, falling linearly to −1; −1 when L &gt; L_max.
/// </summary>
public sealed class SoftOverlongPunishment
{
    /// <summary>The name in metrics and on the command line.</summary>
    public const string Name = "soft_overlong_punishment";

    /// <summary>Creates the punishment.</summary>
    /// <param name="maxCompletionLength">L_max in tokens: the trainer's MaxCompletionLength.</param>
    /// <param name="buffer">c, the soft band's width in tokens, in [1, L_max]; null for <see cref="DefaultBuffer"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A length is out of range.</exception>
    public SoftOverlongPunishment(int maxCompletionLength, int? buffer = null)
    {
        if (maxCompletionLength < 1)
            throw new ArgumentOutOfRangeException(nameof(maxCompletionLength), maxCompletionLength,
                $"'{nameof(maxCompletionLength)}' is {maxCompletionLength}: pass the trainer's MaxCompletionLength, at least 1 token.");
        int c = buffer ?? DefaultBuffer(maxCompletionLength);
        // TRL accepts c = 0 (a hard −1 past L_max), but our completions never pass L_max, so it would never punish.
        if (c < 1 || c > maxCompletionLength)
            throw new ArgumentOutOfRangeException(nameof(buffer), buffer,
                $"'{nameof(buffer)}' is {buffer}: the soft band must be 1 to {nameof(maxCompletionLength)} = {maxCompletionLength} tokens (default 20%: {DefaultBuffer(maxCompletionLength)}).");
        MaxCompletionLength = maxCompletionLength;
        Buffer = c;
    }

    /// <summary>L_max in tokens.</summary>
    public int MaxCompletionLength { get; }

    /// <summary>c: the width in tokens of the band before L_max where the punishment grows from 0 to −1.</summary>
    public int Buffer { get; }

    /// <summary>The default band: 20% of L_max, rounded down, at least 1 token (DAPO: 4,096 of 20,480).</summary>
    public static int DefaultBuffer(int maxCompletionLength) => Math.Max(1, maxCompletionLength / 5);

    /// <summary>The punishment of a completion of <paramref name="completionLength"/> tokens, in [−1, 0].</summary>
    public float Score(int completionLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(completionLength);
        int softStart = MaxCompletionLength - Buffer;
        if (completionLength <= softStart) return 0f;
        if (completionLength <= MaxCompletionLength) return (float)((double)(softStart - completionLength) / Buffer);
        return -1f;
    }

    /// <summary>The punishment as a <see cref="RewardFunction"/> named <see cref="Name"/>, scoring CompletionTokens.Count.</summary>
    /// <param name="weight">Its weight in the sum of rewards.</param>
    /// <returns>The function, with scores in [−1, 0] (<see cref="RewardFunction.MinScore"/>, <see cref="RewardFunction.MaxScore"/>).</returns>
    public RewardFunction ToRewardFunction(float weight = 1f) =>
        RewardFunction.Create(Name, input => Score(input.CompletionTokens.Count), weight) with { MinScore = -1f, MaxScore = 0f };
}

namespace Grpo.Native.Rewards;

/// <summary>
/// The parameters of the built-in rewards that have any. <see cref="Validate"/> names the first one out
/// of range and how to fix it; <see cref="BuiltInRewards.Create"/> validates.
/// </summary>
public sealed record BuiltInRewardOptions
{
    /// <summary>L_max of <c>soft_overlong_punishment</c>: the trainer's MaxCompletionLength, in tokens.</summary>
    public required int MaxCompletionLength { get; init; }

    /// <summary>
    /// The soft band of <c>soft_overlong_punishment</c> (TRL's soft_punish_cache), in tokens, in
    /// [1, <see cref="MaxCompletionLength"/>]; null for 20% of it (<see cref="SoftOverlongPunishment.DefaultBuffer"/>).
    /// </summary>
    public int? OverlongBuffer { get; init; }

    /// <summary>n of <c>repetition_penalty</c>: words per n-gram, at least 1. Default 3.</summary>
    public int RepetitionNgram { get; init; } = 3;

    /// <summary>The most negative reward of <c>repetition_penalty</c>, finite and ≤ 0. Default −1.</summary>
    public float RepetitionMaxPenalty { get; init; } = -1f;

    /// <summary>Throws for the first option out of range, naming it and the fix.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public void Validate()
    {
        static void Check(bool ok, string name, object? value, string fix)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"'{name}' is {value}: {fix}");
        }
        Check(MaxCompletionLength >= 1, nameof(MaxCompletionLength), MaxCompletionLength, "pass the trainer's MaxCompletionLength, at least 1 token.");
        Check(OverlongBuffer is null || (OverlongBuffer >= 1 && OverlongBuffer <= MaxCompletionLength), nameof(OverlongBuffer), OverlongBuffer,
            $"the soft band (--overlong-buffer) must be 1 to {nameof(MaxCompletionLength)} = {MaxCompletionLength} tokens, or null for 20% " +
            $"({SoftOverlongPunishment.DefaultBuffer(MaxCompletionLength)}).");
        Check(RepetitionNgram >= 1, nameof(RepetitionNgram), RepetitionNgram, "n-grams need at least 1 word (3 is usual).");
        Check(float.IsFinite(RepetitionMaxPenalty) && RepetitionMaxPenalty <= 0, nameof(RepetitionMaxPenalty), RepetitionMaxPenalty,
            "it is the most negative reward, so it must be finite and not positive (−1 is usual).");
    }
}

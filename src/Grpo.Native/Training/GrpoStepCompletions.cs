namespace Grpo.Native.Training;

/// <summary>
/// The completions of one GRPO step with their scores: what TRL's <c>log_completions</c> table shows. Completion n
/// belongs to prompt n / G. Everything is on the host; the trainer copies the (N) rewards and advantages from the
/// device once per step.
/// </summary>
/// <param name="Step">The step (1-based) these completions were trained on.</param>
/// <param name="Inputs">(N) what each reward function saw: prompt and completion text and tokens, the row's columns.</param>
/// <param name="RewardNames">(F) the reward functions' names, in the order of <paramref name="Scores"/>' columns.</param>
/// <param name="Scores">(N, F) row-major: each function's raw (unweighted) score; NaN = no score or a failure.</param>
/// <param name="Rewards">(N) the weighted reward r_n (Σ over the functions that scored it); NaN when none did.</param>
/// <param name="Advantages">(N) the advantage each completion was trained with.</param>
public sealed record GrpoStepCompletions(int Step, IReadOnlyList<RewardInput> Inputs, IReadOnlyList<string> RewardNames,
    float[] Scores, float[] Rewards, float[] Advantages);

using System.Collections.ObjectModel;

namespace Grpo.Native.Training;

/// <summary>
/// What a reward function sees of one completion: its text and tokens and, in <see cref="Columns"/>,
/// the other columns of the dataset row its prompt came from (TRL passes those to reward functions as
/// keyword arguments; a reference answer in a <c>solution</c> or <c>answer</c> column, say).
/// </summary>
/// <param name="Prompt">The prompt as text.</param>
/// <param name="Completion">The completion as text (the stop token, if any, decoded too).</param>
/// <param name="PromptTokens">The prompt's token ids.</param>
/// <param name="CompletionTokens">The completion's token ids (the stop token included when one was sampled, as TRL's completion_ids).</param>
/// <param name="PromptIndex">Index of the prompt in the step (completions of one prompt share it).</param>
/// <param name="Truncated">True when the completion hit the length limit without a stop token.</param>
public sealed record RewardInput(string Prompt, string Completion, IReadOnlyList<int> PromptTokens,
    IReadOnlyList<int> CompletionTokens, int PromptIndex, bool Truncated)
{
    private readonly IReadOnlyDictionary<string, object?> _columns = ReadOnlyDictionary<string, object?>.Empty;

    /// <summary>
    /// The dataset row's columns other than the prompt, by column name (case-sensitive), with the values
    /// a JSONL or Parquet row holds: string, long, double, bool, null or a list of those. Empty (never
    /// null) when the prompts did not come from a dataset row (GrpoTrainer.TrainStep without prompt columns).
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null; leave it unset for "no columns".</exception>
    public IReadOnlyDictionary<string, object?> Columns
    {
        get => _columns;
        init => _columns = value ?? throw new ArgumentNullException(nameof(Columns), "Columns cannot be null; leave it unset for a row without other columns.");
    }
}

/// <summary>
/// One named reward function and its weight: r_i = Σ_f weight_f · reward_f(completion_i). Return NaN
/// for "this function does not score this completion". Sync and async functions are both accepted;
/// the trainer scores a step's completions concurrently.
/// </summary>
public sealed record RewardFunction
{
    private RewardFunction(string name, float weight, Func<RewardInput, CancellationToken, ValueTask<float>> score)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Contains('/'))
            throw new ArgumentException($"Reward function name '{name}' contains '/', which separates metric names (rewards/NAME/mean); choose another.", nameof(name));
        if (!float.IsFinite(weight))
            throw new ArgumentOutOfRangeException(nameof(weight), weight, $"The weight of reward function '{name}' must be finite.");
        Name = name;
        Weight = weight;
        Score = score;
    }

    /// <summary>The name, used in metrics as rewards/NAME/mean and /std.</summary>
    public string Name { get; }

    /// <summary>The weight in the sum.</summary>
    public float Weight { get; }

    /// <summary>The function.</summary>
    public Func<RewardInput, CancellationToken, ValueTask<float>> Score { get; }

    /// <summary>
    /// The lowest score the function gives (before its weight), or null when unknown or unbounded. With
    /// <see cref="MaxScore"/> it defines the best weighted reward an evaluation counts as a pass (pass@1): a function
    /// with a negative weight does best at its minimum. The built-in rewards set both.
    /// </summary>
    public float? MinScore { get; init; }

    /// <summary>The highest score the function gives (before its weight), or null when unknown or unbounded. See <see cref="MinScore"/>.</summary>
    public float? MaxScore { get; init; }

    /// <summary>
    /// The best value of weight · score: weight · <see cref="MaxScore"/> for a weight ≥ 0, weight · <see cref="MinScore"/>
    /// for a negative one; null when that bound is not known.
    /// </summary>
    public double? BestWeightedScore => (Weight >= 0 ? MaxScore : MinScore) is { } bound ? (double)Weight * bound : null;

    /// <summary>A synchronous reward of (prompt, completion) text. See <see cref="Create(string, Func{RewardInput, float}, float)"/> for timeouts.</summary>
    public static RewardFunction Create(string name, Func<string, string, float> score, float weight = 1f)
    {
        ArgumentNullException.ThrowIfNull(score);
        return Create(name, input => score(input.Prompt, input.Completion), weight);
    }

    /// <summary>
    /// A synchronous reward that sees everything about the completion. Each call runs on the thread pool, so one
    /// that hangs or runs past the trainer's RewardTimeout is abandoned like an async one (scored as a failure);
    /// its thread is left to finish on its own, since .NET cannot stop a thread.
    /// </summary>
    public static RewardFunction Create(string name, Func<RewardInput, float> score, float weight = 1f)
    {
        ArgumentNullException.ThrowIfNull(score);
        return new RewardFunction(name, weight, (input, token) => new ValueTask<float>(Task.Run(() => score(input), token)));
    }

    /// <summary>An asynchronous reward (a call to a verifier service, say).</summary>
    public static RewardFunction CreateAsync(string name, Func<RewardInput, CancellationToken, ValueTask<float>> score, float weight = 1f)
    {
        ArgumentNullException.ThrowIfNull(score);
        return new RewardFunction(name, weight, score);
    }
}

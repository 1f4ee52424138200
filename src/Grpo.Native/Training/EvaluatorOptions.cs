using Grpo.Native.Operations;

namespace Grpo.Native.Training;

/// <summary>
/// How <see cref="Evaluator"/> measures a policy. <see cref="Validate"/> names the first option out of range and the
/// fix; the evaluator validates on construction.
/// </summary>
public sealed record EvaluatorOptions
{
    /// <summary>Most tokens generated per completion; a completion that reaches it without a stop token is truncated. Default 256.</summary>
    public int MaxCompletionLength { get; init; } = 256;

    /// <summary>K: completions sampled per prompt for the mean reward, at least 1. Default 8.</summary>
    public int Samples { get; init; } = 8;

    /// <summary>
    /// Temperature and filters of the K samples. Default temperature 1, no filters. The pass@1 completion is always
    /// greedy (temperature 0); at temperature 0 the samples are that greedy completion, generated once.
    /// </summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Token ids that end a completion (included in it). Empty: completions run to the limit.</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];

    /// <summary>Prompts generated together, through one key/value cache (the K samples of each too). Default 8.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Seed of the samples: the same seed, batch size and prompts give the same samples on every backend. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>
    /// The weighted reward a greedy completion must reach to count as a pass; null (the default) for the best weighted
    /// reward, Σ_f <see cref="RewardFunction.BestWeightedScore"/>, which needs every function's bound (the built-in
    /// rewards have them: accuracy 1, think_format 1, soft_overlong_punishment 0, repetition_penalty 0).
    /// </summary>
    public double? PassThreshold { get; init; }

    /// <summary>Longest a reward function call may run before it counts as failed (scored NaN). Null: no limit. Default 30 s.</summary>
    public TimeSpan? RewardTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws for the first option out of range, naming it and the fix.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    /// <exception cref="ArgumentNullException"><see cref="Sampling"/> or <see cref="StopTokens"/> is null.</exception>
    public void Validate()
    {
        static void Check(bool ok, string name, object? value, string fix)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"'{name}' is {value}: {fix}");
        }
        Check(MaxCompletionLength >= 1, nameof(MaxCompletionLength), MaxCompletionLength, "generate at least 1 token per completion.");
        Check(Samples >= 1, nameof(Samples), Samples, "sample at least 1 completion per prompt for the mean reward.");
        Check(BatchSize >= 1, nameof(BatchSize), BatchSize, "generate at least 1 prompt at a time.");
        Check(PassThreshold is null || double.IsFinite(PassThreshold.Value), nameof(PassThreshold), PassThreshold,
            "it must be a finite reward, or null for the best weighted reward of the functions.");
        Check(RewardTimeout is null || RewardTimeout > TimeSpan.Zero, nameof(RewardTimeout), RewardTimeout, "it must be positive, or null for no limit.");
        ArgumentNullException.ThrowIfNull(Sampling, nameof(Sampling));
        ArgumentNullException.ThrowIfNull(StopTokens, nameof(StopTokens));
        Sampling.Validate();
    }
}

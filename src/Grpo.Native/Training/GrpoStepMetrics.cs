namespace Grpo.Native.Training;

/// <summary>Seconds one step spent in each phase: device time between marks in its queue (StepPhaseTimer), with no wait at the boundaries.</summary>
/// <param name="Rollout">Sampling the completions with the KV cache.</param>
/// <param name="Rewards">Calling the reward functions and computing the advantages.</param>
/// <param name="ReferenceLogprobs">Reference-model log-probs (β &gt; 0) and old log-probs (μ &gt; 1).</param>
/// <param name="PolicyForwardBackward">The policy's forward, loss and backward passes, all micro-batches and iterations.</param>
/// <param name="Optimizer">Gradient norm, clipping and AdamW.</param>
public sealed record GrpoPhaseTimes(double Rollout, double Rewards, double ReferenceLogprobs, double PolicyForwardBackward, double Optimizer);

/// <summary>
/// What one GRPO step measured, under TRL's metric names (<see cref="ToDictionary"/>), so curves
/// from this library and from TRL can be read side by side.
/// </summary>
public sealed record GrpoStepMetrics
{
    /// <summary>The 1-based step this describes.</summary>
    public required int Step { get; init; }
    /// <summary><c>reward</c>: mean weighted reward over scored completions.</summary>
    public required float Reward { get; init; }
    /// <summary><c>reward_std</c>: mean over groups of the group's reward std (TRL's definition).</summary>
    public required float RewardStd { get; init; }
    /// <summary><c>rewards/NAME/mean</c> and <c>/std</c> per reward function (NaN scores left out).</summary>
    public required IReadOnlyDictionary<string, (float Mean, float Std)> RewardsPerFunction { get; init; }
    /// <summary>Calls per reward function that threw, timed out or returned ±∞ (scored as missing).</summary>
    public required IReadOnlyDictionary<string, int> RewardFailures { get; init; }
    /// <summary><c>frac_reward_zero_std</c>: groups that give no learning signal.</summary>
    public required float FracRewardZeroStd { get; init; }
    /// <summary><c>kl</c>: masked mean k3 KL to the reference (0 when β = 0).</summary>
    public required float Kl { get; init; }
    /// <summary><c>entropy</c>: masked mean entropy of the policy.</summary>
    public required float Entropy { get; init; }
    /// <summary><c>clip_ratio/low_mean</c>.</summary>
    public required float ClipRatioLow { get; init; }
    /// <summary><c>clip_ratio/high_mean</c>.</summary>
    public required float ClipRatioHigh { get; init; }
    /// <summary><c>clip_ratio/region_mean</c>.</summary>
    public required float ClipRatioRegion { get; init; }
    /// <summary><c>pg_clipfrac_lower</c> (verl's name): tokens whose loss the dual clip decided; 0 when it is off.</summary>
    public float DualClipRatio { get; init; }
    /// <summary><c>cispo_clip_ratio</c>: tokens whose CISPO weight was capped (A &gt; 0); 0 unless the loss is cispo.</summary>
    public float CispoClipRatio { get; init; }
    /// <summary><c>completions/mean_length</c>.</summary>
    public required float MeanLength { get; init; }
    /// <summary><c>completions/min_length</c>.</summary>
    public required int MinLength { get; init; }
    /// <summary><c>completions/max_length</c>.</summary>
    public required int MaxLength { get; init; }
    /// <summary><c>completions/clipped_ratio</c>: completions truncated at the length limit.</summary>
    public required float ClippedRatio { get; init; }
    /// <summary><c>grad_norm</c> before clipping (of the last of the μ updates).</summary>
    public required float GradNorm { get; init; }
    /// <summary><c>learning_rate</c> of the last update.</summary>
    public required float LearningRate { get; init; }
    /// <summary><c>loss</c> (averaged over the μ iterations that ran). 0 with μ = 1 and β = 0 is expected: see the README.</summary>
    public required float Loss { get; init; }
    /// <summary><c>step_time</c> in seconds.</summary>
    public required double StepTime { get; init; }
    /// <summary><c>tokens/s</c>: completion tokens sampled per second of step time.</summary>
    public required double TokensPerSecond { get; init; }
    /// <summary>Where the step's time went.</summary>
    public required GrpoPhaseTimes Phases { get; init; }
    /// <summary>True when no update was applied because the loss or a gradient was not finite (weights and optimizer state untouched).</summary>
    public bool Skipped { get; init; }

    /// <summary>
    /// <c>updates</c>: how many of the μ = NumIterations updates were applied. Fewer than μ when a later iteration's loss or
    /// gradient was not finite: that update and the ones after it were dropped, the earlier ones kept. 0 means <see cref="Skipped"/>.
    /// </summary>
    public int UpdatesApplied { get; init; }

    /// <summary><c>dynamic_sampling/generation_batches</c>: batches of prompts generated for this step; null without dynamic sampling.</summary>
    public int? GenerationBatches { get; init; }

    /// <summary><c>dynamic_sampling/dropped_groups</c>: groups generated but not trained on (all rewards equal, or surplus); null without dynamic sampling.</summary>
    public int? DroppedGroups { get; init; }

    /// <summary><c>world_size</c>: the ranks of the data-parallel run that produced the step (1 for one process).</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary><c>time/allreduce</c>: seconds this rank spent in collective operations (gathers, the gradient all-reduce) during the step.</summary>
    public double CommunicationTime { get; init; }

    /// <summary>Further metrics by name that the caller adds (e.g. <c>prompts/skipped</c> of a dataset run); written after the others.</summary>
    public IReadOnlyDictionary<string, double>? Extra { get; init; }

    /// <summary>The metrics under TRL's names (one flat dictionary; metrics.jsonl writes it per step).</summary>
    public IReadOnlyDictionary<string, double> ToDictionary()
    {
        var d = new Dictionary<string, double>
        {
            ["step"] = Step,
            ["reward"] = Reward,
            ["reward_std"] = RewardStd,
            ["frac_reward_zero_std"] = FracRewardZeroStd,
            ["kl"] = Kl,
            ["entropy"] = Entropy,
            ["clip_ratio/low_mean"] = ClipRatioLow,
            ["clip_ratio/high_mean"] = ClipRatioHigh,
            ["clip_ratio/region_mean"] = ClipRatioRegion,
            ["pg_clipfrac_lower"] = DualClipRatio,
            ["cispo_clip_ratio"] = CispoClipRatio,
            ["completions/mean_length"] = MeanLength,
            ["completions/min_length"] = MinLength,
            ["completions/max_length"] = MaxLength,
            ["completions/clipped_ratio"] = ClippedRatio,
            ["grad_norm"] = GradNorm,
            ["learning_rate"] = LearningRate,
            ["loss"] = Loss,
            ["step_time"] = StepTime,
            ["tokens/s"] = TokensPerSecond,
            ["skipped"] = Skipped ? 1 : 0,
            ["updates"] = UpdatesApplied,
            ["world_size"] = WorldSize,
            ["time/allreduce"] = CommunicationTime,
        };
        foreach (var (name, (mean, std)) in RewardsPerFunction)
        {
            d[$"rewards/{name}/mean"] = mean;
            d[$"rewards/{name}/std"] = std;
        }
        foreach (var (name, failures) in RewardFailures)
            d[$"rewards/{name}/failures"] = failures;
        if (GenerationBatches is { } batches) d["dynamic_sampling/generation_batches"] = batches;
        if (DroppedGroups is { } droppedGroups) d["dynamic_sampling/dropped_groups"] = droppedGroups;
        if (Extra is not null)
            foreach (var (name, value) in Extra) d[name] = value;
        return d;
    }
}

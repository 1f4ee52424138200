using System.Text.Json.Serialization;
using Grpo.Native.Operations;

namespace Grpo.Native.Training;

/// <summary>
/// Everything a GRPO run is configured by, with TRL's defaults. <see cref="Validate"/> names the
/// first option that is out of range and how to fix it; the trainer validates on construction.
/// </summary>
public sealed record GrpoTrainerOptions
{
    /// <summary>G: completions sampled per prompt (TRL's num_generations). At least 2. Default 8.</summary>
    public int GroupSize { get; init; } = 8;

    /// <summary>Prompts per step (B); each step trains on B·G completions. Default 4.</summary>
    public int PromptsPerStep { get; init; } = 4;

    /// <summary>Longest prompt in tokens; longer prompts are refused (never silently cut). Default 128.</summary>
    public int MaxPromptLength { get; init; } = 128;

    /// <summary>Most tokens sampled per completion; a completion that reaches it without a stop token is truncated. Default 64.</summary>
    public int MaxCompletionLength { get; init; } = 64;

    /// <summary>Temperature, top-k, top-p and min-p of the rollouts (log-probs are of logits / temperature). Default T = 1, no filter.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Token ids that end a completion (included in it, as the EOS token is in TRL). Empty: completions run to the limit.</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];

    /// <summary>ε_low of the clipped objective. Default 0.2.</summary>
    public float EpsilonLow { get; init; } = 0.2f;

    /// <summary>ε_high; null means ε_low (DAPO suggests 0.28).</summary>
    public float? EpsilonHigh { get; init; }

    /// <summary>β of the KL penalty; 0 (the default) loads and runs no reference model.</summary>
    public float Beta { get; init; }

    /// <summary>The per-token loss and how it is aggregated (TRL's loss_type). Default dapo.</summary>
    public LossType LossType { get; init; } = LossType.Dapo;

    /// <summary>The KL estimator of the β penalty. Default k3 (TRL's).</summary>
    public KlEstimator KlEstimator { get; init; } = KlEstimator.K3;

    /// <summary>TRL's two-sided clipping cap δ (&gt; 1) for the clipped-surrogate losses; null (default) is off.</summary>
    public float? Delta { get; init; }

    /// <summary>verl's dual-clip constant c (&gt; 1) for negative advantages; null (default) is off.</summary>
    public float? DualClip { get; init; }

    /// <summary>SAPO's temperature for A &gt; 0. Default 1.0.</summary>
    public float SapoTemperaturePositive { get; init; } = 1.0f;

    /// <summary>SAPO's temperature for A ≤ 0. Default 1.05.</summary>
    public float SapoTemperatureNegative { get; init; } = 1.05f;

    /// <summary>verl's entropy bonus coefficient c (<c>entropy_coeff</c>): loss −= c · aggregated entropy. Default 0 (off).</summary>
    public float EntropyCoefficient { get; init; }

    /// <summary>TRL's <c>top_entropy_quantile</c>: only the highest-entropy fraction of each micro-batch's completion tokens keeps its policy term. Default 1.0 (off).</summary>
    public float TopEntropyQuantile { get; init; } = 1f;

    /// <summary>TRL's <c>multi_objective_aggregation</c>: sum the weighted rewards then normalise per group (default), or normalise each function per group, sum, then normalise over the batch.</summary>
    public MultiObjectiveAggregation MultiObjectiveAggregation { get; init; } = MultiObjectiveAggregation.SumThenNormalize;

    /// <summary>How centred rewards are scaled. Default group.</summary>
    public RewardScaling ScaleRewards { get; init; } = RewardScaling.Group;

    /// <summary>μ: policy updates per rollout. With μ &gt; 1 the sampling policy's log-probs are computed before the first update. Default 1.</summary>
    public int NumIterations { get; init; } = 1;

    /// <summary>Token-level ratios (default) or GSPO's sequence-level ratio.</summary>
    public ImportanceSamplingLevel ImportanceSamplingLevel { get; init; } = ImportanceSamplingLevel.Token;

    /// <summary>When true, truncated completions (no stop token before the limit) are left out of the loss (DAPO's overlong filtering).</summary>
    public bool MaskTruncatedCompletions { get; init; }

    /// <summary>Peak learning rate. Default 1e-6, right for pretrained models; a model trained from scratch wants ~1e-3.</summary>
    public float LearningRate { get; init; } = 1e-6f;

    /// <summary>Schedule shape over <see cref="TotalSteps"/>. Default constant.</summary>
    public LearningRateScheduleKind Schedule { get; init; } = LearningRateScheduleKind.Constant;

    /// <summary>Warmup steps of the schedule. Default 0.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Steps the schedule spans (the run's length). Default 100.</summary>
    public int TotalSteps { get; init; } = 100;

    /// <summary>AdamW's β1, β2, ε and weight decay. Default TRL's: weight decay 0.</summary>
    public AdamWOptions AdamW { get; init; } = new() { WeightDecay = 0f };

    /// <summary>Global gradient-norm limit; null disables clipping. Default 1.0.</summary>
    public float? MaxGradNorm { get; init; } = 1.0f;

    /// <summary>Completions per forward/backward micro-batch (gradients accumulate across them); at most B·G. Default 16.</summary>
    public int MicroBatchSize { get; init; } = 16;

    /// <summary>
    /// When true (default), the policy's cheap activations (norm outputs, the SwiGLU or GELU output) are recomputed in
    /// the backward instead of saved per layer (<see cref="Models.ActivationMode.TrainingWithRecompute"/>): gradients are
    /// bit for bit the same, the extra work is two norms and one activation function per layer (elementwise, well under
    /// 1 % of a step's GEMM work), and the saved activations shrink by about 30 % (0.58 GiB at Qwen2.5-0.5B's shape with
    /// 1,024 tokens per micro-batch). Not TRL's gradient_checkpointing, which recomputes whole layers.
    /// </summary>
    public bool RecomputeActivations { get; init; } = true;

    /// <summary>
    /// A step whose loss or gradient norm is not finite makes no update (weights and optimizer state
    /// untouched, the metrics say Skipped); after this many such steps in a row the run stops with an
    /// error instead of wasting compute on a broken model. Default 5.
    /// </summary>
    public int MaxConsecutiveSkippedSteps { get; init; } = 5;

    /// <summary>DAPO's dynamic sampling (drop groups whose rewards are all equal and generate more); null (the default) is off, as in TRL.</summary>
    public DynamicSamplingOptions? DynamicSampling { get; init; }

    /// <summary>Seed of every random choice (prompt order, sampling). Same seed, same run.</summary>
    public int Seed { get; init; }

    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        static void Check(bool ok, string name, object value, string fix)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"'{name}' is {value}: {fix}");
        }
        Check(GroupSize >= 2, nameof(GroupSize), GroupSize, "GRPO needs at least 2 completions per prompt for a baseline (8 is usual).");
        Check(PromptsPerStep >= 1, nameof(PromptsPerStep), PromptsPerStep, "pass at least 1 prompt per step.");
        Check(MaxPromptLength >= 1, nameof(MaxPromptLength), MaxPromptLength, "it must be at least 1.");
        Check(MaxCompletionLength >= 1, nameof(MaxCompletionLength), MaxCompletionLength, "it must be at least 1.");
        ArgumentNullException.ThrowIfNull(Sampling, nameof(Sampling));
        Sampling.Validate();
        // Log-probs are of logits / temperature: at T = 0 (greedy) they are not defined, and a group of identical
        // greedy completions has no reward spread to learn from. TRL refuses it likewise.
        Check(Sampling.Temperature > 0, $"{nameof(Sampling)}.{nameof(SamplingOptions.Temperature)}", Sampling.Temperature,
            "training samples with temperature > 0 (1.0 is usual); greedy decoding (0) is for evaluation only.");
        ArgumentNullException.ThrowIfNull(StopTokens, nameof(StopTokens));
        Check(NumIterations >= 1, nameof(NumIterations), NumIterations, "μ is the number of updates per rollout, at least 1.");
        Check(float.IsFinite(LearningRate) && LearningRate >= 0, nameof(LearningRate), LearningRate, "it must be finite and >= 0.");
        Check(TotalSteps >= 1, nameof(TotalSteps), TotalSteps, "the run needs at least 1 step.");
        Check(WarmupSteps >= 0 && WarmupSteps <= TotalSteps, nameof(WarmupSteps), WarmupSteps, $"it must be in [0, {nameof(TotalSteps)} = {TotalSteps}].");
        Check(MaxGradNorm is null || (float.IsFinite(MaxGradNorm.Value) && MaxGradNorm > 0), nameof(MaxGradNorm), MaxGradNorm!,
            "it must be positive and finite (1.0 is usual), or null for no clipping.");
        Check(MicroBatchSize >= 1, nameof(MicroBatchSize), MicroBatchSize, "it must be at least 1 completion.");
        Check(MaxConsecutiveSkippedSteps >= 1, nameof(MaxConsecutiveSkippedSteps), MaxConsecutiveSkippedSteps, "allow at least 1 skipped step.");
        ArgumentNullException.ThrowIfNull(AdamW, nameof(AdamW));
        AdamW.Validate();
        Check(Enum.IsDefined(MultiObjectiveAggregation), nameof(MultiObjectiveAggregation), MultiObjectiveAggregation,
            "it must be SumThenNormalize (TRL's default) or NormalizeThenSum.");
        Objective.Validate();
        DynamicSampling?.Validate();
        CreateSchedule().Validate();
    }

    /// <summary>The objective's options taken from these.</summary>
    [JsonIgnore]
    public GrpoObjectiveOptions Objective => new()
    {
        LossType = LossType,
        EpsilonLow = EpsilonLow,
        EpsilonHigh = EpsilonHigh,
        Beta = Beta,
        KlEstimator = KlEstimator,
        Delta = Delta,
        DualClip = DualClip,
        SapoTemperaturePositive = SapoTemperaturePositive,
        SapoTemperatureNegative = SapoTemperatureNegative,
        EntropyCoefficient = EntropyCoefficient,
        TopEntropyQuantile = TopEntropyQuantile,
        ImportanceSamplingLevel = ImportanceSamplingLevel,
        MaxCompletionLength = MaxCompletionLength,
    };

    /// <summary>The learning-rate schedule over optimizer updates: μ per step, so TotalSteps × μ of them.</summary>
    public LearningRateSchedule CreateSchedule() =>
        new(Schedule, LearningRate, TotalSteps * NumIterations, WarmupSteps * NumIterations);
}

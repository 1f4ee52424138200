using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using Grpo.Native.Operations;
using Grpo.Native.Training;

namespace Grpo.Cli;

/// <summary>
/// The <c>grpo train</c> flags that set <see cref="GrpoTrainerOptions"/> fields, one per field (nested option records
/// included), named after TRL's <c>GRPOConfig</c> where the quantity is the same. Both run kinds (built-in task and
/// --dataset) build their options here: each passes its own defaults, a flag given on the command line replaces the
/// default, and a value out of range is reported under the flag's name. A resumed run keeps the options stored in its
/// checkpoint; <see cref="Values.CheckResumed"/> refuses a flag that would change them.
/// </summary>
internal sealed class TrainerOptionFlags
{
    /// <summary>One flag: the option, the field(s) it sets (paths such as "Sampling.TopK"), TRL's name, and how it applies.</summary>
    /// <param name="Example">A valid value that differs from every run kind's default, so a test can see the field change.</param>
    public sealed record Flag(Option Option, IReadOnlyList<string> Properties, string? TrlName, string Example,
        Func<ParseResult, GrpoTrainerOptions, GrpoTrainerOptions> Apply)
    {
        public string Name => Option.Name;
    }

    private readonly List<Flag> flags = [];

    public TrainerOptionFlags()
    {
        Add<int>("--steps", "run length in GRPO steps; the learning-rate schedule spans it", nameof(GrpoTrainerOptions.TotalSteps), "max_steps", "7",
            (o, v) => o with { TotalSteps = v }, "--max-steps");
        Add<int>("--seed", "seed of the initial weights (random models), the prompt order and the sampling", nameof(GrpoTrainerOptions.Seed), "seed", "99",
            (o, v) => o with { Seed = v });
        Add<int>("--group-size", "G: completions sampled per prompt, at least 2", nameof(GrpoTrainerOptions.GroupSize), "num_generations", "6",
            (o, v) => o with { GroupSize = v }, "--num-generations");
        Add<int>("--prompts", "B: prompts per step; a step trains on B x G completions (see the README for TRL's batch sizes)", nameof(GrpoTrainerOptions.PromptsPerStep), null, "3",
            (o, v) => o with { PromptsPerStep = v });
        Add<int>("--max-prompt-length", "longest prompt in tokens (longer: --dataset rows are skipped and counted, a built-in task is refused; never cut)",
            nameof(GrpoTrainerOptions.MaxPromptLength), "max_prompt_length", "33", (o, v) => o with { MaxPromptLength = v });
        Add<int>("--max-completion-length", "most tokens sampled per completion", nameof(GrpoTrainerOptions.MaxCompletionLength), "max_completion_length", "17",
            (o, v) => o with { MaxCompletionLength = v });
        Add<float>("--temperature", "sampling temperature of the rollouts, > 0 (log-probs are of logits / T)", "Sampling.Temperature", "temperature", "0.7",
            (o, v) => o with { Sampling = o.Sampling with { Temperature = v } });
        Add<float>("--top-p", "nucleus sampling mass in (0, 1]; 1 is off", "Sampling.TopP", "top_p", "0.9",
            (o, v) => o with { Sampling = o.Sampling with { TopP = v } });
        Add<int>("--top-k", "keep the k most likely tokens; 0 is off", "Sampling.TopK", "top_k", "20",
            (o, v) => o with { Sampling = o.Sampling with { TopK = v } });
        Add<float>("--min-p", "keep tokens at least this fraction as likely as the most likely one, in [0, 1); 0 is off", "Sampling.MinP", "min_p", "0.05",
            (o, v) => o with { Sampling = o.Sampling with { MinP = v } });
        Add<string>("--stop-token-ids", "comma-separated token ids that end a completion (default: the task's EOS; with --dataset generation_config.json's eos_token_id, else the tokenizer's EOS)",
            nameof(GrpoTrainerOptions.StopTokens), null, "5,6", (o, v) => o with { StopTokens = ParseIds("--stop-token-ids", v) });
        Add<string>("--loss-type", $"per-token loss and its aggregation: {Names(LossTypes)}", nameof(GrpoTrainerOptions.LossType), "loss_type", "dr_grpo",
            (o, v) => o with { LossType = Choice("--loss-type", v, LossTypes) });
        Add<float>("--epsilon", "epsilon_low of the clipped objective", nameof(GrpoTrainerOptions.EpsilonLow), "epsilon", "0.1",
            (o, v) => o with { EpsilonLow = v });
        Add<float>("--epsilon-high", "epsilon_high (default: --epsilon; DAPO uses 0.28, CISPO's cap wants ~5)", nameof(GrpoTrainerOptions.EpsilonHigh), "epsilon_high", "0.28",
            (o, v) => o with { EpsilonHigh = v });
        Add<float>("--beta", "KL penalty weight; > 0 keeps a frozen copy of the initial policy as the reference", nameof(GrpoTrainerOptions.Beta), "beta", "0.04",
            (o, v) => o with { Beta = v });
        Add<string>("--kl-estimator", $"estimator of the KL penalty: {Names(KlEstimators)} (verl kl_penalty; TRL uses k3)", nameof(GrpoTrainerOptions.KlEstimator), null, "k1",
            (o, v) => o with { KlEstimator = Choice("--kl-estimator", v, KlEstimators) });
        Add<float>("--delta", "two-sided clipping cap delta > 1 of the clipped losses (default off)", nameof(GrpoTrainerOptions.Delta), "delta", "3",
            (o, v) => o with { Delta = v });
        Add<float>("--dual-clip", "dual-clip constant c > 1 for negative advantages (verl clip_ratio_c; default off)", nameof(GrpoTrainerOptions.DualClip), null, "3",
            (o, v) => o with { DualClip = v });
        Add<float>("--sapo-temperature-pos", "SAPO's gate temperature for positive advantages", nameof(GrpoTrainerOptions.SapoTemperaturePositive), "sapo_temperature_pos", "0.5",
            (o, v) => o with { SapoTemperaturePositive = v });
        Add<float>("--sapo-temperature-neg", "SAPO's gate temperature for other advantages", nameof(GrpoTrainerOptions.SapoTemperatureNegative), "sapo_temperature_neg", "1.5",
            (o, v) => o with { SapoTemperatureNegative = v });
        Add<float>("--entropy-coeff", "entropy bonus coefficient: loss -= c x aggregated entropy; 0 is off (verl entropy_coeff)", nameof(GrpoTrainerOptions.EntropyCoefficient),
            null, "0.001", (o, v) => o with { EntropyCoefficient = v }, "--entropy-coef");
        Add<float>("--top-entropy-quantile", "only this highest-entropy fraction of each micro-batch's tokens keeps its policy term, in [0, 1]; 1 is off",
            nameof(GrpoTrainerOptions.TopEntropyQuantile), "top_entropy_quantile", "0.2", (o, v) => o with { TopEntropyQuantile = v });
        Add<string>("--multi-objective-aggregation", $"how several reward functions combine: {Names(Aggregations)}",
            nameof(GrpoTrainerOptions.MultiObjectiveAggregation), "multi_objective_aggregation", "normalize_then_sum",
            (o, v) => o with { MultiObjectiveAggregation = Choice("--multi-objective-aggregation", v, Aggregations) });
        Add<string>("--scale-rewards", $"how centred rewards are scaled: {Names(RewardScalings)} (true = group, false = none)",
            nameof(GrpoTrainerOptions.ScaleRewards), "scale_rewards", "batch", (o, v) => o with { ScaleRewards = Choice("--scale-rewards", v, RewardScalings) });
        Add<int>("--num-iterations", "mu: policy updates per rollout", nameof(GrpoTrainerOptions.NumIterations), "num_iterations", "2",
            (o, v) => o with { NumIterations = v });
        Add<string>("--importance-sampling-level", $"{Names(SamplingLevels)}: per-token ratios or GSPO's one per completion",
            nameof(GrpoTrainerOptions.ImportanceSamplingLevel), "importance_sampling_level", "sequence",
            (o, v) => o with { ImportanceSamplingLevel = Choice("--importance-sampling-level", v, SamplingLevels) });
        Add<bool>("--mask-truncated-completions", "leave completions that reach --max-completion-length without a stop token out of the loss",
            nameof(GrpoTrainerOptions.MaskTruncatedCompletions), "mask_truncated_completions", "true", (o, v) => o with { MaskTruncatedCompletions = v });
        Add<float>("--learning-rate", "peak learning rate", nameof(GrpoTrainerOptions.LearningRate), "learning_rate", "2e-5",
            (o, v) => o with { LearningRate = v });
        Add<string>("--lr-scheduler-type", $"learning-rate schedule: {Names(Schedules)} (Hugging Face's names; linear decays to 0 after the warmup)", nameof(GrpoTrainerOptions.Schedule), "lr_scheduler_type", "linear",
            (o, v) => o with { Schedule = Choice("--lr-scheduler-type", v, Schedules) });
        Add<int>("--warmup-steps", "steps of linear warmup", nameof(GrpoTrainerOptions.WarmupSteps), "warmup_steps", "2",
            (o, v) => o with { WarmupSteps = v });
        Add<float>("--adam-beta1", "AdamW beta1", "AdamW.Beta1", "adam_beta1", "0.8", (o, v) => o with { AdamW = o.AdamW with { Beta1 = v } });
        Add<float>("--adam-beta2", "AdamW beta2", "AdamW.Beta2", "adam_beta2", "0.95", (o, v) => o with { AdamW = o.AdamW with { Beta2 = v } });
        Add<float>("--adam-epsilon", "AdamW epsilon", "AdamW.Epsilon", "adam_epsilon", "1e-6", (o, v) => o with { AdamW = o.AdamW with { Epsilon = v } });
        Add<float>("--weight-decay", "AdamW's decoupled weight decay", "AdamW.WeightDecay", "weight_decay", "0.1", (o, v) => o with { AdamW = o.AdamW with { WeightDecay = v } });
        Add<float>("--max-grad-norm", "global gradient-norm clipping limit; 0 turns clipping off (as in TRL)", nameof(GrpoTrainerOptions.MaxGradNorm), "max_grad_norm", "0.5",
            (o, v) => o with { MaxGradNorm = v == 0 ? null : v });
        Add<int>("--micro-batch-size", "completions per forward/backward pass; gradients accumulate over the step's B x G completions",
            nameof(GrpoTrainerOptions.MicroBatchSize), null, "3", (o, v) => o with { MicroBatchSize = v });
        Add<bool>("--recompute-activations", "recompute norm outputs and MLP activations in the backward instead of saving them (same gradients, less memory; default true)",
            nameof(GrpoTrainerOptions.RecomputeActivations), null, "false", (o, v) => o with { RecomputeActivations = v });
        Add<int>("--max-consecutive-skipped-steps", "steps in a row with a non-finite loss or gradient (no update) before the run stops",
            nameof(GrpoTrainerOptions.MaxConsecutiveSkippedSteps), null, "2", (o, v) => o with { MaxConsecutiveSkippedSteps = v });
        Add<bool>("--dynamic-sampling", "DAPO's dynamic sampling (--dataset only): drop groups whose rewards are all equal and generate more prompts",
            nameof(GrpoTrainerOptions.DynamicSampling), null, "true", (o, v) => o with { DynamicSampling = v ? o.DynamicSampling ?? new DynamicSamplingOptions() : null });
        Add<int>("--max-generation-batches", "with --dynamic-sampling: most batches of prompts generated per step (default 4)",
            "DynamicSampling.MaxGenerationBatches", null, "3", (o, v) => o with
            {
                DynamicSampling = (o.DynamicSampling ?? throw new ArgumentException("--max-generation-batches limits --dynamic-sampling; pass --dynamic-sampling too."))
                    with { MaxGenerationBatches = v },
            });
        // Last: these two are fractions of values the flags above may have set (--steps; --prompts and --group-size).
        Add<float>("--warmup-ratio", "warmup as a fraction of --steps, rounded up as in TRL; excludes --warmup-steps", nameof(GrpoTrainerOptions.WarmupSteps),
            "warmup_ratio", "0.5", (o, v) => o with { WarmupSteps = WarmupFromRatio(v, o.TotalSteps) });
        Add<int>("--gradient-accumulation-steps", "K: micro-batches per step, so --micro-batch-size = B x G / K (K must divide B x G); excludes --micro-batch-size",
            nameof(GrpoTrainerOptions.MicroBatchSize), "gradient_accumulation_steps", "4", (o, v) => o with { MicroBatchSize = MicroBatchFromAccumulation(v, o) });
    }

    /// <summary>Every flag, in the order they are applied.</summary>
    public IReadOnlyList<Flag> Flags => flags;

    /// <summary>Adds every flag to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var flag in flags) command.Options.Add(flag.Option);
    }

    /// <summary>The flags given on one command line.</summary>
    public Values Read(ParseResult parse)
    {
        // Not Implicit: a bool option reports a result (its implicit false) even when it was not given.
        var given = flags.Where(f => parse.GetResult(f.Option) is { Implicit: false }).ToList();
        foreach (var (one, other) in new[] { ("--warmup-ratio", "--warmup-steps"), ("--gradient-accumulation-steps", "--micro-batch-size") })
            if (given.Any(f => f.Name == one) && given.Any(f => f.Name == other))
                throw new ArgumentException($"{one} and {other} set the same option; pass one of them.");
        return new Values(this, parse, given);
    }

    /// <summary>The trainer-option flags of one command line, applied over a run kind's defaults.</summary>
    public sealed class Values(TrainerOptionFlags flags, ParseResult parse, IReadOnlyList<Flag> given)
    {
        /// <summary>The names of the flags given, in application order.</summary>
        public IReadOnlyList<string> Given { get; } = given.Select(f => f.Name).ToArray();

        /// <summary>True when <paramref name="flag"/> was given.</summary>
        public bool Has(string flag) => Given.Contains(flag);

        /// <summary>
        /// The run's options: <paramref name="runDefaults"/> with the given flags applied, validated. The defaults are asked
        /// for twice, the second time with the flags applied to the first answer, so that a run kind's derived defaults (its
        /// warmup as a fraction of --steps, its micro-batch from --prompts and --group-size) follow the flags.
        /// </summary>
        /// <exception cref="ArgumentException">A value is out of range; the message names the flag.</exception>
        public GrpoTrainerOptions Build(Func<GrpoTrainerOptions, GrpoTrainerOptions> runDefaults)
        {
            var provisional = Apply(runDefaults(new GrpoTrainerOptions()), given);
            var options = Apply(runDefaults(provisional), given);
            try
            {
                options.Validate();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new ArgumentException(flags.WithFlagNames(CliErrors.Message(e)), e);
            }
            return options;
        }

        /// <summary>
        /// Refuses the given flags that would change a resumed run's <paramref name="stored"/> options: the run continues
        /// exactly as it started (a flag equal to the stored value is accepted).
        /// </summary>
        public void CheckResumed(GrpoTrainerOptions stored, string checkpoint)
        {
            // In application order, each flag against the options as the flags before it left them.
            var differing = new List<string>();
            var current = stored;
            foreach (var flag in given)
            {
                var next = flag.Apply(parse, current);
                if (!SameOptions(next, current)) differing.Add(flag.Name);
                current = next;
            }
            if (differing.Count > 0)
                throw new ArgumentException($"--resume continues the run with the options stored in {Path.Combine(checkpoint, GrpoCheckpoint.StateFileName)}; " +
                                            $"{string.Join(", ", differing)} would change them: leave {(differing.Count == 1 ? "it" : "them")} out, or start a new run in another --output.");
        }

        private GrpoTrainerOptions Apply(GrpoTrainerOptions options, IEnumerable<Flag> which) =>
            which.Aggregate(options, (o, flag) => flag.Apply(parse, o));

        // Records compare by value, except the stop-token list, which compares by reference.
        private static bool SameOptions(GrpoTrainerOptions a, GrpoTrainerOptions b) =>
            a with { StopTokens = [] } == b with { StopTokens = [] } && a.StopTokens.SequenceEqual(b.StopTokens);
    }

    /// <summary>Rewrites the field names in a <see cref="GrpoTrainerOptions.Validate"/> message as the flags that set them.</summary>
    public string WithFlagNames(string message) => FieldNames().Replace(message, m => FlagForField[m.Value]);

    /// <summary>Field name as a message may spell it (Sampling.TopK, SamplingOptions.TopK, TopK) → the flag that sets it.</summary>
    private Dictionary<string, string> FlagForField => flagForField ??= BuildFlagForField();

    private Dictionary<string, string>? flagForField;

    private Regex FieldNames() => fieldNames ??= new Regex(
        @"(?<![\w.-])(" + string.Join('|', FlagForField.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)) + @")(?![\w])");

    private Regex? fieldNames;

    private Dictionary<string, string> BuildFlagForField()
    {
        var byPath = new Dictionary<string, string>();
        foreach (var flag in flags)
            foreach (string path in flag.Properties)
                byPath.TryAdd(path, flag.Name); // the first flag of a field names it (--warmup-steps before --warmup-ratio)
        // The learning-rate schedule's own names for the same quantities.
        byPath.TryAdd("PeakLearningRate", "--learning-rate");
        byPath.TryAdd("Kind", "--lr-scheduler-type");
        var names = new Dictionary<string, string>();
        var leafCounts = byPath.Keys.GroupBy(Leaf).ToDictionary(g => g.Key, g => g.Count());
        foreach (var (path, flag) in byPath)
        {
            names[path] = flag;
            int dot = path.IndexOf('.');
            if (dot > 0) names[$"{path[..dot] switch { "Sampling" => "SamplingOptions", "AdamW" => "AdamWOptions", var other => other + "Options" }}{path[dot..]}"] = flag;
            if (leafCounts[Leaf(path)] == 1) names.TryAdd(Leaf(path), flag);
        }
        return names;

        static string Leaf(string path) => path[(path.LastIndexOf('.') + 1)..];
    }

    private void Add<T>(string name, string description, string property, string? trlName, string example,
        Func<GrpoTrainerOptions, T, GrpoTrainerOptions> set, params string[] aliases)
    {
        var option = new Option<T>(name, aliases) { Description = description + (trlName is null ? "" : $" [TRL {trlName}]") };
        flags.Add(new Flag(option, [property], trlName, example, (parse, o) => set(o, parse.GetValue(option)!)));
    }

    private static readonly (string Name, LossType Value)[] LossTypes =
        [("grpo", LossType.Grpo), ("bnpo", LossType.Bnpo), ("dapo", LossType.Dapo), ("dr_grpo", LossType.DrGrpo), ("cispo", LossType.Cispo), ("sapo", LossType.Sapo)];

    private static readonly (string Name, KlEstimator Value)[] KlEstimators = [("k1", KlEstimator.K1), ("k2", KlEstimator.K2), ("k3", KlEstimator.K3)];

    private static readonly (string Name, RewardScaling Value)[] RewardScalings =
        [("group", RewardScaling.Group), ("batch", RewardScaling.Batch), ("none", RewardScaling.None), ("true", RewardScaling.Group), ("false", RewardScaling.None)];

    private static readonly (string Name, MultiObjectiveAggregation Value)[] Aggregations =
        [("sum_then_normalize", MultiObjectiveAggregation.SumThenNormalize), ("normalize_then_sum", MultiObjectiveAggregation.NormalizeThenSum)];

    private static readonly (string Name, ImportanceSamplingLevel Value)[] SamplingLevels =
        [("token", ImportanceSamplingLevel.Token), ("sequence", ImportanceSamplingLevel.Sequence)];

    /// <summary>Hugging Face's names: linear means warmup then linear decay to 0.</summary>
    private static readonly (string Name, LearningRateScheduleKind Value)[] Schedules =
    [
        ("constant", LearningRateScheduleKind.Constant), ("constant_with_warmup", LearningRateScheduleKind.LinearWarmup),
        ("cosine", LearningRateScheduleKind.Cosine), ("linear", LearningRateScheduleKind.LinearDecay),
    ];

    private static string Names<TEnum>((string Name, TEnum Value)[] choices) => string.Join(", ", choices.Select(c => c.Name));

    private static TEnum Choice<TEnum>(string flag, string value, (string Name, TEnum Value)[] choices)
    {
        foreach (var (name, choice) in choices)
            if (string.Equals(name, value, StringComparison.OrdinalIgnoreCase)) return choice;
        throw new ArgumentException($"{flag} '{value}' is unknown; use one of {Names(choices)}.");
    }

    private static int[] ParseIds(string flag, string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]))
                throw new ArgumentException($"{flag}: '{parts[i]}' is not a token id; pass non-negative integers separated by commas, e.g. 151645,151643.");
        return ids;
    }

    /// <summary>TRL's (Hugging Face's) rule: ceil(ratio × steps) warmup steps.</summary>
    private static int WarmupFromRatio(float ratio, int totalSteps)
    {
        if (!(ratio >= 0 && ratio <= 1)) throw new ArgumentException($"--warmup-ratio is {ratio}; it is a fraction of --steps, in [0, 1].");
        return (int)Math.Ceiling((double)ratio * totalSteps);
    }

    /// <summary>K micro-batches of equal size per step: B·G / K completions each.</summary>
    private static int MicroBatchFromAccumulation(int steps, GrpoTrainerOptions o)
    {
        int completions = o.PromptsPerStep * o.GroupSize;
        if (steps < 1 || completions % steps != 0)
            throw new ArgumentException($"--gradient-accumulation-steps is {steps}; it must divide the step's {o.PromptsPerStep} prompts x {o.GroupSize} completions = " +
                                        $"{completions} into equal micro-batches (or pass --micro-batch-size).");
        return completions / steps;
    }
}

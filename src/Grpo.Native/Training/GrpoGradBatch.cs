using System.Text.Json;
using Grpo.Native.Operations;

namespace Grpo.Native.Training;

/// <summary>
/// One batch of the parity interface (<c>grpo grad --batch FILE.json</c>): prompts, completions,
/// rewards and the GRPO settings under TRL's names, so any user can compute the same loss and
/// gradients in PyTorch and compare. Completion n belongs to prompt n / group_size; every token
/// listed is part of the completion.
/// </summary>
public sealed record GrpoGradBatch
{
    /// <summary><c>group_size</c>: G ≥ 2.</summary>
    public required int GroupSize { get; init; }
    /// <summary><c>prompts</c>: B token-id lists.</summary>
    public required int[][] Prompts { get; init; }
    /// <summary><c>completions</c>: N = B·G token-id lists.</summary>
    public required int[][] Completions { get; init; }
    /// <summary><c>rewards</c>: N numbers (NaN / null = no score); null when <see cref="RewardsPerFunction"/> is given instead.</summary>
    public float[]? Rewards { get; init; }
    /// <summary><c>rewards_per_function</c>: N lists of F numbers (NaN / null = that function gave no score), instead of <see cref="Rewards"/>.</summary>
    public float[][]? RewardsPerFunction { get; init; }
    /// <summary><c>reward_weights</c>: F weights of the reward functions (default all 1), with <see cref="RewardsPerFunction"/>.</summary>
    public float[]? RewardWeights { get; init; }
    /// <summary><c>multi_objective_aggregation</c>: sum_then_normalize (default) or normalize_then_sum (TRL's).</summary>
    public MultiObjectiveAggregation MultiObjectiveAggregation { get; init; }
    /// <summary><c>old_logprobs</c>: optional N lists, lengths as the completions.</summary>
    public float[][]? OldLogprobs { get; init; }
    /// <summary>
    /// <c>loss_type</c> (grpo, bnpo, dapo (default), dr_grpo, cispo, sapo), <c>beta</c>, <c>epsilon_low</c>, <c>epsilon_high</c>,
    /// <c>importance_sampling_level</c>, <c>max_completion_length</c>, <c>sapo_temperature_pos</c>, <c>sapo_temperature_neg</c>,
    /// <c>delta</c>, <c>dual_clip</c> (verl's <c>clip_ratio_c</c>), <c>kl_estimator</c> (k1, k2, k3 (default)).
    /// </summary>
    public required GrpoObjectiveOptions Objective { get; init; }
    /// <summary><c>scale_rewards</c>: group (default), batch or none.</summary>
    public RewardScaling ScaleRewards { get; init; } = RewardScaling.Group;
    /// <summary>
    /// <c>mask_truncated_completions</c> (TRL's, default false): a completion holding none of <see cref="EosTokenIds"/>
    /// was cut at the length limit and is left out of the loss (its mask is zeroed), as TRL does.
    /// </summary>
    public bool MaskTruncatedCompletions { get; init; }

    /// <summary><c>eos_token_id</c>: a number or a list; what ends a completion. Required by <see cref="MaskTruncatedCompletions"/>.</summary>
    public int[] EosTokenIds { get; init; } = [];

    /// <summary>Per completion: true when it holds no end-of-sequence token (so TRL counts it as truncated).</summary>
    public bool[] Truncated() => Completions.Select(c => !c.Any(EosTokenIds.Contains)).ToArray();

    /// <summary>
    /// <c>micro_batch_completions</c>: the loss is computed over micro-batches of this many consecutive completions whose
    /// gradients accumulate, composed as TRL composes them (<see cref="MicroBatchShare"/>); null (the default) is one
    /// micro-batch of all of them. Advantages are always computed over the whole batch, as TRL does.
    /// </summary>
    public int? MicroBatchCompletions { get; init; }

    /// <summary><c>temperature</c> (default 1).</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Reads and validates a batch file; errors name the JSON field.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FormatException">The JSON is invalid or a field is missing, of the wrong type, or out of range.</exception>
    public static GrpoGradBatch Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"The batch file '{path}' does not exist.", path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses and validates batch JSON; <paramref name="source"/> names it in messages.</summary>
    public static GrpoGradBatch Parse(string json, string source = "batch")
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new FormatException($"'{source}' is not valid JSON: {e.Message}", e); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new FormatException($"'{source}' must be a JSON object with group_size, prompts, completions and rewards.");
            foreach (var property in root.EnumerateObject())
                if (!KnownFields.Contains(property.Name))
                    throw new FormatException($"'{source}': unknown field '{property.Name}'; known fields are {string.Join(", ", KnownFields)}.");

            int groupSize = Int(root, source, "group_size", null);
            var prompts = IntLists(root, source, "prompts");
            var completions = IntLists(root, source, "completions");
            bool perFunction = root.TryGetProperty("rewards_per_function", out var rpf) && rpf.ValueKind != JsonValueKind.Null;
            if (perFunction && root.TryGetProperty("rewards", out var both) && both.ValueKind != JsonValueKind.Null)
                throw new FormatException($"'{source}': both rewards and rewards_per_function are given; give one (rewards_per_function replaces rewards).");
            float[]? rewards = perFunction ? null : Floats(Required(root, source, "rewards"), source, "rewards", allowNull: true);
            float[][]? rewardsPerFunction = perFunction
                ? (rpf.ValueKind == JsonValueKind.Array ? rpf.EnumerateArray().Select((row, i) => Floats(row, source, $"rewards_per_function[{i}]", allowNull: true)).ToArray()
                    : throw new FormatException($"'{source}': 'rewards_per_function' must be a list of N lists of F numbers (null = no score)."))
                : null;
            float[]? rewardWeights = root.TryGetProperty("reward_weights", out var rw) && rw.ValueKind != JsonValueKind.Null
                ? Floats(rw, source, "reward_weights", allowNull: false) : null;
            var aggregation = Text(root, source, "multi_objective_aggregation", "sum_then_normalize") switch
            {
                "sum_then_normalize" => MultiObjectiveAggregation.SumThenNormalize,
                "normalize_then_sum" => MultiObjectiveAggregation.NormalizeThenSum,
                var other => throw new FormatException($"'{source}': multi_objective_aggregation '{other}' is unknown; use sum_then_normalize (the default) or normalize_then_sum."),
            };
            float[][]? old = root.TryGetProperty("old_logprobs", out var o) && o.ValueKind != JsonValueKind.Null
                ? o.EnumerateArray().Select((row, i) => Floats(row, source, $"old_logprobs[{i}]", allowNull: false)).ToArray()
                : null;
            var lossType = Text(root, source, "loss_type", "dapo") switch
            {
                "grpo" => LossType.Grpo,
                "bnpo" => LossType.Bnpo,
                "dapo" => LossType.Dapo,
                "dr_grpo" => LossType.DrGrpo,
                "cispo" => LossType.Cispo,
                "sapo" => LossType.Sapo,
                var other => throw new FormatException($"'{source}': loss_type '{other}' is unknown; use grpo, bnpo, dapo, dr_grpo, cispo or sapo."),
            };
            var klEstimator = Text(root, source, "kl_estimator", "k3") switch
            {
                "k1" => KlEstimator.K1,
                "k2" => KlEstimator.K2,
                "k3" => KlEstimator.K3,
                var other => throw new FormatException($"'{source}': kl_estimator '{other}' is unknown; use k1, k2 or k3 (the default, TRL's)."),
            };
            var scale = Text(root, source, "scale_rewards", "group") switch
            {
                "group" => RewardScaling.Group,
                "batch" => RewardScaling.Batch,
                "none" => RewardScaling.None,
                var other => throw new FormatException($"'{source}': scale_rewards '{other}' is unknown; use group, batch or none."),
            };
            var level = Text(root, source, "importance_sampling_level", "token") switch
            {
                "token" => ImportanceSamplingLevel.Token,
                "sequence" => ImportanceSamplingLevel.Sequence,
                var other => throw new FormatException($"'{source}': importance_sampling_level '{other}' is unknown; use token or sequence."),
            };
            float epsilonLow = Float(root, source, "epsilon_low", 0.2f);
            var objective = new GrpoObjectiveOptions
            {
                LossType = lossType,
                Beta = Float(root, source, "beta", 0f),
                EpsilonLow = epsilonLow,
                EpsilonHigh = Float(root, source, "epsilon_high", epsilonLow),
                ImportanceSamplingLevel = level,
                MaxCompletionLength = Int(root, source, "max_completion_length", 0),
                KlEstimator = klEstimator,
                Delta = NullableFloat(root, source, "delta"),
                DualClip = NullableFloat(root, source, "dual_clip"),
                SapoTemperaturePositive = Float(root, source, "sapo_temperature_pos", 1.0f),
                SapoTemperatureNegative = Float(root, source, "sapo_temperature_neg", 1.05f),
                EntropyCoefficient = Float(root, source, "entropy_coef", 0f),
                TopEntropyQuantile = Float(root, source, "top_entropy_quantile", 1f),
            };
            var batch = new GrpoGradBatch
            {
                GroupSize = groupSize, Prompts = prompts, Completions = completions, Rewards = rewards, OldLogprobs = old,
                RewardsPerFunction = rewardsPerFunction, RewardWeights = rewardWeights, MultiObjectiveAggregation = aggregation,
                Objective = objective, ScaleRewards = scale, Temperature = Float(root, source, "temperature", 1f),
                MicroBatchCompletions = root.TryGetProperty("micro_batch_completions", out var mbc) && mbc.ValueKind != JsonValueKind.Null
                    ? Int(root, source, "micro_batch_completions", 0) : null,
                MaskTruncatedCompletions = Bool(root, source, "mask_truncated_completions", false),
                EosTokenIds = EosIds(root, source),
            };
            batch.Validate(source);
            return batch;
        }
    }

    private static readonly string[] KnownFields =
    [
        "group_size", "prompts", "completions", "rewards", "old_logprobs", "loss_type", "beta", "epsilon_low", "epsilon_high",
        "scale_rewards", "temperature", "importance_sampling_level", "max_completion_length", "sapo_temperature_pos",
        "sapo_temperature_neg", "delta", "dual_clip", "kl_estimator", "micro_batch_completions", "mask_truncated_completions", "eos_token_id",
        "entropy_coef", "top_entropy_quantile", "rewards_per_function", "reward_weights", "multi_objective_aggregation",
    ];

    /// <summary>The batch-file field of each <see cref="GrpoObjectiveOptions"/> property, for error messages.</summary>
    private static readonly Dictionary<string, string> FieldOfOption = new()
    {
        [nameof(GrpoObjectiveOptions.LossType)] = "loss_type",
        [nameof(GrpoObjectiveOptions.EpsilonLow)] = "epsilon_low",
        [nameof(GrpoObjectiveOptions.EpsilonHigh)] = "epsilon_high",
        [nameof(GrpoObjectiveOptions.Beta)] = "beta",
        [nameof(GrpoObjectiveOptions.ImportanceSamplingLevel)] = "importance_sampling_level",
        [nameof(GrpoObjectiveOptions.MaxCompletionLength)] = "max_completion_length",
        [nameof(GrpoObjectiveOptions.KlEstimator)] = "kl_estimator",
        [nameof(GrpoObjectiveOptions.Delta)] = "delta",
        [nameof(GrpoObjectiveOptions.DualClip)] = "dual_clip",
        [nameof(GrpoObjectiveOptions.SapoTemperaturePositive)] = "sapo_temperature_pos",
        [nameof(GrpoObjectiveOptions.SapoTemperatureNegative)] = "sapo_temperature_neg",
        [nameof(GrpoObjectiveOptions.EntropyCoefficient)] = "entropy_coef",
        [nameof(GrpoObjectiveOptions.TopEntropyQuantile)] = "top_entropy_quantile",
    };

    /// <summary>The (N·F) scores, row-major, F and the F weights: <see cref="RewardsPerFunction"/> with <see cref="RewardWeights"/> (default 1 each), or <see cref="Rewards"/> as one function of weight 1.</summary>
    public (float[] Scores, int Functions, float[] Weights) RewardMatrix()
    {
        if (RewardsPerFunction is { } perFunction)
        {
            int f = perFunction[0].Length;
            return (perFunction.SelectMany(row => row).ToArray(), f, RewardWeights ?? Enumerable.Repeat(1f, f).ToArray());
        }
        return (Rewards!, 1, [1f]);
    }

    /// <summary>Checks counts and ranges; the message names the JSON field.</summary>
    public void Validate(string source = "batch")
    {
        if (GroupSize < 2)
            throw new FormatException($"'{source}': group_size is {GroupSize}; GRPO needs at least 2 completions per prompt to form a baseline.");
        if (Prompts.Length == 0)
            throw new FormatException($"'{source}': prompts is empty; pass at least one prompt.");
        if (Completions.Length != Prompts.Length * GroupSize)
            throw new FormatException(
                $"'{source}': completions has {Completions.Length} entries but prompts ({Prompts.Length}) × group_size ({GroupSize}) = {Prompts.Length * GroupSize}.");
        if ((Rewards is null) == (RewardsPerFunction is null))
            throw new FormatException($"'{source}': give exactly one of rewards (N numbers) and rewards_per_function (N lists of F numbers).");
        if (Rewards is { } rewards)
        {
            if (rewards.Length != Completions.Length)
                throw new FormatException($"'{source}': rewards has {rewards.Length} numbers but there are {Completions.Length} completions.");
            for (int i = 0; i < rewards.Length; i++)
                if (float.IsInfinity(rewards[i]))
                    throw new FormatException($"'{source}': rewards[{i}] is infinite; use a finite reward, or null / NaN for 'no score'.");
            if (RewardWeights is not null)
                throw new FormatException($"'{source}': reward_weights is given with rewards; it weighs the columns of rewards_per_function.");
        }
        if (RewardsPerFunction is { } perFunction)
        {
            if (perFunction.Length != Completions.Length)
                throw new FormatException($"'{source}': rewards_per_function has {perFunction.Length} lists but there are {Completions.Length} completions.");
            int f = perFunction.Length == 0 ? 0 : perFunction[0].Length;
            if (f == 0)
                throw new FormatException($"'{source}': rewards_per_function[0] is empty; give one score (or null) per reward function.");
            for (int i = 0; i < perFunction.Length; i++)
            {
                if (perFunction[i].Length != f)
                    throw new FormatException($"'{source}': rewards_per_function[{i}] has {perFunction[i].Length} scores but rewards_per_function[0] has {f}; every completion needs one per function.");
                for (int j = 0; j < f; j++)
                    if (float.IsInfinity(perFunction[i][j]))
                        throw new FormatException($"'{source}': rewards_per_function[{i}][{j}] is infinite; use a finite score, or null for 'no score'.");
            }
            if (RewardWeights is { } weights && (weights.Length != f || weights.Any(w => !float.IsFinite(w))))
                throw new FormatException($"'{source}': reward_weights must hold {f} finite numbers, one per column of rewards_per_function.");
        }
        if (!Enum.IsDefined(MultiObjectiveAggregation))
            throw new FormatException($"'{source}': multi_objective_aggregation must be sum_then_normalize or normalize_then_sum.");
        if (Completions.All(c => c.Length == 0))
            throw new FormatException($"'{source}': every completion is empty; there is no token to compute a loss on.");
        if (OldLogprobs is { } old)
        {
            if (old.Length != Completions.Length)
                throw new FormatException($"'{source}': old_logprobs has {old.Length} lists but there are {Completions.Length} completions.");
            for (int i = 0; i < old.Length; i++)
            {
                if (old[i].Length != Completions[i].Length)
                    throw new FormatException($"'{source}': old_logprobs[{i}] has {old[i].Length} values but completions[{i}] has {Completions[i].Length} tokens.");
                for (int t = 0; t < old[i].Length; t++)
                    if (!float.IsFinite(old[i][t]))
                        throw new FormatException($"'{source}': old_logprobs[{i}][{t}] is {old[i][t]}; log-probs must be finite.");
            }
        }
        if (MaskTruncatedCompletions && EosTokenIds.Length == 0)
            throw new FormatException($"'{source}': mask_truncated_completions is true but eos_token_id is missing; give the id (or list of ids) that ends a completion.");
        if (MicroBatchCompletions is < 1)
            throw new FormatException($"'{source}': micro_batch_completions is {MicroBatchCompletions}; use at least 1 (or leave it out for one micro-batch of all completions).");
        if (!(float.IsFinite(Temperature) && Temperature > 0))
            throw new FormatException($"'{source}': temperature is {Temperature}; it must be positive and finite (1.0 is usual).");
        if (Objective.LossType == LossType.DrGrpo && Objective.MaxCompletionLength < Completions.Max(c => c.Length))
            throw new FormatException(
                $"'{source}': loss_type dr_grpo needs max_completion_length (its normaliser) of at least the longest completion ({Completions.Max(c => c.Length)}).");
        try { Objective.Validate(); }
        catch (ArgumentOutOfRangeException e)
        {
            string field = e.ParamName is { } name && FieldOfOption.TryGetValue(name, out var f) ? f : e.ParamName ?? "an option";
            throw new FormatException($"'{source}': {field} is out of range: {e.Message}", e);
        }
    }

    /// <summary>Checks token ids against the model's vocabulary and lengths against its context, naming the first bad entry.</summary>
    /// <exception cref="FormatException">A token id is outside [0, vocab_size) or a prompt + completion is longer than the context.</exception>
    public void CheckAgainst(Checkpoints.ModelConfig config, string source = "batch")
    {
        ArgumentNullException.ThrowIfNull(config);
        void Ids(int[][] lists, string field)
        {
            for (int i = 0; i < lists.Length; i++)
                for (int t = 0; t < lists[i].Length; t++)
                    if ((uint)lists[i][t] >= (uint)config.VocabSize)
                        throw new FormatException(
                            $"'{source}': {field}[{i}][{t}] is token id {lists[i][t]}, outside the model's vocabulary [0, {config.VocabSize}).");
        }
        Ids(Prompts, "prompts");
        Ids(Completions, "completions");
        for (int i = 0; i < Completions.Length; i++)
        {
            int length = Prompts[i / GroupSize].Length + Completions[i].Length;
            if (length > config.MaxPositions)
                throw new FormatException(
                    $"'{source}': prompts[{i / GroupSize}] + completions[{i}] has {length} tokens but the model's context is {config.MaxPositions}.");
        }
    }

    private static JsonElement Required(JsonElement root, string source, string field) =>
        root.TryGetProperty(field, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : throw new FormatException($"'{source}': the field '{field}' is missing.");

    private static bool Bool(JsonElement root, string source, string field, bool fallback)
    {
        if (!root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new FormatException($"'{source}': '{field}' must be true or false."),
        };
    }

    /// <summary>eos_token_id as transformers writes it: a number, or a list of numbers.</summary>
    private static int[] EosIds(JsonElement root, string source)
    {
        if (!root.TryGetProperty("eos_token_id", out var value) || value.ValueKind == JsonValueKind.Null) return [];
        if (value.ValueKind == JsonValueKind.Number) return [Int(root, source, "eos_token_id", null)];
        if (value.ValueKind == JsonValueKind.Array)
            return value.EnumerateArray().Select(id => id.ValueKind == JsonValueKind.Number && id.TryGetInt32(out int n) && n >= 0 ? n
                : throw new FormatException($"'{source}': eos_token_id holds {id.GetRawText()}, which is not a token id.")).ToArray();
        throw new FormatException($"'{source}': 'eos_token_id' must be a token id or a list of them.");
    }

    private static int Int(JsonElement root, string source, string field, int? fallback)
    {
        if (!root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            return fallback ?? throw new FormatException($"'{source}': the field '{field}' is missing.");
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int n)
            ? n : throw new FormatException($"'{source}': '{field}' must be an integer.");
    }

    private static float Float(JsonElement root, string source, string field, float fallback)
    {
        if (!root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return value.ValueKind == JsonValueKind.Number ? value.GetSingle()
            : throw new FormatException($"'{source}': '{field}' must be a number.");
    }

    private static float? NullableFloat(JsonElement root, string source, string field)
    {
        if (!root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.Number ? value.GetSingle()
            : throw new FormatException($"'{source}': '{field}' must be a number or null.");
    }

    private static string Text(JsonElement root, string source, string field, string fallback)
    {
        if (!root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return value.ValueKind == JsonValueKind.String ? value.GetString()!
            : throw new FormatException($"'{source}': '{field}' must be a string (default {fallback}).");
    }

    private static int[][] IntLists(JsonElement root, string source, string field)
    {
        var value = Required(root, source, field);
        if (value.ValueKind != JsonValueKind.Array)
            throw new FormatException($"'{source}': '{field}' must be a list of token-id lists.");
        return value.EnumerateArray().Select((row, i) => row.ValueKind == JsonValueKind.Array
            ? row.EnumerateArray().Select((x, t) => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int id)
                ? id : throw new FormatException($"'{source}': {field}[{i}][{t}] is not an integer token id.")).ToArray()
            : throw new FormatException($"'{source}': {field}[{i}] is not a list of token ids.")).ToArray();
    }

    private static float[] Floats(JsonElement value, string source, string field, bool allowNull)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw new FormatException($"'{source}': '{field}' must be a list of numbers.");
        return value.EnumerateArray().Select((x, i) => x.ValueKind switch
        {
            JsonValueKind.Number => x.GetSingle(),
            JsonValueKind.Null when allowNull => float.NaN,
            JsonValueKind.String when allowNull && x.GetString() is "NaN" or "nan" => float.NaN,
            _ => throw new FormatException($"'{source}': {field}[{i}] is not a number."),
        }).ToArray();
    }
}

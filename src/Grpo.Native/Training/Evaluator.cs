using Grpo.Native.Datasets;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tokenization;

namespace Grpo.Native.Training;

/// <summary>
/// Measures a policy on dataset rows with reward functions: pass@1, the fraction of prompts whose greedy completion
/// earns the best weighted reward, and the mean weighted reward of K sampled completions per prompt.
/// </summary>
/// <remarks>
/// <para>Prompts are built as the trainer builds them (<see cref="PromptBuilder"/>); rows over its MaxPromptLength are
/// skipped and counted, never cut. Each row's other columns reach the rewards as <see cref="RewardInput.Columns"/>.
/// Generation runs through the key/value cache (<see cref="RolloutGenerator"/>), <see cref="EvaluatorOptions.BatchSize"/>
/// prompts at a time; the rewards of a batch are scored concurrently by <see cref="RewardScorer"/>.</para>
/// <para>A completion's weighted reward is Σ_f w_f · score_f over the functions that scored it (TRL's nansum); when none
/// did it is unscored (NaN), left out of pass@1 and of the mean, and counted in <see cref="EvaluationResult.UnscoredGreedy"/>
/// and <see cref="EvaluationResult.UnscoredSamples"/>.</para>
/// </remarks>
public sealed class Evaluator
{
    private readonly TransformerModel _model;
    private readonly ITokenizer _tokenizer;
    private readonly IReadOnlyList<RewardFunction> _rewards;

    /// <summary>An evaluator of <paramref name="model"/>; options are validated here.</summary>
    /// <param name="model">The policy.</param>
    /// <param name="tokenizer">Decodes completions for the reward functions (the one the prompts are built with).</param>
    /// <param name="rewards">At least one reward function, names distinct.</param>
    /// <param name="options">How to evaluate.</param>
    /// <exception cref="ArgumentException">No rewards, duplicate names, a tokenizer larger than the model's vocabulary, a
    /// stop token outside it, or no pass threshold (a function without the bound that <see cref="RewardFunction.BestWeightedScore"/> needs).</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public Evaluator(TransformerModel model, ITokenizer tokenizer, IReadOnlyList<RewardFunction> rewards, EvaluatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (rewards.Count == 0) throw new ArgumentException("Pass at least one reward function to evaluate with.", nameof(rewards));
        var duplicate = rewards.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"Two reward functions are named '{duplicate.Key}'; names label the results and must differ.", nameof(rewards));
        if (tokenizer.VocabularySize > model.Config.VocabSize)
            throw new ArgumentException(
                $"The tokenizer has {tokenizer.VocabularySize} tokens but the model's vocabulary is {model.Config.VocabSize}.", nameof(tokenizer));
        foreach (int stop in options.StopTokens)
            if ((uint)stop >= (uint)model.Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(options), stop, $"Stop token {stop} is outside the vocabulary [0, {model.Config.VocabSize}).");
        PassThreshold = options.PassThreshold ?? BestWeightedReward(rewards);
        _model = model;
        _tokenizer = tokenizer;
        _rewards = rewards;
        Options = options;
    }

    /// <summary>The options.</summary>
    public EvaluatorOptions Options { get; }

    /// <summary>The weighted reward a greedy completion must reach to pass.</summary>
    public double PassThreshold { get; }

    /// <summary>
    /// The best weighted reward of <paramref name="rewards"/>: Σ_f <see cref="RewardFunction.BestWeightedScore"/>
    /// (for the built-in rewards, with weights w_f ≥ 0: w_accuracy · 1 + w_think_format · 1 + 0 + 0).
    /// </summary>
    /// <exception cref="ArgumentException">A function lacks the bound its weight needs; the message names it.</exception>
    public static double BestWeightedReward(IReadOnlyList<RewardFunction> rewards)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        double best = 0;
        foreach (var reward in rewards)
            best += reward.BestWeightedScore ?? throw new ArgumentException(
                $"Reward function '{reward.Name}' has no {(reward.Weight >= 0 ? nameof(RewardFunction.MaxScore) : nameof(RewardFunction.MinScore))}, " +
                $"so the best weighted reward (what pass@1 counts) is unknown: set it on the function (with {{ {nameof(RewardFunction.MaxScore)} = ... }}) " +
                $"or set {nameof(EvaluatorOptions)}.{nameof(EvaluatorOptions.PassThreshold)}.", nameof(rewards));
        return best;
    }

    /// <summary>Evaluates the policy on <paramref name="rows"/>, in order.</summary>
    /// <param name="rows">The rows (the first N of a dataset, say).</param>
    /// <param name="builder">Turns rows into prompt tokens with the policy's tokenizer; its MaxPromptLength skips rows.</param>
    /// <param name="progress">Told the number of rows done after each batch; optional.</param>
    /// <param name="cancellation">Stops between batches and cancels reward scoring.</param>
    /// <exception cref="PromptDatasetException">A row cannot be made into a prompt (a conversation, but no chat template is used).</exception>
    /// <exception cref="ArgumentException">The longest prompt plus MaxCompletionLength exceeds the model's context, or a token is outside its vocabulary.</exception>
    public EvaluationResult Evaluate(IReadOnlyList<PromptRow> rows, PromptBuilder builder, IProgress<int>? progress = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(builder);
        var o = Options;

        var prompts = new List<(int Index, PromptRow Row, int[] Tokens)>(rows.Count);
        int skipped = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            PromptTokens tokens;
            try
            {
                tokens = builder.Encode(rows[i]);
            }
            catch (InvalidOperationException e)
            {
                throw new PromptDatasetException(e.Message, e);
            }
            if (builder.Fits(tokens) && tokens.TokenIds.Count > 0) prompts.Add((i, rows[i], tokens.TokenIds.ToArray()));
            else skipped++;
        }
        var functionSums = new double[_rewards.Count];
        var functionCounts = new int[_rewards.Count];
        var details = new List<EvaluatedPrompt>(prompts.Count);
        if (prompts.Count > 0)
        {
            int longest = prompts.Max(p => p.Tokens.Length);
            if (longest + o.MaxCompletionLength > _model.Config.MaxPositions)
                throw new ArgumentException(
                    $"The longest prompt ({longest} tokens) plus {nameof(EvaluatorOptions.MaxCompletionLength)} = {o.MaxCompletionLength} exceeds the " +
                    $"model's context of {_model.Config.MaxPositions} tokens; lower {nameof(EvaluatorOptions.MaxCompletionLength)} or the prompt length limit.",
                    nameof(rows));
            int batchSize = Math.Min(o.BatchSize, prompts.Count);
            bool greedySamples = o.Sampling.Temperature == 0;
            using var generator = new RolloutGenerator(_model, batchSize * (greedySamples ? 1 : o.Samples), longest, o.MaxCompletionLength,
                batchSize * longest);
            var greedy = new SamplingOptions { Temperature = 0 };
            for (int first = 0; first < prompts.Count; first += batchSize)
            {
                cancellation.ThrowIfCancellationRequested();
                var batch = prompts.Skip(first).Take(batchSize).ToArray();
                var batchTokens = batch.Select(p => p.Tokens).ToArray();
                ulong seed = unchecked((ulong)(uint)o.Seed * 0x9E3779B97F4A7C15UL + (ulong)first);
                var best = generator.Generate(batchTokens, 1, o.MaxCompletionLength, greedy, o.StopTokens, seed);
                // At temperature 0 every sample is the greedy completion: generate it once.
                var sampled = greedySamples ? best : generator.Generate(batchTokens, o.Samples, o.MaxCompletionLength, o.Sampling, o.StopTokens, seed);
                int samplesPerPrompt = greedySamples ? 1 : o.Samples;

                var inputs = new List<RewardInput>(batch.Length * (1 + samplesPerPrompt));
                var promptTexts = batchTokens.Select(t => _tokenizer.Decode(t)).ToArray();
                RewardInput Input(int b, int[] completion, bool truncated) =>
                    new(promptTexts[b], _tokenizer.Decode(completion), batchTokens[b], completion, first + b, truncated) { Columns = batch[b].Row.Columns };
                for (int b = 0; b < batch.Length; b++) inputs.Add(Input(b, best.Completions[b], best.Truncated[b]));
                if (!greedySamples)
                    for (int s = 0; s < sampled.Completions.Length; s++) inputs.Add(Input(s / samplesPerPrompt, sampled.Completions[s], sampled.Truncated[s]));
                var scores = RewardScorer.ScoreAsync(_rewards, inputs, o.RewardTimeout, cancellation).GetAwaiter().GetResult();

                int f = _rewards.Count;
                for (int b = 0; b < batch.Length; b++)
                {
                    double greedyReward = WeightedSum(scores.Scores.AsSpan(b * f, f));
                    var sampleRewards = new double[o.Samples];
                    for (int k = 0; k < o.Samples; k++)
                    {
                        // The scored row of sample k: the greedy one at temperature 0, else its own.
                        int row = greedySamples ? b : batch.Length + b * samplesPerPrompt + k;
                        var rowScores = scores.Scores.AsSpan(row * f, f);
                        sampleRewards[k] = WeightedSum(rowScores);
                        for (int j = 0; j < f; j++)
                            if (!float.IsNaN(rowScores[j]))
                            {
                                functionSums[j] += rowScores[j];
                                functionCounts[j]++;
                            }
                    }
                    bool passed = !double.IsNaN(greedyReward) && greedyReward >= PassThreshold - 1e-6 * Math.Max(1, Math.Abs(PassThreshold));
                    details.Add(new EvaluatedPrompt(batch[b].Index, batch[b].Row, inputs[b].Completion, best.Truncated[b], greedyReward, passed, sampleRewards));
                }
                progress?.Report(batch[^1].Index + 1);
            }
        }
        progress?.Report(rows.Count);

        var scoredGreedy = details.Where(d => !double.IsNaN(d.GreedyReward)).ToList();
        var scoredSamples = details.SelectMany(d => d.SampleRewards).Where(r => !double.IsNaN(r)).ToList();
        return new EvaluationResult(
            PassAt1: scoredGreedy.Count == 0 ? double.NaN : (double)scoredGreedy.Count(d => d.Passed) / scoredGreedy.Count,
            MeanReward: scoredSamples.Count == 0 ? double.NaN : scoredSamples.Average(),
            Prompts: details.Count, Samples: o.Samples, Skipped: skipped,
            UnscoredGreedy: details.Count - scoredGreedy.Count,
            UnscoredSamples: details.Count * o.Samples - scoredSamples.Count,
            PassThreshold: PassThreshold,
            MeanRewardPerFunction: _rewards.Select((r, j) => (r.Name, Mean: functionCounts[j] == 0 ? double.NaN : functionSums[j] / functionCounts[j]))
                .ToDictionary(x => x.Name, x => x.Mean),
            Details: details);
    }

    /// <summary>Σ_f w_f · score_f over the scored (non-NaN) functions; NaN when none scored.</summary>
    private double WeightedSum(ReadOnlySpan<float> scores)
    {
        double sum = 0;
        bool scored = false;
        for (int j = 0; j < scores.Length; j++)
        {
            if (float.IsNaN(scores[j])) continue;
            sum += (double)_rewards[j].Weight * scores[j];
            scored = true;
        }
        return scored ? sum : double.NaN;
    }
}

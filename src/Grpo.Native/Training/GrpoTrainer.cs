using System.Collections.ObjectModel;
using System.Diagnostics;
using Grpo.Native.Distributed;
using Grpo.Native.Losses;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using Grpo.Native.Tokenization;

namespace Grpo.Native.Training;

/// <summary>Raised after every step with its metrics.</summary>
public sealed class GrpoStepEventArgs(GrpoStepMetrics metrics) : EventArgs
{
    /// <summary>The step's metrics.</summary>
    public GrpoStepMetrics Metrics { get; } = metrics;
}

/// <summary>
/// GRPO for a <see cref="TransformerModel"/> policy. One <see cref="TrainStep(IReadOnlyList{int[]})"/>: rollout of G
/// completions per prompt with the KV cache → rewards → group-relative advantages → reference
/// log-probs (β &gt; 0) → μ policy updates, each a pass of micro-batches through the fused GRPO loss
/// whose gradients accumulate, then clipping and AdamW. Each stage is its own type (RolloutGenerator,
/// RewardScorer, ComputeAdvantages, GrpoLossPass, AdamWOptimizer); this class only sequences them.
/// With a communicator of K ranks (GrpoTrainer.DataParallel.cs) each rank generates and scores its share of the prompts
/// and trains its share of the micro-batches, and every rank ends the step with the same weights one process would have.
/// </summary>
public sealed partial class GrpoTrainer : IDisposable
{
    private readonly TransformerModel _policy;
    private readonly TransformerModel? _reference;
    private readonly ITokenizer _tokenizer;
    private readonly IReadOnlyList<RewardFunction> _rewards;
    private readonly RolloutGenerator _rollouts;
    private readonly LearningRateSchedule _schedule;
    private readonly StepScalars _stepScalars;

    /// <summary>Creates a trainer; options are validated here.</summary>
    /// <param name="policy">The model being trained.</param>
    /// <param name="tokenizer">Decodes completions for the reward functions.</param>
    /// <param name="rewards">At least one reward function.</param>
    /// <param name="options">The run's options.</param>
    /// <param name="reference">The frozen reference model; required when β &gt; 0 and never run when β = 0.</param>
    /// <param name="communicator">The ranks of a data-parallel run (each passes its own); null for one process.</param>
    public GrpoTrainer(TransformerModel policy, ITokenizer tokenizer, IReadOnlyList<RewardFunction> rewards, GrpoTrainerOptions options,
        TransformerModel? reference = null, ICommunicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (rewards.Count == 0)
            throw new ArgumentException("Pass at least one reward function: GRPO learns from rewards alone.", nameof(rewards));
        var duplicate = rewards.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"Two reward functions are named '{duplicate.Key}'; names label the metrics and must differ.", nameof(rewards));
        if (tokenizer.VocabularySize > policy.Config.VocabSize)
            throw new ArgumentException(
                $"The tokenizer has {tokenizer.VocabularySize} tokens but the model's vocabulary is {policy.Config.VocabSize}.", nameof(tokenizer));
        if (options.Beta > 0 && reference is null)
            throw new ArgumentException($"Beta is {options.Beta} but no reference model was given; pass one, or set Beta to 0.", nameof(reference));
        if (ReferenceEquals(reference, policy))
            throw new ArgumentException(
                "The reference model is the policy object itself, so it would move with every update and the KL penalty would always be 0; " +
                "load a second, frozen copy (TransformerModel.Load of the same folder).", nameof(reference));
        if (reference is not null && reference.Config.VocabSize != policy.Config.VocabSize)
            throw new ArgumentException("The reference model's vocabulary differs from the policy's.", nameof(reference));
        foreach (int stop in options.StopTokens)
            if ((uint)stop >= (uint)policy.Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(options), stop, $"Stop token {stop} is outside the vocabulary [0, {policy.Config.VocabSize}).");

        _communicator = communicator ?? SingleProcess.Instance;
        CheckDataParallel(options, _communicator);
        _policy = policy;
        _reference = options.Beta > 0 ? reference : null; // β = 0: the reference is never run
        _tokenizer = tokenizer;
        _rewards = rewards;
        Options = options;
        int promptsPerRank = options.PromptsPerStep / _communicator.Size, slots = promptsPerRank * options.GroupSize;
        _rollouts = new RolloutGenerator(policy, slots, options.MaxPromptLength, options.MaxCompletionLength,
            promptsPerRank * options.MaxPromptLength);
        _schedule = options.CreateSchedule();
        Optimizer = new AdamWOptimizer(policy.Device, policy.Parameters.Count, options.AdamW);
        int microBatches = (options.PromptsPerStep * options.GroupSize + options.MicroBatchSize - 1) / options.MicroBatchSize;
        _stepScalars = new StepScalars(policy.Device, options.NumIterations, microBatches);
    }

    /// <summary>The run's options.</summary>
    public GrpoTrainerOptions Options { get; }

    /// <summary>The policy being trained.</summary>
    public TransformerModel Policy => _policy;

    /// <summary>AdamW and its moments.</summary>
    public AdamWOptimizer Optimizer { get; }

    /// <summary>Steps in a row, up to now, whose update was skipped for a non-finite loss or gradient.</summary>
    public int ConsecutiveSkippedSteps { get; private set; }

    /// <summary>Steps completed (rollouts); each made <see cref="GrpoTrainerOptions.NumIterations"/> optimizer updates.</summary>
    public int Step { get; private set; }

    /// <summary>Longest a reward function call may run before it counts as failed (scored NaN). Null: no limit.</summary>
    public TimeSpan? RewardTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Raised after every step.</summary>
    public event EventHandler<GrpoStepEventArgs>? StepCompleted;

    /// <summary>
    /// The last step's completions, scores, rewards and advantages (TRL's log_completions); null before the first step.
    /// Set before <see cref="StepCompleted"/> is raised, replaced by the next step.
    /// </summary>
    public GrpoStepCompletions? LastStepCompletions { get; private set; }

    /// <summary>Restores the step counter when resuming from a checkpoint.</summary>
    internal void RestoreStep(int step) => Step = step;

    /// <summary>One GRPO step on <paramref name="prompts"/> (exactly <see cref="GrpoTrainerOptions.PromptsPerStep"/> token-id lists).</summary>
    /// <exception cref="ArgumentException">The prompt count is wrong, a prompt is empty or longer than MaxPromptLength, or a token is out of range.</exception>
    public GrpoStepMetrics TrainStep(IReadOnlyList<int[]> prompts) => TrainStep(prompts, promptColumns: null);

    /// <summary>
    /// One GRPO step on <paramref name="prompts"/>, each with the other columns of its dataset row, which reach the
    /// reward functions as <see cref="RewardInput.Columns"/> (as TRL passes them as keyword arguments).
    /// </summary>
    /// <param name="prompts">Exactly <see cref="GrpoTrainerOptions.PromptsPerStep"/> token-id lists.</param>
    /// <param name="promptColumns">One dictionary per prompt, or null for none.</param>
    /// <exception cref="ArgumentException">A count is wrong, a prompt is empty or longer than MaxPromptLength, or a token is out of range.</exception>
    public GrpoStepMetrics TrainStep(IReadOnlyList<int[]> prompts, IReadOnlyList<IReadOnlyDictionary<string, object?>>? promptColumns)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (Options.DynamicSampling is not null)
            throw new InvalidOperationException(
                "DynamicSampling draws further prompts when groups are dropped: call TrainStep(Func<PromptBatch>) with a source of prompt batches.");
        return Train(() => new PromptBatch(prompts, promptColumns));
    }

    /// <summary>
    /// One GRPO step on prompt batches drawn from <paramref name="nextPrompts"/>: once, or with
    /// <see cref="GrpoTrainerOptions.DynamicSampling"/> as many times (up to its limit) as it takes to collect
    /// <see cref="GrpoTrainerOptions.PromptsPerStep"/> groups whose rewards are not all equal.
    /// </summary>
    /// <param name="nextPrompts">Returns the next batch of exactly PromptsPerStep prompts (with their row columns, if any).</param>
    /// <exception cref="ArgumentException">A batch's count is wrong, a prompt is empty or longer than MaxPromptLength, or a token is out of range.</exception>
    public GrpoStepMetrics TrainStep(Func<PromptBatch> nextPrompts)
    {
        ArgumentNullException.ThrowIfNull(nextPrompts);
        return Train(nextPrompts);
    }

    /// <summary>One batch's rollout and scores, before groups are chosen.</summary>
    private sealed record Generation(Rollout Rollout, RewardInput[] Inputs, RewardScores Scores);

    private void CheckBatch(PromptBatch batch)
    {
        var o = Options;
        var prompts = batch.Prompts ?? throw new ArgumentNullException(nameof(batch), "The prompt batch has no prompts.");
        if (prompts.Count != o.PromptsPerStep)
            throw new ArgumentException($"'prompts' has {prompts.Count} prompts but the trainer takes {o.PromptsPerStep} per step (PromptsPerStep).", "prompts");
        if (batch.Columns is not null && batch.Columns.Count != prompts.Count)
            throw new ArgumentException($"'promptColumns' has {batch.Columns.Count} entries for {prompts.Count} prompts; pass one per prompt.", "promptColumns");
        for (int p = 0; p < prompts.Count; p++)
            if (prompts[p] is null || prompts[p].Length == 0 || prompts[p].Length > o.MaxPromptLength)
                throw new ArgumentException(
                    $"Prompt {p} has {prompts[p]?.Length ?? 0} tokens; prompts need 1 to MaxPromptLength = {o.MaxPromptLength} tokens (they are never cut silently).",
                    "prompts");
    }

    /// <summary>
    /// 1 and 2: G completions per prompt, then the rewards, F functions concurrently (failures score NaN and are counted).
    /// Each rank does its share of the prompts (completion rows drawn under their row in the whole batch); the shares are
    /// then gathered, so every rank returns the whole batch's generation.
    /// </summary>
    private Generation Generate(PromptBatch batch, ulong seed)
    {
        var o = Options;
        int share = o.PromptsPerStep / _communicator.Size, firstPrompt = _communicator.Rank * share;
        var prompts = _communicator.Size == 1 ? batch.Prompts : batch.Prompts.Skip(firstPrompt).Take(share).ToArray();
        var rollout = _rollouts.Generate(prompts, o.GroupSize, o.MaxCompletionLength, o.Sampling, o.StopTokens, seed, firstPrompt * o.GroupSize);
        var inputs = RewardInputs(rollout, batch, firstPrompt);
        var scores = RewardScorer.ScoreAsync(_rewards, inputs, RewardTimeout).GetAwaiter().GetResult();
        if (_communicator.Size == 1) return new Generation(rollout, inputs, scores);
        var (whole, wholeScores) = GatherGeneration(rollout, scores, batch.Prompts);
        return new Generation(whole, RewardInputs(whole, batch, 0), wholeScores);
    }

    /// <summary>The reward functions' view of each completion of <paramref name="rollout"/>, whose first prompt is the batch's prompt <paramref name="firstPrompt"/>.</summary>
    private RewardInput[] RewardInputs(Rollout rollout, PromptBatch batch, int firstPrompt)
    {
        int g = Options.GroupSize;
        return Enumerable.Range(0, rollout.Completions.Length).Select(i => new RewardInput(
            _tokenizer.Decode(rollout.Prompts[i / g]), _tokenizer.Decode(rollout.Completions[i]),
            rollout.Prompts[i / g], rollout.Completions[i], firstPrompt + i / g, rollout.Truncated[i])
        {
            Columns = batch.Columns?[firstPrompt + i / g] ?? ReadOnlyDictionary<string, object?>.Empty,
        }).ToArray();
    }

    /// <summary>The chosen groups of several generations as one rollout, prompt indices renumbered.</summary>
    private Generation Merge(IReadOnlyList<(Generation Source, int Group)> groups, int[] failures)
    {
        int g = Options.GroupSize, f = _rewards.Count;
        var rows = groups.SelectMany(x => Enumerable.Range(x.Group * g, g).Select(i => (x.Source, Row: i))).ToArray();
        var rollout = new Rollout(
            groups.Select(x => x.Source.Rollout.Prompts[x.Group]).ToArray(),
            rows.Select(r => r.Source.Rollout.Completions[r.Row]).ToArray(),
            rows.Select(r => r.Source.Rollout.Logprobs[r.Row]).ToArray(),
            rows.Select(r => r.Source.Rollout.Truncated[r.Row]).ToArray());
        var inputs = rows.Select((r, i) => r.Source.Inputs[r.Row] with { PromptIndex = i / g }).ToArray();
        var scores = rows.SelectMany(r => r.Source.Scores.Scores.AsSpan(r.Row * f, f).ToArray()).ToArray();
        return new Generation(rollout, inputs, new RewardScores(scores, failures));
    }

    private GrpoStepMetrics Train(Func<PromptBatch> nextPrompts)
    {
        var o = Options;
        var clock = Stopwatch.StartNew();
        var device = _policy.Device;
        using var phases = new StepPhaseTimer(device);
        var ops = device.Operations;
        int step = Step + 1;
        double communicationBefore = CommunicationSeconds;
        if (!_ranksAgreed) CheckRanksAgree(); // once, before the first step's work

        // 1-2. Rollouts and rewards; the seed depends on the step (and the generation batch), so a resumed run samples the same.
        ulong rolloutSeed = unchecked((ulong)(uint)o.Seed * 0x9E3779B97F4A7C15UL + (ulong)step);
        int maxBatches = o.DynamicSampling?.MaxGenerationBatches ?? 1, batches = 0, dropped = 0;
        var kept = new List<(Generation Source, int Group)>();
        var failures = new int[_rewards.Count];
        Generation? last = null;
        while (batches < maxBatches && kept.Count < o.PromptsPerStep)
        {
            var batch = nextPrompts();
            CheckBatch(batch);
            var start = phases.Mark();
            last = Generate(batch, unchecked(rolloutSeed + (ulong)batches * 0xD1B54A32D192ED03UL));
            var generated = phases.Until(StepPhase.Rollout, start);
            batches++;
            for (int j = 0; j < failures.Length; j++) failures[j] += last.Scores.Failures[j];
            bool[] informative = o.DynamicSampling is null ? Enumerable.Repeat(true, o.PromptsPerStep).ToArray()
                : InformativeGroups.Find(last.Scores.Scores, _rewards.Select(r => r.Weight).ToArray(), o.GroupSize);
            for (int group = 0; group < informative.Length; group++)
                if (informative[group] && kept.Count < o.PromptsPerStep) kept.Add((last, group));
                else dropped++;
            phases.Until(StepPhase.Rewards, generated);
        }
        if (kept.Count == 0)
        {
            // Nothing informative within the limit: train on the last batch as it is (its advantages are all 0).
            kept.AddRange(Enumerable.Range(0, o.PromptsPerStep).Select(group => (last!, group)));
            dropped -= o.PromptsPerStep;
        }
        var generation = batches == 1 && kept.Count == o.PromptsPerStep ? last! with { Scores = last!.Scores with { Failures = failures } }
            : Merge(kept, failures);
        var rollout = generation.Rollout;
        var inputs = generation.Inputs;
        var scores = generation.Scores;
        int n = rollout.Completions.Length;
        var beforeAdvantages = phases.Mark();

        // 3. Group-relative advantages.
        int f = _rewards.Count;
        int groups = n / o.GroupSize;
        using var rewardsPerFunction = device.FromArray<float>(scores.Scores, n, f);   // (N, F)
        // The outputs are windows of one buffer, so the host reads them back in one copy.
        using var advantageOutputs = device.Allocate<float>(2 * n + groups);         // [rewards (N) | advantages (N) | group std (B)]
        using var rewards = advantageOutputs.Slice(0, n);                            // (N)
        using var advantages = advantageOutputs.Slice(n, n);                         // (N)
        using var groupStd = advantageOutputs.Slice(2 * n, groups);                  // (B)
        using var groupMean = device.Allocate<float>(groups);                        // (B)
        var stats = RewardAggregation.ComputeAdvantages(device, rewardsPerFunction, _rewards.Select(r => r.Weight).ToArray(), o.GroupSize,
            o.ScaleRewards, o.MultiObjectiveAggregation, rewards, advantages, groupMean, groupStd);
        float[] hostAdvantageOutputs = advantageOutputs.ToArray();
        float[] hostGroupStd = hostAdvantageOutputs[(2 * n)..];
        var afterAdvantages = phases.Until(StepPhase.Rewards, beforeAdvantages);
        var stepCompletions = new GrpoStepCompletions(step, inputs, _rewards.Select(r => r.Name).ToArray(), scores.Scores,
            hostAdvantageOutputs[..n], hostAdvantageOutputs[n..(2 * n)]);

        // 4. Micro-batches of completions, each with its prompt; reference (β > 0) and old (μ > 1) log-probs before any update.
        // All are built (their token counts weigh the loss), but a rank runs only its own [firstLocal, endLocal).
        var microBatches = MicroBatches(rollout, o);
        try
        {
            int totalMasked = microBatches.Sum(mb => mb.Batch.MaskedTokenCount);
            var (firstLocal, endLocal) = FixedOrderSum.RangeOfRank(_communicator.Rank, _communicator.Size, microBatches.Count);
            var localBatches = microBatches.GetRange(firstLocal, endLocal - firstLocal);
            int activationRows = localBatches.Count == 0 ? 1 : localBatches.Max(mb => mb.Batch.Sequences.TokenCount);
            // One inference set per model that needs it, sized for the largest micro-batch and reused by all: none when
            // β = 0 and μ = 1, so no memory is held (or cached) for passes that do not run.
            bool needsOld = o.NumIterations > 1;
            using (var referenceActivations = _reference?.CreateActivations(activationRows, ActivationMode.Inference))
            using (var inference = needsOld ? _policy.CreateActivations(activationRows, ActivationMode.Inference) : null)
            {
                foreach (var mb in localBatches)
                {
                    if (_reference is not null)
                    {
                        mb.RefLogprobs = device.Allocate<float>(mb.Batch.Count, mb.Batch.CompletionSlots);
                        GrpoLossPass.CompletionLogProbs(_reference, mb.Batch, referenceActivations!, o.Sampling.Temperature, mb.RefLogprobs);
                    }
                    if (needsOld)
                    {
                        mb.OldLogprobs = device.Allocate<float>(mb.Batch.Count, mb.Batch.CompletionSlots);
                        GrpoLossPass.CompletionLogProbs(_policy, mb.Batch, inference!, o.Sampling.Temperature, mb.OldLogprobs);
                    }
                }
            }

            phases.Until(StepPhase.ReferenceLogprobs, afterAdvantages);

            // 5. μ updates over the same rollout. Nothing is read back until every update is queued: each micro-batch's
            // objective scalars stay on the device, where a gate decides whether the update applies (finite loss and norm,
            // no refused input, the previous update applied) and by what factor it is clipped. One read at the end.
            var objective = o.Objective;
            float[] shares = microBatches
                .Select(mb => MicroBatchShare.Of(o.LossType, mb.Batch.MaskedTokenCount, totalMasked, microBatches.Count)).ToArray();
            _stepScalars.Begin(shares);
            var learningRates = new float[o.NumIterations];
            int stepCountBefore = Optimizer.StepCount;
            using var training = _policy.CreateActivations(activationRows,
                o.RecomputeActivations ? ActivationMode.TrainingWithRecompute : ActivationMode.Training);
            for (int iteration = 0; iteration < o.NumIterations; iteration++)
            {
                var start = phases.Mark();
                // The gradient is the FixedOrderSum tree over the micro-batches: this rank's subtree here, the ranks' sums below.
                SumGradientTree(firstLocal, endLocal, index =>
                {
                    var mb = microBatches[index];
                    if (shares[index] == 0) return; // its row of scalars is not read
                    using var mbAdvantages = advantages.Slice(mb.First, mb.Batch.Count);
                    GrpoLossPass.RunToDevice(_policy, mb.Batch, training, mbAdvantages, mb.OldLogprobs, mb.RefLogprobs,
                        o.Sampling.Temperature, objective, shares[index], _stepScalars.Objective(iteration, index));
                });
                if (_communicator.Size > 1)
                {
                    GatherObjectiveScalars(_stepScalars.Objectives(iteration), firstLocal, endLocal);
                    SumGradientsAcrossRanks();
                }
                var backwardDone = phases.Until(StepPhase.PolicyForwardBackward, start);
                var gate = _stepScalars.Gate(iteration);
                ops.UpdateGate(_policy.Gradients.Buffer, _stepScalars.Objectives(iteration), _stepScalars.Shares,
                    o.MaxGradNorm ?? float.PositiveInfinity, iteration == 0 ? null : _stepScalars.Gate(iteration - 1), gate);
                // A refused update changes nothing on the device; the step count is corrected once the gates are read.
                learningRates[iteration] = _schedule.At(Optimizer.StepCount);
                Optimizer.Step(_policy.Parameters.Buffer, _policy.Gradients.Buffer, learningRates[iteration], gate);
                phases.Until(StepPhase.Optimizer, backwardDone);
            }

            // The one read of the updates' scalars. The updates that applied are a prefix (a refused one refuses the rest).
            var read = _stepScalars.Read();
            int updates = 0;
            while (updates < o.NumIterations && read.Gate(updates)[UpdateGateSlots.Apply] != 0) updates++;
            Optimizer.RestoreStepCount(stepCountBefore + updates);
            // A refused input raises the error the objective raises (the update it was part of did not apply).
            int iterationsRun = Math.Min(updates + 1, o.NumIterations);
            for (int iteration = 0; iteration < iterationsRun; iteration++)
                foreach (var mb in microBatches)
                    if (shares[mb.Index] != 0)
                        ObjectiveScalars.ThrowOnBadInputs(read.Objective(iteration, mb.Index), advantages.Slice(mb.First, mb.Batch.Count),
                            mb.OldLogprobs, mb.Batch.CompletionSlots);
            // Metrics: the updates that applied and the first refused one, if any (whose non-finite values show why); the
            // iterations after a refused one ran on the device but changed nothing and are not counted.
            float lossSum = 0, gradNorm = 0, learningRate = 0;
            double klSum = 0, entropySum = 0, lowSum = 0, highSum = 0, regionSum = 0, dualSum = 0, cispoSum = 0;
            for (int iteration = 0; iteration < iterationsRun; iteration++)
            {
                float loss = 0;
                foreach (var mb in microBatches)
                {
                    if (shares[mb.Index] == 0) continue;
                    var r = ObjectiveScalars.Decode(read.Objective(iteration, mb.Index));
                    loss += shares[mb.Index] * r.Loss;
                    // Metrics are token-weighted means over the micro-batches.
                    double w = totalMasked == 0 ? 0 : (double)mb.Batch.MaskedTokenCount / totalMasked;
                    klSum += w * r.MeanKl; entropySum += w * r.MeanEntropy;
                    lowSum += w * r.ClipRatioLow; highSum += w * r.ClipRatioHigh; regionSum += w * r.ClipRatioRegion;
                    dualSum += w * r.DualClipRatio; cispoSum += w * r.CispoClipRatio;
                }
                lossSum += loss;
                gradNorm = read.Gate(iteration)[UpdateGateSlots.Norm];
                learningRate = learningRates[iteration];
            }
            Step = step;
            bool skipped = updates == 0;

            double seconds = clock.Elapsed.TotalSeconds;
            int[] lengths = rollout.Completions.Select(c => c.Length).ToArray();
            var metrics = new GrpoStepMetrics
            {
                Step = step,
                Reward = stats.BatchMean,
                RewardStd = RewardStd(stats, hostGroupStd, o.ScaleRewards),
                RewardsPerFunction = _rewards.Select((r, j) => (r.Name, Stats: NanMeanStd(scores.Scores, j, f)))
                    .ToDictionary(x => x.Name, x => x.Stats),
                RewardFailures = _rewards.Select((r, j) => (r.Name, scores.Failures[j])).ToDictionary(x => x.Name, x => x.Item2),
                FracRewardZeroStd = FracRewardZeroStd(stats, hostGroupStd, o.ScaleRewards),
                Kl = (float)(klSum / iterationsRun),
                Entropy = (float)(entropySum / iterationsRun),
                ClipRatioLow = (float)(lowSum / iterationsRun),
                ClipRatioHigh = (float)(highSum / iterationsRun),
                ClipRatioRegion = (float)(regionSum / iterationsRun),
                DualClipRatio = (float)(dualSum / iterationsRun),
                CispoClipRatio = (float)(cispoSum / iterationsRun),
                MeanLength = (float)lengths.Average(),
                MinLength = lengths.Min(),
                MaxLength = lengths.Max(),
                ClippedRatio = rollout.Truncated.Count(t => t) / (float)n,
                GradNorm = gradNorm,
                LearningRate = learningRate,
                Loss = lossSum / iterationsRun,
                StepTime = seconds,
                TokensPerSecond = lengths.Sum() / Math.Max(seconds, 1e-9),
                Skipped = skipped,
                UpdatesApplied = updates,
                GenerationBatches = o.DynamicSampling is null ? null : batches,
                DroppedGroups = o.DynamicSampling is null ? null : dropped,
                Phases = phases.Read(),
                WorldSize = _communicator.Size,
                CommunicationTime = CommunicationSeconds - communicationBefore,
            };
            LastStepCompletions = stepCompletions;
            StepCompleted?.Invoke(this, new GrpoStepEventArgs(metrics));
            ConsecutiveSkippedSteps = skipped ? ConsecutiveSkippedSteps + 1 : 0;
            if (ConsecutiveSkippedSteps >= o.MaxConsecutiveSkippedSteps)
                throw new InvalidOperationException(
                    $"{ConsecutiveSkippedSteps} steps in a row had a non-finite loss or gradient (last: loss {metrics.Loss}, grad norm {metrics.GradNorm}), " +
                    "so none of them updated the model. Check the reward scale, lower the learning rate, or resume from an earlier checkpoint.");
            return metrics;
        }
        finally
        {
            foreach (var mb in microBatches) mb.Dispose();
        }
    }

    /// <summary>
    /// TRL's <c>reward_std</c>: the mean of the standard deviations the advantages were divided by, i.e. the mean of the
    /// group stds for <c>group</c> and <c>none</c> (TRL computes them per group for both) and the batch's std for <c>batch</c>.
    /// </summary>
    private static float RewardStd(AdvantageStatistics stats, float[] groupStds, RewardScaling scaling) =>
        scaling == RewardScaling.Batch ? stats.BatchStd : groupStds.Average();

    /// <summary>
    /// TRL's <c>frac_reward_zero_std</c>: the fraction of completions whose std is <c>torch.isclose</c> to 0 (|std| ≤ 1e-8, its
    /// default atol), per group for <c>group</c> and <c>none</c> (groups are of equal size, so: the fraction of groups) and the
    /// batch's std for <c>batch</c> (all or none). The metric only: advantages keep their own rule (a group's rewards all equal).
    /// </summary>
    private static float FracRewardZeroStd(AdvantageStatistics stats, float[] groupStds, RewardScaling scaling) =>
        scaling == RewardScaling.Batch ? (Math.Abs(stats.BatchStd) <= 1e-8f ? 1f : 0f)
            : groupStds.Count(std => Math.Abs(std) <= 1e-8f) / (float)groupStds.Length;

    private List<MicroBatch> MicroBatches(Rollout rollout, GrpoTrainerOptions o)
    {
        int n = rollout.Completions.Length;
        var list = new List<MicroBatch>();
        try
        {
            for (int first = 0; first < n; first += o.MicroBatchSize)
            {
                int count = Math.Min(o.MicroBatchSize, n - first);
                var prompts = Enumerable.Range(first, count).Select(i => (IReadOnlyList<int>)rollout.Prompts[i / o.GroupSize]).ToArray();
                var completions = Enumerable.Range(first, count).Select(i => (IReadOnlyList<int>)rollout.Completions[i]).ToArray();
                var batch = CompletionBatch.Create(_policy.Device, prompts, completions, _policy.Config.VocabSize, _policy.Config.MaxPositions);
                list.Add(new MicroBatch(list.Count, first, batch));
                if (o.MaskTruncatedCompletions) batch.MaskOut(rollout.Truncated.AsSpan(first, count).ToArray());
            }
            return list;
        }
        catch
        {
            foreach (var mb in list) mb.Dispose();
            throw;
        }
    }

    private static (float Mean, float Std) NanMeanStd(float[] scores, int column, int f)
    {
        var values = new List<double>();
        for (int i = column; i < scores.Length; i += f)
            if (!float.IsNaN(scores[i])) values.Add(scores[i]);
        if (values.Count == 0) return (float.NaN, float.NaN);
        double mean = values.Average();
        double std = values.Count < 2 ? 0 : Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        return ((float)mean, (float)std);
    }

    private sealed class MicroBatch(int index, int first, CompletionBatch batch) : IDisposable
    {
        public int Index { get; } = index;
        public int First { get; } = first;
        public CompletionBatch Batch { get; } = batch;
        public Tensor<float>? OldLogprobs { get; set; }  // (n, T) μ > 1
        public Tensor<float>? RefLogprobs { get; set; }  // (n, T) β > 0

        public void Dispose()
        {
            Batch.Dispose();
            OldLogprobs?.Dispose();
            RefLogprobs?.Dispose();
        }
    }

    /// <summary>Frees the rollout buffers and the optimizer state (not the models).</summary>
    public void Dispose()
    {
        _rollouts.Dispose();
        Optimizer.Dispose();
        _stepScalars.Dispose();
        DisposeDataParallel();
    }
}

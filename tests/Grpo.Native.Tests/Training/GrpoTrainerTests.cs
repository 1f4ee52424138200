using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tasks;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

using static Grpo.Native.Tests.Training.TinyRuns;

namespace Grpo.Native.Tests.Training;

/// <summary>The GRPO trainer end to end on the built-in task: metrics, learning, resuming, micro-batching, faults.</summary>
public sealed class GrpoTrainerTests
{
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void EveryMetricIsPresentAndFinite(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        // μ = 2: the second update sees a policy that the first moved away from the reference, so KL > 0.
        // The ILGPU simulator runs every kernel thread as a real thread: there a narrower one-layer model and fewer prompts.
        bool simulator = kind == DeviceKind.IlgpuCpu;
        var options = Options() with { Beta = 0.05f, NumIterations = 2, PromptsPerStep = simulator ? 2 : 4, GroupSize = simulator ? 2 : 4 };
        var config = simulator ? Reverse.DefaultModel() with { HiddenSize = 16, NumLayers = 1, IntermediateSize = 32 } : Reverse.DefaultModel();
        using var policy = TransformerModel.CreateRandom(device, config, seed: 1);
        using var reference = TransformerModel.CreateRandom(device, config, seed: 1);
        // The task's reward is 0 for nearly every completion of an untrained policy; a second, varied reward gives advantages.
        var rewards = Reverse.Rewards().Append(RewardFunction.Create("length", input => input.CompletionTokens.Count % 3, weight: 0.1f)).ToArray();
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, rewards, options, reference);
        GrpoStepMetrics? raised = null;
        trainer.StepCompleted += (_, e) => raised = e.Metrics;
        var metrics = trainer.TrainStep(Prompts(options, 1));
        Assert.That(raised, Is.SameAs(metrics), "the event carries the step's metrics");
        var d = metrics.ToDictionary();
        TestContext.Out.WriteLine(string.Join(", ", d.Select(kv => $"{kv.Key}={kv.Value:G4}")));
        string[] trl =
        [
            "reward", "reward_std", "rewards/reverse/mean", "rewards/reverse/std", "frac_reward_zero_std", "kl", "entropy",
            "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "completions/mean_length", "completions/min_length",
            "completions/max_length", "completions/clipped_ratio", "grad_norm", "learning_rate", "loss", "step_time", "tokens/s",
        ];
        foreach (string name in trl)
        {
            Assert.That(d.ContainsKey(name), name);
            Assert.That(double.IsFinite(d[name]), $"{name} = {d[name]}");
        }
        Assert.That(metrics.Step, Is.EqualTo(1));
        Assert.That(metrics.Kl, Is.GreaterThan(0), "after an update with β > 0 the policy has moved away from the reference");
        Assert.That(metrics.GradNorm, Is.GreaterThan(0));
        Assert.That(metrics.Skipped, Is.False);
    }

    [Test]
    public void TheBuiltInTasksRewardRisesWithinAShortRun()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var options = Options(seed: 11) with { PromptsPerStep = 16, GroupSize = 8, MicroBatchSize = 128, TotalSteps = 300 };
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 11);
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, Reverse.Rewards(), options);
        var rewards = new List<float>();
        for (int step = 1; step <= options.TotalSteps; step++) rewards.Add(trainer.TrainStep(Prompts(options, step)).Reward);
        float first = rewards.Take(25).Average(), last = rewards.TakeLast(25).Average();
        TestContext.Out.WriteLine($"mean reward of the first 25 steps {first:F3}, of the last 25 {last:F3}");
        Assert.That(last, Is.GreaterThan(first + 0.15f), "GRPO should raise the reward from the reward alone");
    }

    [Test]
    public void ResumingFromACheckpointGivesExactlyTheUninterruptedRun()
    {
        var options = Options(seed: 5) with { TotalSteps = 6, NumIterations = 2, Beta = 0.02f };
        string folder = Path.Combine(Path.GetTempPath(), "grpo-resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var device = new CpuDevice();
            float[] Uninterrupted(out List<IReadOnlyDictionary<string, double>> metrics)
            {
                using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 2);
                using var reference = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 2);
                using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, Reverse.Rewards(), options, reference);
                metrics = [];
                for (int step = 1; step <= 4; step++)
                {
                    metrics.Add(trainer.TrainStep(Prompts(options, step)).ToDictionary());
                    if (step == 2) GrpoCheckpoint.Save(trainer, folder);
                }
                return policy.Parameters.Buffer.ToArray();
            }
            float[] expected = Uninterrupted(out var expectedMetrics);

            var state = GrpoCheckpoint.ReadState(folder);
            Assert.That(state.Step, Is.EqualTo(2));
            Assert.That(state.Options, Is.EqualTo(options).Using<GrpoTrainerOptions>((a, b) =>
                a.Seed == b.Seed && a.TotalSteps == b.TotalSteps && a.StopTokens.SequenceEqual(b.StopTokens) && a.Beta == b.Beta));
            using var resumedPolicy = GrpoCheckpoint.LoadPolicy(device, folder);
            using var resumedReference = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 2);
            using var resumed = new GrpoTrainer(resumedPolicy, Reverse.Tokenizer, Reverse.Rewards(), state.Options, resumedReference);
            GrpoCheckpoint.Restore(resumed, folder);
            Assert.That(resumed.Step, Is.EqualTo(2));
            var resumedMetrics = new List<IReadOnlyDictionary<string, double>>();
            for (int step = 3; step <= 4; step++) resumedMetrics.Add(resumed.TrainStep(Prompts(options, step)).ToDictionary());

            Assert.That(resumedPolicy.Parameters.Buffer.ToArray(), Is.EqualTo(expected), "weights after step 4, bit for bit");
            for (int i = 0; i < 2; i++)
                foreach (var (name, value) in expectedMetrics[i + 2])
                    if (name is not ("step_time" or "tokens/s"))
                        Assert.That(resumedMetrics[i][name], Is.EqualTo(value), $"step {i + 3} {name}");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// Checkpoints written before the q/k/v weights were made adjacent (parameter layout 1, no field in trainer_state.json)
    /// hold a Qwen2 model's moments with each bias after its weight. Restoring one puts every parameter's moments where
    /// the current layout keeps them: the moments equal those of the same checkpoint saved in the current layout, to the bit.
    /// </summary>
    [Test]
    public void ACheckpointOfTheFirstParameterLayoutRestoresItsMomentsInTheCurrentOrder()
    {
        var options = Options(seed: 6) with { TotalSteps = 4 };
        var config = Reverse.DefaultModel() with { ModelType = "qwen2", HiddenSize = 16, IntermediateSize = 24, TieWordEmbeddings = false };
        var current = TransformerLayout.For(config);
        var legacy = TransformerLayout.For(config, 1);
        string folder = Path.Combine(Path.GetTempPath(), "grpo-layout-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var device = new CpuDevice();
            float[] firstMoment, secondMoment;
            using (var policy = TransformerModel.CreateRandom(device, config, seed: 3))
            using (var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [Varied], options))
            {
                for (int step = 1; step <= 2; step++) trainer.TrainStep(Prompts(options, step));
                GrpoCheckpoint.Save(trainer, folder);
                firstMoment = trainer.Optimizer.FirstMoment.ToArray();
                secondMoment = trainer.Optimizer.SecondMoment.ToArray();
            }
            Assert.That(GrpoCheckpoint.ReadState(folder).ParameterLayout, Is.EqualTo(TransformerLayout.Version));

            // Rewrite the checkpoint as version 1 wrote it: moments in the old order, and no layout field.
            float[] ToLegacy(float[] moments)
            {
                var offsets = current.ToDictionary(p => p.Name, p => p.Offset);
                var flat = new float[moments.Length];
                foreach (var p in legacy) Array.Copy(moments, offsets[p.Name], flat, p.Offset, p.Length);
                return flat;
            }
            float[] legacyFirst = ToLegacy(firstMoment), legacySecond = ToLegacy(secondMoment);
            Assert.That(legacyFirst, Is.Not.EqualTo(firstMoment), "the two layouts order a Qwen2 model differently");
            Grpo.Native.Checkpoints.SafetensorsWriter.Write(Path.Combine(folder, GrpoCheckpoint.OptimizerFileName),
            [
                new Grpo.Native.Checkpoints.SafetensorsTensorSource("exp_avg", [legacyFirst.Length], (piece, start) => legacyFirst.AsSpan((int)start, piece.Length).CopyTo(piece)),
                new Grpo.Native.Checkpoints.SafetensorsTensorSource("exp_avg_sq", [legacySecond.Length], (piece, start) => legacySecond.AsSpan((int)start, piece.Length).CopyTo(piece)),
            ]);
            string stateFile = Path.Combine(folder, GrpoCheckpoint.StateFileName);
            var state = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(stateFile))!.AsObject();
            Assert.That(state.Remove(nameof(GrpoCheckpointState.ParameterLayout)), Is.True);
            File.WriteAllText(stateFile, state.ToJsonString());
            Assert.That(GrpoCheckpoint.ReadState(folder).ParameterLayout, Is.EqualTo(1));

            using var resumedPolicy = GrpoCheckpoint.LoadPolicy(device, folder);
            using var resumed = new GrpoTrainer(resumedPolicy, Reverse.Tokenizer, [Varied], options);
            GrpoCheckpoint.Restore(resumed, folder);
            Assert.That(resumed.Optimizer.FirstMoment.ToArray(), Is.EqualTo(firstMoment));
            Assert.That(resumed.Optimizer.SecondMoment.ToArray(), Is.EqualTo(secondMoment));

            // A layout this version does not know is refused by name.
            state[nameof(GrpoCheckpointState.ParameterLayout)] = TransformerLayout.Version + 1;
            File.WriteAllText(stateFile, state.ToJsonString());
            var error = Assert.Throws<Grpo.Native.Checkpoints.CheckpointFormatException>(() => GrpoCheckpoint.ReadState(folder))!;
            Assert.That(error.Message, Does.Contain("parameter layout"));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [TestCase(LossType.Dapo)]
    [TestCase(LossType.Grpo)]
    [TestCase(LossType.DrGrpo)]
    public void MicroBatchesGiveTheWholeBatchsUpdate(LossType lossType)
    {
        // Same rollout (same seed and weights), one micro-batch of 16 vs four of 4: the accumulated gradient,
        // hence the AdamW update, must match (up to fp32 summation order).
        float[] Run(int microBatch)
        {
            using var device = new CpuDevice();
            var options = Options(seed: 8) with { MicroBatchSize = microBatch, LossType = lossType, MaxGradNorm = null };
            using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 4);
            // A reward that always varies within a group, so every completion has an advantage.
            var reward = RewardFunction.Create("varied", input => input.CompletionTokens.Count + input.CompletionTokens.Sum() % 5);
            using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [reward], options);
            trainer.TrainStep(Prompts(options, 1));
            return policy.Gradients.Buffer.ToArray();
        }
        float[] whole = Run(16);
        // Not bitwise: attention and the gather block their sums by the batch's shape. Each side is within 5.5e-4
        // normwise of the exact gradient (TransformerModelTests derives it), so they differ by at most 1.1e-3 normwise.
        Compare.NormwiseRelativeError($"{lossType}: gradient of four micro-batches vs one batch", Array.ConvertAll(whole, v => (double)v), Run(4), 1.1e-3);
        Assert.That(whole.Any(v => v != 0), "the gradient is not zero");
    }

    [Test]
    public void RewardStdAndZeroStdFractionFollowScaleRewardsAsTrlLogsThem()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        GrpoStepMetrics Step(RewardScaling scaling, RewardFunction reward)
        {
            var options = Options(seed: 6) with { ScaleRewards = scaling };
            using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 2);
            using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [reward], options);
            return trainer.TrainStep(Prompts(options, 1));
        }
        // With one reward function of weight 1, rewards/NAME/std is the unbiased std over the whole batch: reward_std for batch.
        var batch = Step(RewardScaling.Batch, Varied);
        Compare.WorstRelativeError("reward_std (batch) vs the batch's std", batch.RewardsPerFunction["varied"].Std, batch.RewardStd, 1e-5);
        Assert.That(batch.FracRewardZeroStd, Is.EqualTo(0f), "the batch's rewards vary");
        var group = Step(RewardScaling.Group, Varied);
        Assert.That(group.RewardStd, Is.Not.EqualTo(batch.RewardStd).Within(1e-6), "group: the mean of the group stds");
        var constant = RewardFunction.Create("constant", _ => 0.5f);
        Assert.That(Step(RewardScaling.Batch, constant).FracRewardZeroStd, Is.EqualTo(1f));
        Assert.That(Step(RewardScaling.None, constant).FracRewardZeroStd, Is.EqualTo(1f));
    }

    [Test]
    public void FailingRewardFunctionsScoreAsMissingAndTrainingGoesOn()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var options = Options();
        int calls = 0;
        var rewards = new[]
        {
            RewardFunction.Create("flaky", input => Interlocked.Increment(ref calls) % 3 == 0 ? throw new InvalidOperationException("boom") : input.Completion.Length),
            RewardFunction.CreateAsync("slow", async (input, token) =>
            {
                if (input.PromptIndex == 0) await System.Threading.Tasks.Task.Delay(TimeSpan.FromSeconds(30), token);
                return 1f;
            }),
            RewardFunction.Create("infinite", _ => float.PositiveInfinity, weight: 0.5f),
        };
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, rewards, options) { RewardTimeout = TimeSpan.FromMilliseconds(200) };
        var metrics = trainer.TrainStep(Prompts(options, 1));
        TestContext.Out.WriteLine(string.Join(", ", metrics.RewardFailures.Select(kv => $"{kv.Key}: {kv.Value}")));
        Assert.That(metrics.RewardFailures["flaky"], Is.InRange(4, 6), "every third call threw");
        Assert.That(metrics.RewardFailures["slow"], Is.EqualTo(options.GroupSize), "prompt 0's completions timed out");
        Assert.That(metrics.RewardFailures["infinite"], Is.EqualTo(16), "an infinite score is a failure");
        Assert.That(double.IsFinite(metrics.Reward) && double.IsFinite(metrics.Loss), "training went on");
        Assert.That(trainer.Step, Is.EqualTo(1));
    }

    [Test]
    public void BadOptionsAndPromptsAreRefusedWithTheReason()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        var rewards = Reverse.Rewards();
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new GrpoTrainer(policy, Reverse.Tokenizer, rewards, Options() with { GroupSize = 1 }))!
            .Message, Does.Contain("GroupSize"));
        Assert.That(Assert.Throws<ArgumentException>(() => new GrpoTrainer(policy, Reverse.Tokenizer, rewards, Options() with { Beta = 0.1f }))!
            .Message, Does.Contain("reference"));
        Assert.That(Assert.Throws<ArgumentException>(() => new GrpoTrainer(policy, Reverse.Tokenizer, [], Options()))!.Message, Does.Contain("reward"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new GrpoTrainer(policy, Reverse.Tokenizer, rewards, Options() with { MaxCompletionLength = 100 }))!
            .Message, Does.Contain("context"));
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, rewards, Options());
        Assert.That(Assert.Throws<ArgumentException>(() => trainer.TrainStep(Prompts(Options(), 1).Take(3).ToArray()))!.Message, Does.Contain("PromptsPerStep"));
        var tooLong = Prompts(Options(), 1);
        tooLong[2] = new int[Reverse.MaxPromptLength + 1];
        Assert.That(Assert.Throws<ArgumentException>(() => trainer.TrainStep(tooLong))!.Message, Does.Contain("MaxPromptLength"));
    }
}

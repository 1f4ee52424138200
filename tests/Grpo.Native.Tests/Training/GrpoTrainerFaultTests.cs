using System.Diagnostics;
using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Tasks;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

using static Grpo.Native.Tests.Training.TinyRuns;

namespace Grpo.Native.Tests.Training;

/// <summary>Faults during training: non-finite steps are skipped and bounded, runs are deterministic, a killed save loses nothing.</summary>
public sealed class GrpoTrainerFaultTests
{
    [Test]
    public void NonFiniteStepsAreSkippedAndTooManyInARowStopTheRun()
    {
        using var device = new CpuDevice();
        var options = Options() with { Beta = 0.1f, MaxConsecutiveSkippedSteps = 3 };
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        using var reference = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [Varied], options, reference);
        trainer.TrainStep(Prompts(options, 1));

        // A corrupt reference model: its log-probs, hence the KL term and the loss, are NaN.
        reference.Parameters.Buffer.Fill(float.NaN);
        float[] weights = policy.Parameters.Buffer.ToArray(), moment = trainer.Optimizer.SecondMoment.ToArray();
        var skipped = trainer.TrainStep(Prompts(options, 2));
        Assert.That(skipped.Skipped, Is.True);
        Assert.That(policy.Parameters.Buffer.ToArray(), Is.EqualTo(weights), "a skipped step leaves the weights untouched");
        Assert.That(trainer.Optimizer.SecondMoment.ToArray(), Is.EqualTo(moment), "and the optimizer state");
        Assert.That(trainer.Optimizer.StepCount, Is.EqualTo(1));
        Assert.That(trainer.ConsecutiveSkippedSteps, Is.EqualTo(1));
        trainer.TrainStep(Prompts(options, 3));
        var error = Assert.Throws<InvalidOperationException>(() => trainer.TrainStep(Prompts(options, 4)));
        Assert.That(error!.Message, Does.Contain("3 steps in a row").And.Contain("non-finite"));
    }

    [Test]
    public void ANonFiniteLaterIterationDropsTheRestOfTheStepAndKeepsTheEarlierUpdates()
    {
        // μ = 2 and a learning rate so large that the first update throws the weights to ~1e38: the second
        // iteration's forward overflows, so its loss is not finite. The first update stays; the second is dropped.
        using var device = new CpuDevice();
        var options = Options() with { NumIterations = 2, LearningRate = 1e38f, MaxGradNorm = null };
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [Varied], options);
        float[] before = policy.Parameters.Buffer.ToArray();
        var metrics = trainer.TrainStep(Prompts(options, 1));
        TestContext.Out.WriteLine($"loss {metrics.Loss}, updates {metrics.UpdatesApplied}, grad norm {metrics.GradNorm}");
        Assert.That(metrics.UpdatesApplied, Is.EqualTo(1));
        Assert.That(metrics.Skipped, Is.False, "an update was applied");
        Assert.That(metrics.ToDictionary()["updates"], Is.EqualTo(1));
        Assert.That(trainer.Optimizer.StepCount, Is.EqualTo(1), "one AdamW step, not two");
        Assert.That(trainer.ConsecutiveSkippedSteps, Is.EqualTo(0));
        Assert.That(policy.Parameters.Buffer.ToArray(), Is.Not.EqualTo(before), "the first update is kept");
    }

    [Test]
    public void TheReferenceCannotBeThePolicyAndTrainingCannotBeGreedy()
    {
        using var device = new CpuDevice();
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        var same = Assert.Throws<ArgumentException>(() => new GrpoTrainer(policy, Reverse.Tokenizer, [Varied], Options() with { Beta = 0.1f }, policy))!;
        Assert.That(same.ParamName, Is.EqualTo("reference"));
        Assert.That(same.Message, Does.Contain("policy object itself").And.Contain("frozen copy"));

        var greedy = Options() with { Sampling = new Grpo.Native.Operations.SamplingOptions { Temperature = 0 } };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => greedy.Validate())!;
        Assert.That(error.Message, Does.Contain("Temperature").And.Contain("greedy"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GrpoTrainer(policy, Reverse.Tokenizer, [Varied], greedy));
    }

    [Test]
    public void ASynchronousRewardThatHangsIsAbandonedAtTheTimeout()
    {
        using var device = new CpuDevice();
        var options = Options();
        using var release = new ManualResetEventSlim(false);
        var hangs = RewardFunction.Create("hangs", input =>
        {
            if (input.PromptIndex == 0) release.Wait(); // ignores every token: only abandoning it ends the wait
            return 1f;
        });
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [hangs, Varied], options) { RewardTimeout = TimeSpan.FromMilliseconds(300) };
        try
        {
            // Without abandoning, the step would wait forever: give it a minute, then fail instead of hanging.
            var step = System.Threading.Tasks.Task.Run(() => trainer.TrainStep(Prompts(options, 1)));
            Assert.That(step.Wait(TimeSpan.FromSeconds(60)), Is.True, "the step waited for the hung calls");
            Assert.That(step.Result.RewardFailures["hangs"], Is.EqualTo(options.GroupSize), "prompt 0's calls were abandoned");
        }
        finally
        {
            release.Set(); // let the abandoned threads finish
        }
    }

    [Test]
    public void OutOfMemoryNamesTheSizesAndLeavesTheTrainerUsable()
    {
        var options = Options();
        long needed;
        using (var probe = new CpuDevice())
        {
            using var policy = TransformerModel.CreateRandom(probe, Reverse.DefaultModel(), seed: 1);
            using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [Varied], options);
            needed = probe.AllocatedBytes; // the model, its gradients are lazy, the optimizer and the rollout buffers
        }
        // Room for what exists before a step, not for the step's activations.
        using var device = new CpuDevice(memoryLimitBytes: needed + 200_000);
        using var model = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        using var grpo = new GrpoTrainer(model, Reverse.Tokenizer, [Varied], options);
        float[] weights = model.Parameters.Buffer.ToArray();
        long before = device.AllocatedBytes;
        var error = Assert.Throws<DeviceOutOfMemoryException>(() => grpo.TrainStep(Prompts(options, 1)));
        TestContext.Out.WriteLine(error!.Message);
        Assert.That(error.Message, Does.Contain("MiB").Or.Contain("bytes").And.Contain("free"));
        Assert.That(error.RequestedBytes, Is.GreaterThan(error.AvailableBytes ?? 0));
        Assert.That(device.AllocatedBytes, Is.EqualTo(before), "every temporary of the failed step was freed");
        Assert.That(model.Parameters.Buffer.ToArray(), Is.EqualTo(weights));
        Assert.That(grpo.Step, Is.EqualTo(0));

        // Still usable: a checkpoint of the untouched state saves and loads.
        string folder = Path.Combine(Path.GetTempPath(), "grpo-oom-" + Guid.NewGuid().ToString("N"));
        try
        {
            GrpoCheckpoint.Save(grpo, folder);
            Assert.That(GrpoCheckpoint.ReadState(folder).Step, Is.EqualTo(0));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void AnOutOfMemoryAnywhereInAStepLeaksNothing()
    {
        // Limits that fail at different allocations of the step (rollout, batches, activations, loss scratch).
        var options = Options();
        long needed;
        using (var probe = new CpuDevice())
        {
            using var policy = TransformerModel.CreateRandom(probe, Reverse.DefaultModel(), seed: 1);
            using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [Varied], options);
            needed = probe.AllocatedBytes;
        }
        int failures = 0;
        foreach (long extra in new long[] { 1_000, 50_000, 300_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000, 64_000_000 })
        {
            using var device = new CpuDevice(memoryLimitBytes: needed + 400_000 + extra); // + the lazily allocated gradients
            using var model = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
            using var grpo = new GrpoTrainer(model, Reverse.Tokenizer, [Varied], options);
            // The gradients are allocated on first use and kept: allocate them first, so that whatever the step leaves
            // allocated after an out-of-memory error is a leak (an OOM after their lazy allocation read as one).
            _ = model.Gradients;
            long before = device.AllocatedBytes;
            try
            {
                grpo.TrainStep(Prompts(options, 1));
            }
            catch (DeviceOutOfMemoryException)
            {
                failures++;
            }
            Assert.That(device.AllocatedBytes, Is.EqualTo(before), $"limit + {extra}: nothing of the step is left allocated");
        }
        TestContext.Out.WriteLine($"{failures} of 8 limits ran out of memory");
        Assert.That(failures, Is.InRange(1, 7), "some limits should fail and some succeed");
    }

    [Test]
    public void SameSeedGivesIdenticalMetricsAndWeightsWhateverTheThreadCount()
    {
        (float[] Weights, List<string> Metrics) Run(int threads)
        {
            using var device = new CpuDevice(threads);
            var options = Options(seed: 9) with { MicroBatchSize = 8, NumIterations = 2 };
            using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 6);
            using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [Varied, .. Reverse.Rewards()], options);
            var metrics = new List<string>();
            for (int step = 1; step <= 3; step++)
            {
                var d = trainer.TrainStep(Prompts(options, step)).ToDictionary();
                metrics.Add(string.Join(",", d.Where(kv => kv.Key is not ("step_time" or "tokens/s")).Select(kv => $"{kv.Key}={kv.Value:R}")));
            }
            return (policy.Parameters.Buffer.ToArray(), metrics);
        }
        var one = Run(1);
        var four = Run(4);
        Assert.That(four.Metrics, Is.EqualTo(one.Metrics));
        Assert.That(four.Weights, Is.EqualTo(one.Weights));
    }

    [Test]
    public void TrainingWordsDependOnlyOnSeedAndStep()
    {
        // Pinned values: the words of a step must be the same in every process (a resumed run draws them again).
        Assert.That(Reverse.TrainingWords(seed: 1, step: 1, count: 3), Is.EqualTo(PinnedWords));
        Assert.That(Reverse.TrainingWords(seed: 1, step: 2, count: 3), Is.Not.EqualTo(PinnedWords));
    }

    private static readonly string[] PinnedWords = ["ecb", "acd", "abdcb"]; // printed once; a per-process hash would change them every run

    /// <summary>
    /// Runs `grpo train` in a child process that saves a checkpoint after every step, kills it (SIGKILL)
    /// at a random moment, most likely mid-save, and checks that the newest complete checkpoint loads and
    /// resumes. Three kills at different times.
    /// </summary>
    [Test]
    public void KillingTheProcessDuringACheckpointLeavesTheLastOneLoadable()
    {
        string grpo = typeof(Grpo.Cli.GrpoCommand).Assembly.Location;
        var random = TestRandom.Create();
        for (int attempt = 0; attempt < 3; attempt++)
        {
            string folder = Path.Combine(Path.GetTempPath(), "grpo-kill-" + Guid.NewGuid().ToString("N"));
            try
            {
                var start = new ProcessStartInfo("dotnet")
                {
                    ArgumentList = { grpo, "train", "--output", folder, "--steps", "100000", "--checkpoint-every", "1",
                        "--prompts", "2", "--group-size", "2", "--device", "cpu" },
                    RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
                };
                using var child = Process.Start(start)!;
                child.OutputDataReceived += (_, _) => { };
                child.ErrorDataReceived += (_, _) => { };
                child.BeginOutputReadLine();
                child.BeginErrorReadLine();
                // Wait for the first complete checkpoint, then a random extra moment, then kill.
                var clock = Stopwatch.StartNew();
                while (GrpoCheckpoint.FindLatest(folder) is null && clock.Elapsed < TimeSpan.FromSeconds(60) && !child.HasExited)
                    Thread.Sleep(20);
                Assert.That(child.HasExited, Is.False, "the child should still be training");
                Thread.Sleep(random.Next(0, 400));
                child.Kill(); // SIGKILL on Unix: no cleanup code runs
                child.WaitForExit();

                string latest = GrpoCheckpoint.FindLatest(folder)!;
                var state = GrpoCheckpoint.ReadState(latest);
                TestContext.Out.WriteLine($"killed; newest complete checkpoint {Path.GetFileName(latest)} (step {state.Step}); " +
                                          $"folders left: {string.Join(", ", Directory.GetDirectories(folder).Select(Path.GetFileName))}");
                using var device = new CpuDevice();
                using var policy = GrpoCheckpoint.LoadPolicy(device, latest);
                using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, Reverse.Rewards(), state.Options);
                GrpoCheckpoint.Restore(trainer, latest);
                Assert.That(trainer.Step, Is.EqualTo(state.Step));
                var next = trainer.TrainStep(Reverse.TrainingWords(state.Options.Seed, state.Step + 1, state.Options.PromptsPerStep)
                    .Select(Reverse.PromptTokens).ToArray());
                Assert.That(double.IsFinite(next.Loss), "the resumed run trains");
            }
            finally
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            }
        }
    }
}

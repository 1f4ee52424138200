using System.Diagnostics;
using Grpo.Native.Cpu;
using Grpo.Native.Models;
using Grpo.Native.Tasks;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Training;

/// <summary>Faults during training: non-finite steps are skipped and bounded, runs are deterministic, a killed save loses nothing.</summary>
public sealed class GrpoTrainerFaultTests
{
    private static readonly StringTransformTask Task = StringTransformTask.Get("reverse");

    private static GrpoTrainerOptions Options(int seed = 3) => new()
    {
        GroupSize = 4, PromptsPerStep = 4, MaxPromptLength = Task.MaxPromptLength, MaxCompletionLength = Task.MaxCompletionLength,
        StopTokens = [Task.Tokenizer.Eos], LearningRate = 1e-3f, TotalSteps = 50, MicroBatchSize = 16, Seed = seed,
    };

    private static int[][] Prompts(GrpoTrainerOptions o, int step) =>
        Task.TrainingWords(o.Seed, step, o.PromptsPerStep).Select(Task.PromptTokens).ToArray();

    // The task's reward is nearly always 0 for an untrained policy; this one varies, so every step has a gradient.
    private static readonly RewardFunction Varied = RewardFunction.Create("varied", input => input.CompletionTokens.Count % 3);

    [Test]
    public void NonFiniteStepsAreSkippedAndTooManyInARowStopTheRun()
    {
        using var device = new CpuDevice();
        var options = Options() with { Beta = 0.1f, MaxConsecutiveSkippedSteps = 3 };
        using var policy = TransformerModel.CreateRandom(device, Task.DefaultModel(), seed: 1);
        using var reference = TransformerModel.CreateRandom(device, Task.DefaultModel(), seed: 1);
        using var trainer = new GrpoTrainer(policy, Task.Tokenizer, [Varied], options, reference);
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
    public void SameSeedGivesIdenticalMetricsAndWeightsWhateverTheThreadCount()
    {
        (float[] Weights, List<string> Metrics) Run(int threads)
        {
            using var device = new CpuDevice(threads);
            var options = Options(seed: 9) with { MicroBatchSize = 8, NumIterations = 2 };
            using var policy = TransformerModel.CreateRandom(device, Task.DefaultModel(), seed: 6);
            using var trainer = new GrpoTrainer(policy, Task.Tokenizer, [Varied, .. Task.Rewards()], options);
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
        Assert.That(Task.TrainingWords(seed: 1, step: 1, count: 3), Is.EqualTo(PinnedWords));
        Assert.That(Task.TrainingWords(seed: 1, step: 2, count: 3), Is.Not.EqualTo(PinnedWords));
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
                using var trainer = new GrpoTrainer(policy, Task.Tokenizer, Task.Rewards(), state.Options);
                GrpoCheckpoint.Restore(trainer, latest);
                Assert.That(trainer.Step, Is.EqualTo(state.Step));
                var next = trainer.TrainStep(Task.TrainingWords(state.Options.Seed, state.Step + 1, state.Options.PromptsPerStep)
                    .Select(Task.PromptTokens).ToArray());
                Assert.That(double.IsFinite(next.Loss), "the resumed run trains");
            }
            finally
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            }
        }
    }
}

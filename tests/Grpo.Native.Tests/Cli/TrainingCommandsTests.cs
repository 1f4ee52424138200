using Grpo.Cli;
using Grpo.Native.Checkpoints;
using Grpo.Native.References;
using Grpo.Native.Tests.Models;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary>train, sample, grad and bench as a user runs them: help, a short real run, and bad arguments.</summary>
public sealed class TrainingCommandsTests
{
    private static (int Exit, string Output, string Error) Run(params string[] args) => CliRun.Grpo(args);

    private static string TempFolder() => Path.Combine(Path.GetTempPath(), "grpo-cli-" + Guid.NewGuid().ToString("N"));

    [TestCase("train", "--steps")]
    [TestCase("sample", "--prompt-ids")]
    [TestCase("grad", "--batch")]
    [TestCase("bench", "--completion-len")]
    [TestCase("bench", "--model")]
    [TestCase("init-model", "--config")]
    [TestCase("train", "--num-generations")]
    [TestCase("selfcheck", "--device")]
    public void EveryCommandHasHelp(string command, string option)
    {
        var (exit, output, _) = Run(command, "--help");
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success));
        Assert.That(output, Does.Contain(option));
    }

    [TestCase("train", "--steps", "0")]
    [TestCase("train", "--task", "sorting")]
    [TestCase("train", "--device", "tpu")]
    [TestCase("train", "--resume", "--output", "/nonexistent/grpo-run")]
    [TestCase("sample", "--model", "/nonexistent", "--prompt-ids", "1")]
    [TestCase("sample", "--prompt-ids", "1")]
    [TestCase("grad", "--model", "/nonexistent", "--batch", "/nonexistent.json", "--out", "x.safetensors")]
    [TestCase("bench", "--family", "rnn")]
    [TestCase("bench", "--group", "1")]
    [TestCase("bench", "--embd", "30", "--heads", "4")]
    [TestCase("bench", "--model", "/nonexistent")]
    [TestCase("init-model", "--config", "/nonexistent", "--output", "/nonexistent/model")]
    public void BadArgumentsExitWithTwoAndAMessage(params string[] args)
    {
        var (exit, _, error) = Run(args);
        Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
        Assert.That(error.Trim(), Is.Not.Empty);
        Assert.That(error, Does.Not.Contain("   at "), "no stack trace");
    }

    [Test]
    public void TrainWritesMetricsCurvesAndCheckpointsAndResumes()
    {
        string folder = TempFolder();
        try
        {
            string[] common = ["train", "--output", folder, "--prompts", "2", "--group-size", "4", "--checkpoint-every", "4", "--device", "cpu"];
            var (exit, output, error) = Run([.. common, "--steps", "6"]);
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            Assert.That(output, Does.Contain("held-out mean reward").And.Contain("untrained").And.Contain("of the gap closed"));
            foreach (string file in new[] { "metrics.jsonl", "reward.png", "kl.png", "completion_length.png", "run.json" })
                Assert.That(File.Exists(Path.Combine(folder, file)), file);
            var lines = File.ReadAllLines(Path.Combine(folder, "metrics.jsonl"));
            Assert.That(lines, Has.Length.EqualTo(6));
            Assert.That(lines[^1], Does.Contain("\"reward\"").And.Contain("\"completions/mean_length\"").And.Contain("\"tokens/s\""));
            Assert.That(GrpoCheckpoint.FindLatest(folder), Does.EndWith("checkpoint-6"));
            Assert.That(File.Exists(Path.Combine(folder, "checkpoint-6", "model", "grpo_tokenizer.json")));

            // A sample from the trained checkpoint, by text through its saved tokenizer.
            var (sampleExit, sampleOutput, sampleError) = Run("sample", "--model", Path.Combine(folder, "checkpoint-6", "model"),
                "--prompt", "abc=", "--temperature", "0", "--count", "2", "--device", "cpu");
            Assert.That(sampleExit, Is.EqualTo(GrpoCommand.Success), sampleError);
            Assert.That(sampleOutput, Does.Contain("[1]"));

            // Resume from checkpoint-4 of a cut-short run equals the uninterrupted one.
            Directory.Delete(Path.Combine(folder, "checkpoint-6"), recursive: true);
            var (resumeExit, resumeOutput, resumeError) = Run([.. common, "--resume"]);
            Assert.That(resumeExit, Is.EqualTo(GrpoCommand.Success), resumeError);
            Assert.That(resumeOutput, Does.Contain("resuming from").And.Contain("at step 4").And.Contain("trained 2 steps"));
            var resumed = File.ReadAllLines(Path.Combine(folder, "metrics.jsonl"));
            Assert.That(resumed, Has.Length.EqualTo(6));
            string Stable(string line) => System.Text.RegularExpressions.Regex.Replace(line, "\"(step_time|tokens/s)\":[^,}]*", "");
            Assert.That(resumed.Select(Stable), Is.EqualTo(lines.Select(Stable)), "the resumed run logs the same metrics");

            var (otherTaskExit, _, otherTaskError) = Run([.. common, "--resume", "--task", "copy"]);
            Assert.That(otherTaskExit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(otherTaskError, Does.Contain("differs from the run's task 'reverse'"));

            // A resumed run keeps its stored options: flags equal to them are accepted (common's --prompts 2), others refused.
            var (changedExit, _, changedError) = Run([.. common, "--resume", "--beta", "0.1", "--temperature", "0.5"]);
            Assert.That(changedExit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(changedError, Does.Contain("--temperature, --beta would change them").And.Contain("trainer_state.json").And.Not.Contain("--prompts"));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void GradWritesLossAdvantagesLogprobsAndEveryGradient()
    {
        var config = TinyModels.Config("llama");
        var parameters = TinyModels.Parameters(config, TestRandom.Create());
        string model = TinyModels.WriteFolder(config, parameters);
        string work = TempFolder();
        Directory.CreateDirectory(work);
        try
        {
            string batch = Path.Combine(work, "batch.json"), output = Path.Combine(work, "grad.safetensors");
            File.WriteAllText(batch, """
                {"group_size": 2, "prompts": [[1, 2, 3]], "completions": [[4, 5], [6, 7, 8]], "rewards": [1.0, 0.0],
                 "loss_type": "grpo", "temperature": 0.7}
                """);
            var (exit, _, error) = Run("grad", "--model", model, "--batch", batch, "--out", output, "--device", "cpu");
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            using var file = SafetensorsFile.Open(output);
            Assert.That(file.Get("loss").Shape, Is.EqualTo(new[] { 1 }));
            Assert.That(file.ReadFloat32("advantages"), Is.EqualTo(new[] { 0.7070068f, -0.7070068f }).Within(1e-5f));
            Assert.That(file.Get("logprobs").Shape, Is.EqualTo(new[] { 2, 3 }));
            Assert.That(file.ReadFloat32("logprobs")[2], Is.EqualTo(0f), "zero-padded past the first completion");
            foreach (var (name, shape) in TransformerReference.Layout(config))
                Assert.That(file.Get("grad." + name).Shape, Is.EqualTo(shape), name);

            File.WriteAllText(batch, """{"group_size": 2, "prompts": [[1]], "completions": [[4], [6]], "rewards": [1, 0], "beta": 0.1}""");
            var (betaExit, _, betaError) = Run("grad", "--model", model, "--batch", batch, "--out", output);
            Assert.That(betaExit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(betaError, Does.Contain("--ref"));

            File.WriteAllText(batch, $$"""{"group_size": 2, "prompts": [[1]], "completions": [[4], [{{config.VocabSize}}]], "rewards": [1, 0]}""");
            var (idExit, _, idError) = Run("grad", "--model", model, "--batch", batch, "--out", output);
            Assert.That(idExit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(idError, Does.Contain("completions[1][0]").And.Contain("vocabulary"));
        }
        finally
        {
            Directory.Delete(model, recursive: true);
            Directory.Delete(work, recursive: true);
        }
    }

    [Test]
    public void BenchPrintsTheMediansOfEveryPhase()
    {
        var (exit, output, error) = Run("bench", "--family", "llama", "--vocab", "64", "--layers", "1", "--embd", "32", "--prompts", "2",
            "--group", "2", "--prompt-len", "4", "--completion-len", "4", "--steps", "2", "--beta", "0.1", "--json", "--device", "cpu");
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
        foreach (string key in new[] { "rollout_s", "rewards_s", "reference_logprobs_s", "policy_forward_backward_s", "optimizer_s", "step_s", "completion_tokens_per_s" })
            Assert.That(output, Does.Contain($"\"{key}\""), key);
        Assert.That(System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("peak_working_set_bytes").GetInt64(), Is.GreaterThan(0));
    }

    /// <summary>
    /// On the ILGPU backend (the simulator runs CUDA's host code) bench reports the device traffic the issue asks for: no copy,
    /// sync or allocation in a decode step, no sync or allocation in a step after warm-up, the training step's 5 reads (TrainingStepDeviceTrafficTests
    /// derives them) among its copies both ways, and the launches; on the managed CPU backend those keys are null.
    /// </summary>
    [Test]
    public void BenchCountsTheDeviceTrafficOnTheIlgpuBackend()
    {
        string[] bench = ["bench", "--family", "qwen2", "--vocab", "64", "--layers", "2", "--embd", "32", "--prompts", "2", "--group", "2",
            "--prompt-len", "4", "--completion-len", "4", "--steps", "2", "--json"];
        var (exit, output, error) = Run([.. bench, "--device", "ilgpu-cpu"]);
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
        var result = System.Text.Json.JsonDocument.Parse(output).RootElement;
        double Value(string key) => result.GetProperty(key).GetDouble();
        Assert.That(Value("host_copies_per_decode_step"), Is.Zero);
        Assert.That(Value("syncs_per_decode_step"), Is.Zero);
        Assert.That(Value("syncs_per_training_step"), Is.Zero);
        Assert.That(Value("allocations_per_step_after_warmup"), Is.Zero);
        Assert.That(Value("device_reads_per_training_step"), Is.EqualTo(5));
        Assert.That(Value("host_copies_per_training_step"), Is.GreaterThanOrEqualTo(5), "reads and uploads");
        Assert.That(Value("launches_per_decode_step"), Is.GreaterThan(0));
        Assert.That(Value("launches_per_training_step"), Is.GreaterThan(Value("launches_per_decode_step")));
        Assert.That(result.GetProperty("gemms").GetString(), Is.EqualTo("the ILGPU kernel (fp32)"), "which code ran the GEMMs");

        var (cpuExit, cpuOutput, cpuError) = Run([.. bench, "--device", "cpu"]);
        Assert.That(cpuExit, Is.EqualTo(GrpoCommand.Success), cpuError);
        var cpu = System.Text.Json.JsonDocument.Parse(cpuOutput).RootElement;
        Assert.That(cpu.GetProperty("launches_per_training_step").ValueKind, Is.EqualTo(System.Text.Json.JsonValueKind.Null));
        Assert.That(cpu.GetProperty("gemms").GetString(), Does.Contain("managed CPU"));
    }

    [Test]
    public void BenchModelTakesTheArchitectureOfAConfigJsonAlone()
    {
        var config = TinyModels.Config("qwen2", vocab: 40);
        string folder = TempFolder();
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJson()); // no weights file
        try
        {
            string[] bench = ["bench", "--model", folder, "--prompts", "1", "--group", "2", "--prompt-len", "3", "--completion-len", "3", "--steps", "1", "--device", "cpu"];
            var (exit, output, error) = Run([.. bench, "--json"]);
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            var result = System.Text.Json.JsonDocument.Parse(output).RootElement;
            Assert.That(result.GetProperty("family").GetString(), Is.EqualTo("qwen2"));
            long parameters = TransformerReference.Layout(config).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
            Assert.That(result.GetProperty("parameters").GetInt64(), Is.EqualTo(parameters), "the config's shape, every tensor");

            var (familyExit, _, familyError) = Run([.. bench, "--family", "llama"]);
            Assert.That(familyExit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(familyError, Does.Contain("leave out --family"));
            var (longExit, _, longError) = Run("bench", "--model", folder, "--prompt-len", "30", "--completion-len", "3", "--device", "cpu");
            Assert.That(longExit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(longError, Does.Contain("32 positions"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void InitModelWritesARandomModelOfAConfigsShapeThatTrainLoads()
    {
        // The built-in task's vocabulary: its character tokenizer cannot decode ids beyond it.
        var config = TinyModels.Config("qwen2", vocab: Grpo.Native.Tasks.StringTransformTask.Get("reverse").Tokenizer.VocabularySize) with { MaxPositions = 64 };
        string work = TempFolder(), model = Path.Combine(work, "model"), run = Path.Combine(work, "run");
        Directory.CreateDirectory(work);
        File.WriteAllText(Path.Combine(work, "config.json"), config.ToJson());
        try
        {
            var (exit, output, error) = Run("init-model", "--config", Path.Combine(work, "config.json"), "--output", model, "--seed", "3", "--device", "cpu");
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            Assert.That(output, Does.Contain("random parameters"));
            Assert.That(ModelConfig.Load(model), Is.EqualTo(config));
            Assert.That(Run("init-model", "--config", work, "--output", model).Exit, Is.EqualTo(GrpoCommand.BadArguments), "never overwrites a model");

            // What scripts/measure-qwen-0.5b.sh does at full size: train steps on it, with the phase times and peak memory printed.
            var train = Run("train", "--model", model, "--steps", "1", "--prompts", "1", "--group-size", "2", "--beta", "0.04", "--device", "cpu", "--output", run);
            Assert.That(train.Exit, Is.EqualTo(GrpoCommand.Success), train.Error);
            Assert.That(train.Output, Does.Match(@"time per step \(mean of 1\): rollout [0-9.]+ s, .*reference/old log-probs [0-9.]+ s, .*peak working set [0-9.]+ GiB"));

            // A larger vocabulary would sample ids the task's tokenizer cannot decode: refused before any step.
            string wide = Path.Combine(work, "wide");
            Directory.CreateDirectory(wide);
            File.WriteAllText(Path.Combine(wide, "config.json"), (config with { VocabSize = config.VocabSize + 7 }).ToJson());
            Assert.That(Run("init-model", "--config", Path.Combine(wide, "config.json"), "--output", Path.Combine(wide, "model"), "--device", "cpu").Exit,
                Is.EqualTo(GrpoCommand.Success));
            var wideTrain = Run("train", "--model", Path.Combine(wide, "model"), "--steps", "1", "--device", "cpu", "--output", Path.Combine(work, "wide-run"));
            Assert.That(wideTrain.Exit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(wideTrain.Error, Does.Contain("is not the task's character tokenizer").And.Contain("--dataset"));
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}

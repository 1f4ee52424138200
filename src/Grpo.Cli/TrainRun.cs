using System.Diagnostics;
using System.Text.Json;
using Grpo.Native.Checkpoints;
using Grpo.Native.Distributed;
using Grpo.Native.Models;
using Grpo.Native.Tasks;
using Grpo.Native.Training;
using Spectre.Console;

namespace Grpo.Cli;

/// <summary>
/// One <c>grpo train</c> run: build or resume the policy, measure the untrained held-out reward,
/// train with a live progress bar, log metrics.jsonl, checkpoint, draw the curves, and report the
/// held-out reward closed of the gap to the maximum.
/// </summary>
internal static class TrainRun
{
    /// <summary>The run folder's description of the run: task, seed, and the untrained policy's held-out reward.</summary>
    private sealed record RunInfo(string Task, int Seed, float UntrainedReward, string Model);

    private const string RunInfoFile = "run.json", ReferenceFolder = "reference", MetricsFile = "metrics.jsonl";

    /// <param name="ranks">The run's ranks (one process unless started by mpirun); only rank 0 writes to the run folder.</param>
    public static int Execute(TrainSettings s, TextWriter output, ICommunicator ranks)
    {
        bool writer = ranks.Rank == 0;
        var task = StringTransformTask.Get(s.Task ?? TrainCommand.DefaultTask); // checked before any work
        var console = CreateConsole(output);
        string runFolder = Path.GetFullPath(s.Output);
        Directory.CreateDirectory(runFolder);
        using var device = CliErrors.CreateDevice(s.Device);

        TransformerModel? policy = null, reference = null;
        try
        {
            GrpoTrainerOptions options;
            RunInfo info;
            string? resumeFrom = null;
            if (s.Resume)
            {
                resumeFrom = GrpoCheckpoint.FindLatest(runFolder) ?? throw new FileNotFoundException(
                    $"--resume: '{runFolder}' holds no complete checkpoint (checkpoint-STEP folder with {GrpoCheckpoint.StateFileName}); start a new run instead.");
                options = GrpoCheckpoint.ReadState(resumeFrom).Options;
                s.Flags.CheckResumed(options, resumeFrom);
                GrpoTrainer.CheckDataParallel(options, ranks); // before any work
                info = ReadRunInfo(runFolder);
                if (s.Task is not null && s.Task != info.Task)
                    throw new ArgumentException($"--task {s.Task} differs from the run's task '{info.Task}'; leave --task out to resume it.");
                task = StringTransformTask.Get(info.Task);
                policy = GrpoCheckpoint.LoadPolicy(device, resumeFrom);
                if (options.Beta > 0) reference = TransformerModel.Load(device, Path.Combine(runFolder, ReferenceFolder));
            }
            else
            {
                options = s.Flags.Build(given => Defaults(given, task, pretrained: s.Model is not null)); // before any work
                if (options.DynamicSampling is not null)
                    throw new ArgumentException("--dynamic-sampling draws more prompts from a --dataset; built-in tasks do not use it.");
                policy = s.Model is null
                    ? TransformerModel.CreateRandom(device, RandomModel(task, options), options.Seed)
                    : TransformerModel.Load(device, s.Model);
                // Built-in tasks speak their character tokenizer: a larger vocabulary would sample ids it cannot decode,
                // a smaller one could not write every character.
                if (policy.Config.VocabSize != task.Tokenizer.VocabularySize)
                    throw new ArgumentException(
                        $"--model: the model's vocabulary ({policy.Config.VocabSize}) is not the task's character tokenizer ({task.Tokenizer.VocabularySize} ids); " +
                        "built-in tasks train models of their own tokenizer (a run's checkpoint); train a Hugging Face model with --dataset and --reward instead.");
                GrpoTrainer.CheckDataParallel(options, ranks); // before any work
                if (options.Beta > 0)
                {
                    // The reference is the initial policy, frozen; saved (by rank 0) so a resumed run has it too.
                    if (writer) policy.Save(Path.Combine(runFolder, ReferenceFolder));
                    ranks.Barrier();
                    reference = TransformerModel.Load(device, Path.Combine(runFolder, ReferenceFolder));
                }
                string modelName = s.Model ?? "random " + policy.Config.ModelType;
                if (writer)
                {
                    output.WriteLine($"measuring the untrained policy on {task.HeldOutWords.Count} held-out words...");
                    info = new RunInfo(task.Name, options.Seed, task.Evaluate(policy, task.HeldOutWords), modelName);
                    AtomicFile.WriteAllText(Path.Combine(runFolder, RunInfoFile), JsonSerializer.Serialize(info));
                }
                else info = new RunInfo(task.Name, options.Seed, float.NaN, modelName); // only rank 0 reports the held-out reward
            }

            using var trainer = new GrpoTrainer(policy, task.Tokenizer, task.Rewards(), options, reference, ranks);
            if (resumeFrom is not null) GrpoCheckpoint.Restore(trainer, resumeFrom);
            var log = writer ? new MetricsLog(Path.Combine(runFolder, MetricsFile), keepThroughStep: trainer.Step) : null;
            output.WriteLine($"task {task.Name} ({task.Description}) on {device}{(ranks.Size > 1 ? $", {ranks.Size} ranks" : "")}");
            output.WriteLine($"policy {info.Model}: {policy.Parameters.Count:N0} parameters; {options.PromptsPerStep} prompts x {options.GroupSize} completions per step, " +
                             $"lr {options.LearningRate:G3}, beta {options.Beta}, loss {options.LossType}");
            if (resumeFrom is not null) output.WriteLine($"resuming from {resumeFrom} at step {trainer.Step} of {options.TotalSteps}");

            int startStep = trainer.Step; // the resumed checkpoint may be pruned by the time the run ends
            var clock = Stopwatch.StartNew();
            TrainLoop.Run(console, trainer, log, output, s.CheckpointEvery,
                trainOneStep: () => trainer.TrainStep(task.TrainingWords(options.Seed, trainer.Step + 1, options.PromptsPerStep).Select(task.PromptTokens).ToArray()),
                checkpoint: () => Checkpoint(trainer, task, runFolder));
            if (!writer) return GrpoCommand.Success;
            float trained = task.Evaluate(policy, task.HeldOutWords);
            Curves.Write(runFolder, MetricsLog.Read(Path.Combine(runFolder, MetricsFile)));

            float gap = task.MaxReward - info.UntrainedReward;
            double closed = gap <= 0 ? 1 : (trained - info.UntrainedReward) / gap;
            output.WriteLine($"trained {options.TotalSteps - startStep} steps in {clock.Elapsed.TotalSeconds:F0} s");
            output.WriteLine($"held-out mean reward (greedy, {task.HeldOutWords.Count} words): untrained {info.UntrainedReward:F3} -> trained {trained:F3} " +
                             $"(max {task.MaxReward:F1}; {closed:P0} of the gap closed)");
            output.WriteLine($"metrics: {Path.Combine(runFolder, MetricsFile)}; curves: {Path.Combine(runFolder, Curves.RewardFile)}, {Curves.KlFile}, {Curves.LengthFile}");
            output.WriteLine($"final checkpoint: {GrpoCheckpoint.FolderFor(runFolder, options.TotalSteps)} (its model/ folder loads in Hugging Face transformers)");
            return GrpoCommand.Success;
        }
        finally
        {
            policy?.Dispose();
            reference?.Dispose();
        }
    }

    /// <summary>The live bar only on a real terminal; redirected output (CI, a log, the tests) gets plain lines.</summary>
    public static IAnsiConsole CreateConsole(TextWriter output)
    {
        bool terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        return AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Interactive = terminal ? InteractionSupport.Yes : InteractionSupport.No,
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
        });
    }

    /// <summary>True when <paramref name="runFolder"/> holds a run trained on a dataset (its run.json names one).</summary>
    public static bool IsDatasetRun(string runFolder)
    {
        string file = Path.Combine(runFolder, RunInfoFile);
        return File.Exists(file) && File.ReadAllText(file).Contains("\"Dataset\":", StringComparison.Ordinal);
    }

    /// <summary>
    /// A built-in task's defaults where they are not TRL's: its own prompt and completion lengths and EOS, a large learning
    /// rate for a model trained from scratch, a cosine schedule whose warmup is a tenth of the run (at most 10 steps).
    /// </summary>
    /// <param name="given">The options as the flags make them, so that the warmup follows --steps.</param>
    private static GrpoTrainerOptions Defaults(GrpoTrainerOptions given, StringTransformTask task, bool pretrained) => new()
    {
        GroupSize = TrainCommand.DefaultGroupSize,
        PromptsPerStep = TrainCommand.DefaultPromptsPerStep,
        MaxPromptLength = task.MaxPromptLength,
        MaxCompletionLength = task.MaxCompletionLength,
        StopTokens = [task.Tokenizer.Eos],
        LearningRate = pretrained ? TrainCommand.PretrainedLearningRate : TrainCommand.ScratchLearningRate,
        Schedule = LearningRateScheduleKind.Cosine,
        WarmupSteps = Math.Min(10, given.TotalSteps / 10),
        TotalSteps = TrainCommand.DefaultSteps,
        MicroBatchSize = 64,
        Seed = TrainCommand.DefaultSeed,
    };

    /// <summary>The task's default model, with room for --max-prompt-length + --max-completion-length when they exceed the task's own.</summary>
    private static ModelConfig RandomModel(StringTransformTask task, GrpoTrainerOptions options)
    {
        var config = task.DefaultModel();
        return config with { MaxPositions = Math.Max(config.MaxPositions, options.MaxPromptLength + options.MaxCompletionLength) };
    }

    private static void Checkpoint(GrpoTrainer trainer, StringTransformTask task, string runFolder) =>
        TrainLoop.Checkpoint(trainer, runFolder, modelFolder => task.Tokenizer.Save(modelFolder)); // so `grpo sample --prompt` can encode text

    private static RunInfo ReadRunInfo(string runFolder)
    {
        string file = Path.Combine(runFolder, RunInfoFile);
        if (!File.Exists(file)) throw new FileNotFoundException($"--resume: '{file}' is missing; the run folder is incomplete.", file);
        try
        {
            return JsonSerializer.Deserialize<RunInfo>(File.ReadAllText(file)) ?? throw new InvalidDataException($"'{file}' is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{file}' is corrupt: {e.Message}", e);
        }
    }
}

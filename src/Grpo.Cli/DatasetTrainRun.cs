using System.Text.Json;
using Grpo.Native.Checkpoints;
using Grpo.Native.Datasets;
using Grpo.Native.Distributed;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Rewards;
using Grpo.Native.Tokenization;
using Grpo.Native.Training;
using Spectre.Console;

namespace Grpo.Cli;

/// <summary>
/// What <c>grpo train --dataset</c> adds to the settings of a run (stored in run.json). The trainer options (lengths,
/// temperature, dynamic sampling) are the checkpoint's; run.json files that also hold some of them still read.
/// </summary>
/// <param name="LogCompletionsSteps">Steps between completions.jsonl entries; 0 for none. Its default also fills in run.json files written before it existed.</param>
internal sealed record DatasetSettings(
    string Dataset, string Rewards, string? RewardWeights, string PromptColumn, string? SystemPrompt, bool UseChatTemplate, int? OverlongBuffer,
    int LogCompletionsSteps = DatasetSettings.DefaultLogCompletionsSteps)
{
    /// <summary>Completions are logged every 10 steps unless --log-completions-steps says otherwise.</summary>
    public const int DefaultLogCompletionsSteps = 10;
}

/// <summary>
/// <c>grpo train --model DIR --dataset FILE --reward NAME[,NAME...]</c>: GRPO on a Hugging Face model folder with its own
/// tokenizer and chat template, prompts from a JSONL/Parquet dataset (each row's other columns reach the rewards), and
/// built-in rewards. Checkpoints are Hugging Face folders with the tokenizer files, plus the prompt order's position so
/// that <c>--resume</c> continues at the same row. Completions end at the model's generation_config.json eos_token_id
/// and at the tokenizer's EOS; every so many steps they are logged to completions.jsonl with their rewards.
/// </summary>
internal static class DatasetTrainRun
{
    private const string RunInfoFile = "run.json", ReferenceFolder = "reference", MetricsFile = "metrics.jsonl", SamplerFile = "prompt_sampler.json",
        CompletionsFile = "completions.jsonl";

    /// <summary>The run folder's record of what was trained on (a resumed run reads it back).</summary>
    private sealed record DatasetRunInfo(string Model, int Seed, DatasetSettings Dataset);

    /// <summary>The prompt order's position after a checkpoint's step.</summary>
    /// <param name="Skipped">prompts/skipped so far, so that a resumed run logs the count the uninterrupted one would.</param>
    private sealed record SamplerPosition(int Rows, int Seed, int Epoch, int Offset, long Skipped);

    /// <summary>The files of a model folder that make up its tokenizer, copied into every checkpoint.</summary>
    private static readonly string[] TokenizerFiles =
        ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt", "special_tokens_map.json", "generation_config.json"];

    /// <param name="s">The run's settings.</param>
    /// <param name="requested">A new run's dataset settings; null when resuming (the run's own are read back).</param>
    /// <param name="logCompletionsSteps">--log-completions-steps when given: overrides the run's setting, also on --resume.</param>
    /// <param name="output">Where progress and results are printed.</param>
    /// <param name="console">The progress bar's console.</param>
    /// <param name="ranks">The run's ranks (one process unless started by mpirun); only rank 0 writes to the run folder.</param>
    public static int Execute(TrainSettings s, DatasetSettings? requested, int? logCompletionsSteps, TextWriter output, IAnsiConsole console,
        ICommunicator ranks)
    {
        bool writer = ranks.Rank == 0;
        if (logCompletionsSteps is < 0)
            throw new ArgumentException($"--log-completions-steps is {logCompletionsSteps}; pass N >= 1 to log completions every N steps, or 0 for never.");
        string runFolder = Path.GetFullPath(s.Output);
        Directory.CreateDirectory(runFolder);
        DatasetRunInfo info;
        string? resumeFrom = null;
        string model;
        if (s.Resume)
        {
            resumeFrom = GrpoCheckpoint.FindLatest(runFolder) ?? throw new FileNotFoundException(
                $"--resume: '{runFolder}' holds no complete checkpoint (checkpoint-STEP folder with {GrpoCheckpoint.StateFileName}); start a new run instead.");
            info = ReadJson<DatasetRunInfo>(Path.Combine(runFolder, RunInfoFile));
            model = info.Model;
        }
        else
        {
            model = Path.GetFullPath(s.Model ?? throw new ArgumentException("--dataset trains a Hugging Face model: pass --model DIR (a folder with config.json, weights and tokenizer.json)."));
            info = null!; // written below, once the options (and so the seed) are known
        }
        string modelFolder = resumeFrom is null ? model : Path.Combine(resumeFrom, GrpoCheckpoint.ModelFolderName);
        if (!HuggingFaceTokenizer.IsPresent(modelFolder))
            throw new ArgumentException($"--model: '{modelFolder}' has no Hugging Face tokenizer (tokenizer.json, or vocab.json and merges.txt).");
        using var tokenizer = HuggingFaceTokenizer.Load(modelFolder);
        GrpoTrainerOptions options;
        if (resumeFrom is not null)
        {
            options = GrpoCheckpoint.ReadState(resumeFrom).Options;
            s.Flags.CheckResumed(options, resumeFrom);
        }
        else
        {
            // generation_config.json's eos_token_id first: chat models list their end-of-turn token there.
            var stopTokens = (GenerationConfig.Load(model) ?? new GenerationConfig()).StopTokens(tokenizer.SpecialTokens.Eos);
            options = s.Flags.Build(given => Defaults(given, stopTokens));
            info = new DatasetRunInfo(model, options.Seed, requested!);
        }
        var d = logCompletionsSteps is { } every ? info.Dataset with { LogCompletionsSteps = every } : info.Dataset;
        var dataset = PromptDataset.Load(d.Dataset, d.PromptColumn);
        var builder = new PromptBuilder(tokenizer, new PromptFormatOptions
        {
            UseChatTemplate = d.UseChatTemplate, SystemPrompt = d.SystemPrompt, MaxPromptLength = options.MaxPromptLength,
        });
        var rewards = BuiltInRewards.Parse(d.Rewards, d.RewardWeights,
            new BuiltInRewardOptions { MaxCompletionLength = options.MaxCompletionLength, OverlongBuffer = d.OverlongBuffer });
        var (sampler, skippedBefore) = resumeFrom is null ? (new PromptSampler(dataset.Count, info.Seed), 0L) : RestoreSampler(resumeFrom, dataset.Count);
        var source = new PromptSource(dataset, builder, sampler);

        using var device = CliErrors.CreateDevice(s.Device);
        TransformerModel? policy = null, reference = null;
        try
        {
            if (resumeFrom is not null)
            {
                GrpoTrainer.CheckDataParallel(options, ranks); // before any work
                policy = GrpoCheckpoint.LoadPolicy(device, resumeFrom);
                if (options.Beta > 0) reference = TransformerModel.Load(device, Path.Combine(runFolder, ReferenceFolder));
            }
            else
            {
                policy = TransformerModel.Load(device, info.Model);
                GrpoTrainer.CheckDataParallel(options, ranks); // before any work
                if (options.Beta > 0)
                {
                    if (writer) policy.Save(Path.Combine(runFolder, ReferenceFolder)); // the frozen initial policy, kept for --resume
                    ranks.Barrier();
                    reference = TransformerModel.Load(device, Path.Combine(runFolder, ReferenceFolder));
                }
                if (writer) AtomicFile.WriteAllText(Path.Combine(runFolder, RunInfoFile), JsonSerializer.Serialize(info));
            }

            using var trainer = new GrpoTrainer(policy, tokenizer, rewards, options, reference, ranks);
            if (resumeFrom is not null) GrpoCheckpoint.Restore(trainer, resumeFrom);
            var log = writer ? new MetricsLog(Path.Combine(runFolder, MetricsFile), keepThroughStep: trainer.Step) : null;
            var completionsLog = writer ? new CompletionsLog(Path.Combine(runFolder, CompletionsFile), keepThroughStep: trainer.Step) : null;
            output.WriteLine($"dataset {d.Dataset}: {dataset.Count} rows; rewards {string.Join(", ", rewards.Select(r => $"{r.Name} x{r.Weight:G3}"))}; on {device}");
            output.WriteLine($"policy {info.Model}: {policy.Parameters.Count:N0} parameters; {options.PromptsPerStep} prompts x {options.GroupSize} completions per step, " +
                             $"lr {options.LearningRate:G3}, beta {options.Beta}, loss {options.LossType}");
            if (resumeFrom is not null) output.WriteLine($"resuming from {resumeFrom} at step {trainer.Step} of {options.TotalSteps} (epoch {sampler.Epoch}, row {sampler.Offset})");

            TrainLoop.Run(console, trainer, log, output, s.CheckpointEvery,
                trainOneStep: () =>
                {
                    var metrics = trainer.TrainStep(() =>
                    {
                        var prompts = source.NextPrompts(options.PromptsPerStep); // more than once per step with dynamic sampling
                        return new PromptBatch(prompts.Select(p => p.Tokens.TokenIds.ToArray()).ToArray(), prompts.Select(p => p.Row.Columns).ToArray());
                    });
                    if (d.LogCompletionsSteps > 0 && metrics.Step % d.LogCompletionsSteps == 0) completionsLog?.Append(trainer.LastStepCompletions!);
                    return metrics with
                    {
                        Extra = new Dictionary<string, double> { ["prompts/skipped"] = skippedBefore + source.SkippedPrompts, ["epoch"] = sampler.Epoch },
                    };
                },
                checkpoint: () => TrainLoop.Checkpoint(trainer, runFolder, checkpointModel =>
                {
                    // A complete Hugging Face folder: the weights and config that Save wrote, and the tokenizer files.
                    foreach (string file in TokenizerFiles)
                        if (File.Exists(Path.Combine(modelFolder, file)))
                            AtomicFile.Write(Path.Combine(checkpointModel, file), stream => { using var from = File.OpenRead(Path.Combine(modelFolder, file)); from.CopyTo(stream); });
                    AtomicFile.WriteAllText(Path.Combine(Path.GetDirectoryName(checkpointModel)!, SamplerFile),
                        JsonSerializer.Serialize(new SamplerPosition(sampler.RowCount, sampler.Seed, sampler.Epoch, sampler.Offset, skippedBefore + source.SkippedPrompts)));
                }));
            if (!writer) return GrpoCommand.Success;
            Curves.Write(runFolder, MetricsLog.Read(Path.Combine(runFolder, MetricsFile)));
            output.WriteLine($"trained to step {options.TotalSteps}; {skippedBefore + source.SkippedPrompts} prompts over --max-prompt-length {options.MaxPromptLength} skipped");
            output.WriteLine($"metrics: {Path.Combine(runFolder, MetricsFile)}; final checkpoint: {GrpoCheckpoint.FolderFor(runFolder, options.TotalSteps)} " +
                             "(its model/ folder, tokenizer included, loads in grpo sample and in Hugging Face transformers)");
            return GrpoCommand.Success;
        }
        finally
        {
            policy?.Dispose();
            reference?.Dispose();
        }
    }

    /// <summary>A --dataset run's defaults where they are not TRL's: longer prompts and completions, TRL's learning rate for a pretrained model, small micro-batches.</summary>
    /// <param name="given">The options as the flags make them, so that the micro-batch follows --prompts and --group-size.</param>
    /// <param name="stopTokens">The model's own stop tokens.</param>
    private static GrpoTrainerOptions Defaults(GrpoTrainerOptions given, IReadOnlyList<int> stopTokens) => new()
    {
        GroupSize = TrainCommand.DefaultGroupSize,
        PromptsPerStep = TrainCommand.DefaultPromptsPerStep,
        MaxPromptLength = 512,
        MaxCompletionLength = 256,
        StopTokens = stopTokens,
        LearningRate = TrainCommand.PretrainedLearningRate,
        TotalSteps = TrainCommand.DefaultSteps,
        MicroBatchSize = Math.Min(8, given.PromptsPerStep * given.GroupSize),
        Seed = TrainCommand.DefaultSeed,
    };

    private static (PromptSampler, long Skipped) RestoreSampler(string checkpoint, int rows)
    {
        var position = ReadJson<SamplerPosition>(Path.Combine(checkpoint, SamplerFile));
        if (position.Rows != rows)
            throw new InvalidDataException($"--resume: the dataset now has {rows} rows but the run was trained on {position.Rows}; resume with the same dataset.");
        return (PromptSampler.Restore(rows, position.Seed, position.Epoch, position.Offset), position.Skipped);
    }

    private static T ReadJson<T>(string file)
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"--resume: '{file}' is missing; the run folder is incomplete.", file);
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(file)) ?? throw new InvalidDataException($"'{file}' is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{file}' is corrupt: {e.Message}", e);
        }
    }
}

using System.CommandLine;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Rewards;
using Grpo.Native.Tasks;
using Grpo.Native.Training;
using Spectre.Console;

namespace Grpo.Cli;

/// <summary>
/// <c>grpo train</c>: a whole GRPO run on a built-in task. With no arguments it trains a tiny,
/// randomly initialised Llama-family policy to reverse short words, from the reward alone, and
/// reports the held-out reward before and after. Writes metrics.jsonl, PNG curves, checkpoints.
/// </summary>
internal static class TrainCommand
{
    /// <summary>The default run's settings, chosen so it ends within 10 minutes on 2 cores.</summary>
    public const int DefaultSteps = 3000, DefaultGroupSize = 8, DefaultPromptsPerStep = 16, DefaultCheckpointEvery = 500;

    /// <summary>The task a new run trains when --task is not given.</summary>
    public const string DefaultTask = "reverse";

    /// <summary>Learning rates: a model trained from scratch wants a large one; a pretrained one TRL's default.</summary>
    public const float ScratchLearningRate = 3e-4f, PretrainedLearningRate = 1e-6f;

    public static Command Create(TextWriter output, TextWriter error)
    {
        var task = new Option<string?>("--task") { Description = $"built-in task (default {DefaultTask}; a resumed run keeps its own): {string.Join(", ", StringTransformTask.All.Select(t => $"{t.Name} ({t.Description})"))}" };
        var steps = new Option<int>("--steps") { Description = "GRPO steps (each samples prompts × group completions)", DefaultValueFactory = _ => DefaultSteps };
        var seed = new Option<int>("--seed") { Description = "seed of the model's initial weights, the prompts and the sampling", DefaultValueFactory = _ => 1 };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or ilgpu-cpu (default: GRPO_DEVICE, else auto)" };
        var outputFolder = new Option<string>("--output") { Description = "run folder: metrics.jsonl, curves, checkpoints", DefaultValueFactory = _ => "grpo-run" };
        var model = new Option<string?>("--model") { Description = "start from this Hugging Face model folder (gpt2, llama, qwen2 or qwen3) instead of a random tiny model" };
        var resume = new Option<bool>("--resume") { Description = "continue the run in --output from its latest complete checkpoint" };
        var learningRate = new Option<float?>("--learning-rate") { Description = $"peak learning rate (default {ScratchLearningRate:0.###e0} from scratch, {PretrainedLearningRate:0e0} with --model)" };
        var groupSize = new Option<int>("--group-size") { Description = "G: completions per prompt", DefaultValueFactory = _ => DefaultGroupSize };
        var prompts = new Option<int>("--prompts") { Description = "B: prompts per step", DefaultValueFactory = _ => DefaultPromptsPerStep };
        var beta = new Option<float>("--beta") { Description = "KL penalty weight; > 0 keeps a frozen copy of the initial policy as the reference", DefaultValueFactory = _ => 0f };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "steps between checkpoints", DefaultValueFactory = _ => DefaultCheckpointEvery };
        var dataset = new Option<string?>("--dataset") { Description = "train --model on the prompts of this JSONL or Parquet file (or folder of shards) instead of a built-in task; needs --reward" };
        var reward = new Option<string?>("--reward") { Description = $"with --dataset: built-in reward functions, comma-separated: {string.Join(", ", BuiltInRewards.Names)}" };
        var rewardWeights = new Option<string?>("--reward-weights") { Description = "with --dataset: one weight per --reward function, comma-separated (default 1 each)" };
        var promptColumn = new Option<string>("--prompt-column") { Description = "with --dataset: the column holding the prompt (text, or a list of {role, content} messages)", DefaultValueFactory = _ => "prompt" };
        var systemPrompt = new Option<string?>("--system-prompt") { Description = "with --dataset: a system message put first in every conversation that does not start with one" };
        var noChatTemplate = new Option<bool>("--no-chat-template") { Description = "with --dataset: encode text prompts as they are instead of as one user message of the chat template" };
        var maxPromptLength = new Option<int>("--max-prompt-length") { Description = "with --dataset: longest prompt in tokens; longer rows are skipped and counted (prompts/skipped), never cut", DefaultValueFactory = _ => 512 };
        var maxCompletionLength = new Option<int>("--max-completion-length") { Description = "with --dataset: most tokens generated per completion", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature") { Description = "with --dataset: sampling temperature of the rollouts (> 0)", DefaultValueFactory = _ => 1f };
        var dynamicSampling = new Option<bool>("--dynamic-sampling") { Description = "with --dataset: DAPO's dynamic sampling, dropping groups whose rewards are all equal and generating more prompts" };
        var maxGenerationBatches = new Option<int>("--max-generation-batches") { Description = "with --dynamic-sampling: most batches of prompts generated per step", DefaultValueFactory = _ => 4 };
        var overlongBuffer = new Option<int?>("--overlong-buffer") { Description = "soft_overlong_punishment's buffer in tokens (default 20% of --max-completion-length)" };
        var logCompletions = new Option<int?>("--log-completions-steps")
        {
            Description = $"with --dataset: write every completion of every N-th step, with its rewards and advantage, to completions.jsonl (default {DatasetSettings.DefaultLogCompletionsSteps}; 0: never)",
        };

        var command = new Command("train",
            "Runs GRPO on a built-in task with a verifiable reward. With no arguments: a tiny random policy learns to reverse words " +
            "from the reward alone; prints the held-out reward before and after, writes metrics.jsonl, reward/KL/length curves (PNG) " +
            "and checkpoints into --output.");
        foreach (var option in new Option[] { task, steps, seed, device, outputFolder, model, resume, learningRate, groupSize, prompts, beta, checkpointEvery,
                     dataset, reward, rewardWeights, promptColumn, systemPrompt, noChatTemplate, maxPromptLength, maxCompletionLength, temperature, overlongBuffer, dynamicSampling, maxGenerationBatches,
                     logCompletions })
            command.Options.Add(option);
        command.SetAction(parse => CliErrors.Guarded(error, "train", () =>
        {
            var settings = new TrainSettings(
                parse.GetValue(task), parse.GetValue(steps), parse.GetValue(seed), parse.GetValue(device), parse.GetValue(outputFolder)!,
                parse.GetValue(model), parse.GetValue(resume), parse.GetValue(learningRate), parse.GetValue(groupSize),
                parse.GetValue(prompts), parse.GetValue(beta), parse.GetValue(checkpointEvery));
            string? datasetPath = parse.GetValue(dataset);
            if (datasetPath is null && !(settings.Resume && TrainRun.IsDatasetRun(Path.GetFullPath(settings.Output))))
            {
                if (parse.GetValue(reward) is not null) throw new ArgumentException("--reward chooses the rewards of a --dataset run; built-in tasks have their own.");
                if (parse.GetValue(dynamicSampling)) throw new ArgumentException("--dynamic-sampling draws prompts from a --dataset; built-in tasks do not use it.");
                if (parse.GetValue(logCompletions) is not null) throw new ArgumentException("--log-completions-steps logs the completions of a --dataset run; leave it out for built-in tasks.");
                return TrainRun.Execute(settings, output);
            }
            settings.Validate();
            if (settings.Task is not null) throw new ArgumentException("--task and --dataset exclude each other: a run trains on a built-in task or on a dataset.");
            DatasetSettings? datasetSettings = null;
            if (datasetPath is not null)
            {
                if (settings.Resume) throw new ArgumentException("--resume continues the run's own dataset; leave out --dataset.");
                datasetSettings = new DatasetSettings(datasetPath,
                    parse.GetValue(reward) ?? throw new ArgumentException($"--dataset needs --reward NAME[,NAME...] (built-in: {string.Join(", ", BuiltInRewards.Names)})."),
                    parse.GetValue(rewardWeights), parse.GetValue(promptColumn)!, parse.GetValue(systemPrompt), !parse.GetValue(noChatTemplate),
                    parse.GetValue(maxPromptLength), parse.GetValue(maxCompletionLength), parse.GetValue(temperature), parse.GetValue(overlongBuffer),
                    parse.GetValue(logCompletions) ?? DatasetSettings.DefaultLogCompletionsSteps,
                    !parse.GetValue(dynamicSampling) ? 0
                        : parse.GetValue(maxGenerationBatches) is >= 1 and var limit ? limit
                        : throw new ArgumentException($"--max-generation-batches is {parse.GetValue(maxGenerationBatches)}; generate at least 1 batch per step (4 is usual)."));
            }
            return DatasetTrainRun.Execute(settings, datasetSettings, parse.GetValue(logCompletions), output, TrainRun.CreateConsole(output));
        }));
        return command;
    }
}

/// <summary>What <c>grpo train</c> was asked for.</summary>
internal sealed record TrainSettings(string? Task, int Steps, int Seed, string? Device, string Output, string? Model, bool Resume,
    float? LearningRate, int GroupSize, int PromptsPerStep, float Beta, int CheckpointEvery)
{
    public void Validate()
    {
        if (Steps < 1) throw new ArgumentException($"--steps is {Steps}; train for at least 1 step.");
        if (CheckpointEvery < 1) throw new ArgumentException($"--checkpoint-every is {CheckpointEvery}; it must be at least 1.");
        if (Resume && Model is not null) throw new ArgumentException("--resume continues a run from its own checkpoint; leave out --model.");
    }
}

using System.CommandLine;
using Grpo.Native.Models;
using Grpo.Native.Operations;
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
        var model = new Option<string?>("--model") { Description = "start from this Hugging Face model folder (gpt2, llama or qwen2) instead of a random tiny model" };
        var resume = new Option<bool>("--resume") { Description = "continue the run in --output from its latest complete checkpoint" };
        var learningRate = new Option<float?>("--learning-rate") { Description = $"peak learning rate (default {ScratchLearningRate:0.###e0} from scratch, {PretrainedLearningRate:0e0} with --model)" };
        var groupSize = new Option<int>("--group-size") { Description = "G: completions per prompt", DefaultValueFactory = _ => DefaultGroupSize };
        var prompts = new Option<int>("--prompts") { Description = "B: prompts per step", DefaultValueFactory = _ => DefaultPromptsPerStep };
        var beta = new Option<float>("--beta") { Description = "KL penalty weight; > 0 keeps a frozen copy of the initial policy as the reference", DefaultValueFactory = _ => 0f };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "steps between checkpoints", DefaultValueFactory = _ => DefaultCheckpointEvery };

        var command = new Command("train",
            "Runs GRPO on a built-in task with a verifiable reward. With no arguments: a tiny random policy learns to reverse words " +
            "from the reward alone; prints the held-out reward before and after, writes metrics.jsonl, reward/KL/length curves (PNG) " +
            "and checkpoints into --output.");
        foreach (var option in new Option[] { task, steps, seed, device, outputFolder, model, resume, learningRate, groupSize, prompts, beta, checkpointEvery })
            command.Options.Add(option);
        command.SetAction(parse => CliErrors.Guarded(error, "train", () =>
        {
            var settings = new TrainSettings(
                parse.GetValue(task), parse.GetValue(steps), parse.GetValue(seed), parse.GetValue(device), parse.GetValue(outputFolder)!,
                parse.GetValue(model), parse.GetValue(resume), parse.GetValue(learningRate), parse.GetValue(groupSize),
                parse.GetValue(prompts), parse.GetValue(beta), parse.GetValue(checkpointEvery));
            return TrainRun.Execute(settings, output);
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

using System.CommandLine;
using Grpo.Native.Checkpoints;
using Grpo.Native.Models;

namespace Grpo.Cli;

/// <summary>
/// <c>grpo init-model</c>: writes a Hugging Face model folder (config.json + model.safetensors) with random weights of a
/// config.json's architecture, so that <c>grpo train --model</c>, <c>sample</c> and the benchmarks can run a model of a
/// real checkpoint's shape (Qwen2.5-0.5B, say) where its weights cannot be downloaded. The weights are
/// <see cref="TransformerModel.CreateRandom"/>'s; the config is written as the library reads it.
/// </summary>
internal static class InitModelCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = new Option<string>("--config") { Description = "a config.json, or a model folder holding one (its weights are not read)", Required = true };
        var outputFolder = new Option<string>("--output") { Description = "the model folder to write (created; must not hold a model already)", Required = true };
        var seed = new Option<int>("--seed") { Description = "seed of the random weights", DefaultValueFactory = _ => 1 };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or ilgpu-cpu (default: GRPO_DEVICE, else auto)" };
        var command = new Command("init-model",
            "Writes a Hugging Face model folder (config.json, model.safetensors) with random weights of a config.json's architecture: " +
            "N(0, 0.02) matrices, zero biases, unit norms. For benchmarks and trial runs at a real model's size without its weights.");
        foreach (var option in new Option[] { config, outputFolder, seed, device }) command.Options.Add(option);
        command.SetAction(parse => CliErrors.Guarded(error, "init-model", () =>
        {
            var modelConfig = ModelConfig.Load(parse.GetValue(config)!);
            string folder = Path.GetFullPath(parse.GetValue(outputFolder)!);
            if (File.Exists(Path.Combine(folder, TransformerModel.WeightsFileName)))
                throw new ArgumentException($"--output: '{folder}' already holds {TransformerModel.WeightsFileName}; pass an empty or new folder.");
            using var dev = CliErrors.CreateDevice(parse.GetValue(device));
            using var model = TransformerModel.CreateRandom(dev, modelConfig, parse.GetValue(seed));
            model.Save(folder);
            output.WriteLine($"{folder}: {modelConfig.ModelType}, {model.Parameters.Count:N0} random parameters (seed {parse.GetValue(seed)})");
            return GrpoCommand.Success;
        }));
        return command;
    }
}

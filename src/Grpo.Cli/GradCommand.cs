using System.CommandLine;
using Grpo.Native.Checkpoints;
using Grpo.Native.Models;
using Grpo.Native.Training;

namespace Grpo.Cli;

/// <summary>
/// <c>grpo grad</c>: the parity interface. Computes the GRPO loss of a fixed batch (JSON) and the
/// gradient of every parameter, and writes them as F32 safetensors, so anyone can check the library
/// against PyTorch / TRL on the same model folder and batch.
/// </summary>
internal static class GradCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "the policy: a Hugging Face model folder (gpt2, llama, qwen2 or qwen3)", Required = true };
        var reference = new Option<string?>("--ref") { Description = "the reference model folder; required when the batch's beta > 0" };
        var batch = new Option<string>("--batch") { Description = "the batch JSON (group_size, prompts, completions, rewards, ... see the README)", Required = true };
        var outFile = new Option<string>("--out") { Description = "the output .safetensors: loss, advantages, logprobs and grad.NAME per model tensor", Required = true };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or ilgpu-cpu (default: GRPO_DEVICE, else auto)" };
        var command = new Command("grad",
            "Computes the GRPO loss and the gradient of every parameter for one fixed batch (no sampling) and writes them to a " +
            "safetensors file: loss [1], advantages [N], logprobs [N, T] (zero-padded), grad.NAME (same shape as NAME; a tied LM head's " +
            "gradient lands on the embedding).");
        foreach (var option in new Option[] { model, reference, batch, outFile, device }) command.Options.Add(option);
        command.SetAction(parse => CliErrors.Guarded(error, "grad", () =>
        {
            var gradBatch = GrpoGradBatch.Load(parse.GetValue(batch)!);
            string? refFolder = parse.GetValue(reference);
            if (gradBatch.Objective.Beta > 0 && refFolder is null)
                throw new ArgumentException($"the batch sets beta = {gradBatch.Objective.Beta}, which needs a reference model: pass --ref DIR (or set beta to 0).");
            string outPath = parse.GetValue(outFile)!;
            using var dev = CliErrors.CreateDevice(parse.GetValue(device));
            using var policy = TransformerModel.Load(dev, parse.GetValue(model)!);
            using var refModel = refFolder is null ? null : TransformerModel.Load(dev, refFolder);
            var result = GrpoGradient.Compute(policy, refModel, gradBatch);
            int n = gradBatch.Completions.Length;
            var tensors = new List<(string, int[], ReadOnlyMemory<float>)>
            {
                ("loss", [1], new[] { result.Loss }),
                ("advantages", [n], result.Advantages),
                ("logprobs", [n, result.CompletionSlots], result.Logprobs),
            };
            tensors.AddRange(policy.ToHuggingFace(result.Gradient, "grad."));
            SafetensorsWriter.Write(outPath, tensors, new Dictionary<string, string> { ["format"] = "pt" });
            output.WriteLine($"loss {result.Loss:G9}; {policy.Parameters.Layout.Count} gradients written to {outPath}");
            output.WriteLine($"clip ratio {result.Metrics.ClipRatioRegion:G4}, kl {result.Metrics.MeanKl:G6}, entropy {result.Metrics.MeanEntropy:G6}");
            return GrpoCommand.Success;
        }));
        return command;
    }
}

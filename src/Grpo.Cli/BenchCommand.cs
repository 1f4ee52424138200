using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Grpo.Native.Checkpoints;
using Grpo.Native.Cpu;
using Grpo.Native.Models;
using Grpo.Native.Tokenization;
using Grpo.Native.Training;

namespace Grpo.Cli;

/// <summary>
/// <c>grpo bench</c>: times the phases of a GRPO step on a synthetic model and batch (random weights,
/// random prompts, completions of exactly T tokens with no stop token) and prints their medians and the
/// process's peak working set. The architecture comes from --family and the size flags, or from a model
/// folder's config.json (--model; its weights are not read, so a config.json alone is enough).
/// </summary>
internal static class BenchCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        Option<int> Int(string name, string description, int fallback) =>
            new(name) { Description = description, DefaultValueFactory = _ => fallback };
        var model = new Option<string?>("--model") { Description = "benchmark the architecture of this Hugging Face model folder's config.json (random weights; no weights file needed) instead of --family and the size flags" };
        var family = new Option<string>("--family") { Description = "gpt2, llama, qwen2 or qwen3", DefaultValueFactory = _ => "gpt2" };
        var vocab = Int("--vocab", "V: vocabulary size", 512);
        var layers = Int("--layers", "L: transformer blocks", 4);
        var heads = Int("--heads", "H: attention heads (llama, qwen2 and qwen3 use H/2 key-value heads when H is even)", 4);
        var embd = Int("--embd", "C: model width", 128);
        var promptCount = Int("--prompts", "B: prompts per step", 8);
        var group = Int("--group", "G: completions per prompt", 8);
        var promptLength = Int("--prompt-len", "P: tokens per prompt", 32);
        var completionLength = Int("--completion-len", "T: tokens per completion (always exactly T)", 64);
        var steps = Int("--steps", "S: timed steps (after one warm-up step)", 5);
        var beta = new Option<float>("--beta") { Description = "KL weight; > 0 adds the reference model's forward", DefaultValueFactory = _ => 0f };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or ilgpu-cpu (default: GRPO_DEVICE, else auto)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of a table" };
        var recompute = new Option<bool>("--recompute-activations")
        {
            Description = "recompute norm outputs and MLP activations in the backward (the trainer's default, true)", DefaultValueFactory = _ => true,
        };
        var command = new Command("bench",
            "Times the phases of a GRPO step (rollout, rewards, reference log-probs, policy forward+backward, optimizer, whole step) on a " +
            "synthetic model (--family and sizes, or --model DIR's config.json) and batch, and prints the medians over --steps after a warm-up, " +
            "plus tokens/s and the peak working set.");
        foreach (var option in new Option[] { model, family, vocab, layers, heads, embd, promptCount, group, promptLength, completionLength, steps, beta, device, json, recompute })
            command.Options.Add(option);
        command.SetAction(parse => CliErrors.Guarded(error, "bench", () =>
        {
            int b = parse.GetValue(promptCount), g = parse.GetValue(group), p = parse.GetValue(promptLength), t = parse.GetValue(completionLength);
            int s = parse.GetValue(steps);
            foreach (var (name, value) in new[] { ("--prompts", b), ("--prompt-len", p), ("--completion-len", t), ("--steps", s) })
                if (value < 1) throw new ArgumentException($"{name} is {value}; it must be at least 1.");
            if (g < 2) throw new ArgumentException($"--group is {g}; GRPO needs at least 2 completions per prompt.");
            ModelConfig config;
            if (parse.GetValue(model) is { } folder)
            {
                var sizeFlags = new Option[] { family, vocab, layers, heads, embd }.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToArray();
                if (sizeFlags.Length > 0)
                    throw new ArgumentException($"--model takes the architecture from its config.json; leave out {string.Join(", ", sizeFlags)}.");
                config = ModelConfig.Load(folder);
                if (config.MaxPositions < p + t)
                    throw new ArgumentException($"--model: config.json allows {config.MaxPositions} positions, fewer than --prompt-len {p} + --completion-len {t}.");
            }
            else
            {
                string fam = parse.GetValue(family)!;
                if (!ModelConfig.SupportedModelTypes.Contains(fam))
                    throw new ArgumentException($"--family '{fam}' is unknown; use {string.Join(", ", ModelConfig.SupportedModelTypes)}.");
                int v = parse.GetValue(vocab), l = parse.GetValue(layers), h = parse.GetValue(heads), c = parse.GetValue(embd);
                foreach (var (name, value) in new[] { ("--vocab", v), ("--layers", l), ("--heads", h), ("--embd", c) })
                    if (value < 1) throw new ArgumentException($"{name} is {value}; it must be at least 1.");
                if (c % h != 0) throw new ArgumentException($"--embd {c} is not divisible by --heads {h}.");
                config = new ModelConfig
                {
                    ModelType = fam, VocabSize = v, HiddenSize = c, NumLayers = l, NumHeads = h,
                    NumKeyValueHeads = fam != "gpt2" && h % 2 == 0 ? h / 2 : h,
                    IntermediateSize = fam == "gpt2" ? 4 * c : (8 * c / 3 + 31) / 32 * 32,
                    MaxPositions = p + t, NormEpsilon = 1e-5, TieWordEmbeddings = true, // qwen3: head_dim C / H
                };
                config.Validate();
            }
            return Run(config, b, g, p, t, s, parse.GetValue(beta), parse.GetValue(recompute), parse.GetValue(device), parse.GetValue(json), output);
        }));
        return command;
    }

    private static int Run(ModelConfig config, int b, int g, int p, int t, int steps, float beta, bool recompute, string? deviceName, bool json,
        TextWriter output)
    {
        using var device = CliErrors.CreateDevice(deviceName);
        using var policy = TransformerModel.CreateRandom(device, config, seed: 1);
        using var reference = beta > 0 ? TransformerModel.CreateRandom(device, config, seed: 1) : null;
        var options = new GrpoTrainerOptions
        {
            GroupSize = g, PromptsPerStep = b, MaxPromptLength = p, MaxCompletionLength = t, Beta = beta,
            LearningRate = 1e-5f, TotalSteps = steps + 1, MicroBatchSize = b * g, RecomputeActivations = recompute,
        };
        // A reward that varies between completions, so advantages are not all zero and the whole backward runs.
        var reward = RewardFunction.Create("synthetic", input => input.CompletionTokens.Sum() % 7 / 7f);
        using var trainer = new GrpoTrainer(policy, new IdTokenizer(config.VocabSize), [reward], options, reference);
        var random = new Random(7);
        var timings = new List<GrpoStepMetrics>();
        var counts = new BenchDeviceCounts(device);
        for (int step = 0; step <= steps; step++)
        {
            if (step == 1) counts.StartTimedSteps();
            var prompts = Enumerable.Range(0, b).Select(_ => Enumerable.Range(0, p).Select(_ => random.Next(config.VocabSize)).ToArray()).ToArray();
            var m = trainer.TrainStep(prompts);
            if (step > 0) timings.Add(m); // the first step compiles kernels and warms caches
        }
        double Median(Func<GrpoStepMetrics, double> pick)
        {
            var sorted = timings.Select(pick).Order().ToArray();
            return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        }
        var result = new Dictionary<string, object>
        {
            ["device"] = device.ToString(),
            ["gemms"] = device is Grpo.Native.Ilgpu.IlgpuDevice ilgpu ? ilgpu.GemmPath : "the managed CPU GEMM (fp32)",
            ["family"] = config.ModelType, ["parameters"] = policy.Parameters.Count,
            ["prompts"] = b, ["group"] = g, ["prompt_len"] = p, ["completion_len"] = t, ["beta"] = beta, ["steps"] = steps,
            ["recompute_activations"] = recompute,
            ["rollout_s"] = Median(m => m.Phases.Rollout),
            ["rewards_s"] = Median(m => m.Phases.Rewards),
            ["reference_logprobs_s"] = Median(m => m.Phases.ReferenceLogprobs),
            ["policy_forward_backward_s"] = Median(m => m.Phases.PolicyForwardBackward),
            ["optimizer_s"] = Median(m => m.Phases.Optimizer),
            ["step_s"] = Median(m => m.StepTime),
        };
        double step_s = (double)result["step_s"];
        result["completion_tokens_per_s"] = b * g * t / step_s;
        result["sampled_tokens_per_s"] = b * g * t / (double)result["rollout_s"];
        result["trained_tokens_per_s"] = b * g * (p + t) / (double)result["policy_forward_backward_s"];
        // The most memory the process held at once (Linux: VmHWM), on the host: weights, gradients, AdamW moments, the
        // reference and activations on the CPU backends; on a GPU mostly the runtime and host-side copies.
        result["peak_working_set_bytes"] = Process.GetCurrentProcess().PeakWorkingSet64;
        if (device is CpuDevice cpu) result["peak_tensor_bytes"] = cpu.PeakAllocatedBytes;
        counts.AddTo(result, policy, steps, b, g, p);
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(result));
            return GrpoCommand.Success;
        }
        output.WriteLine($"{config.ModelType}: {policy.Parameters.Count:N0} parameters, {b} prompts x {g} completions, P = {p}, T = {t}, beta {beta}, on {device}");
        output.WriteLine($"medians over {steps} steps after one warm-up step:");
        foreach (var key in new[] { "rollout_s", "rewards_s", "reference_logprobs_s", "policy_forward_backward_s", "optimizer_s", "step_s" })
            output.WriteLine($"  {key[..^2],-26} {(double)result[key] * 1000,10:F1} ms");
        output.WriteLine($"  completion tokens/s (whole step)   {result["completion_tokens_per_s"]:F0}");
        output.WriteLine($"  sampled tokens/s (rollout)         {result["sampled_tokens_per_s"]:F0}");
        output.WriteLine($"  trained tokens/s (forward+backward) {result["trained_tokens_per_s"]:F0}");
        output.WriteLine($"  peak working set                   {(long)result["peak_working_set_bytes"] / (double)(1 << 30):F2} GiB");
        if (result.TryGetValue("peak_tensor_bytes", out var tensorBytes))
            output.WriteLine($"  peak tensor bytes                  {(long)tensorBytes / (double)(1 << 30):F2} GiB");
        return GrpoCommand.Success;
    }

    /// <summary>Token ids as text, for synthetic runs whose reward reads ids only.</summary>
    private sealed class IdTokenizer(int vocabulary) : ITokenizer
    {
        public int VocabularySize => vocabulary;
        public int[] Encode(string text) => text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        public string Decode(IReadOnlyList<int> tokens) => string.Join(' ', tokens);
    }
}

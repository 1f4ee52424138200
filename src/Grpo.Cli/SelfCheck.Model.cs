using System.Diagnostics;
using Grpo.Native.Checkpoints;
using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Training;

namespace Grpo.Cli;

internal static partial class SelfCheck
{
    /// <summary>
    /// Whole models on the device against the managed CPU backend (which the test suite holds to double-precision
    /// references): a GRPO loss and gradient, as <c>grpo grad</c> computes them, of a small random model of each family
    /// with a reference model (β = 0.04) and two micro-batches, so every kernel of a training step runs in sequence on the
    /// device's own launch shapes and GEMM path (cuBLAS where enabled). Log-probs and gradients are compared normwise:
    /// two fp32 computations of the same sums in different orders, bounded as the suite bounds one backward (1e-3;
    /// log-probs 1e-4). Also prints each family's time on the device, the compile-and-run cost a first step pays.
    /// Not run on the managed CPU backend itself (it would compare it with itself).
    /// </summary>
    private static IEnumerable<CheckResult> Models(Device device, Random random, double tolerance, double gradientTolerance,
        IReadOnlyList<string>? families)
    {
        if (device.Kind == DeviceKind.Cpu) yield break;
        using var cpu = new CpuDevice();
        bool onSimulator = device.Kind != DeviceKind.Cuda;
        // The simulator runs every kernel on threads, seconds per model; the suite's model tests cover it family by family.
        foreach (string family in families ?? (onSimulator ? ["qwen2"] : new[] { "gpt2", "llama", "qwen2", "qwen3" }))
        {
            var config = SmallModel(family, onSimulator);
            int seed = random.Next();
            var batch = RandomBatch(random, config.VocabSize);
            var (expected, _) = GradientOn(cpu, config, seed, batch);
            var (actual, seconds) = GradientOn(device, config, seed, batch);
            string shape = $"{family} L={config.NumLayers} C={config.HiddenSize} V={config.VocabSize}";
            yield return new CheckResult($"model {shape} log-probs",
                ErrorMeasure.NormwiseRelativeError(ToDouble(expected.Logprobs), actual.Logprobs), tolerance, $"normwise; {seconds * 1e3:F0} ms on the device");
            yield return new CheckResult($"model {shape} gradient",
                ErrorMeasure.NormwiseRelativeError(ToDouble(expected.Gradient), actual.Gradient), gradientTolerance, $"normwise over {actual.Gradient.Length} parameters");
            // The loss is a mean of per-token terms −A·ρ + β·KL whose weights add to 1 (ρ = 1 here). The backends' log-probs
            // differ within their bound and fp32 sums round, both in proportion to the terms' size, about mean |A| + β·|KL|,
            // not to |loss|, which cancels toward 0 since each group's advantages add to zero (e.g. −3.5e-4 against terms ~0.4).
            double lossScale = expected.Advantages.Average(a => Math.Abs((double)a)) + batch.Objective.Beta * Math.Abs(expected.Metrics.MeanKl)
                               + Math.Abs(expected.Loss);
            yield return new CheckResult($"model {shape} loss", Math.Abs((double)actual.Loss - expected.Loss) / lossScale,
                tolerance, $"loss {actual.Loss:G6}; error / (mean |A| + β·|KL| + |loss|)");
            yield return DecodeAgainstForward(device, config, seed, random, tolerance, shape);
        }
    }

    /// <summary>
    /// Cached decoding on the device against one full forward on the same device: two prompts fanned out to 2 slots each,
    /// 6 sampled tokens, the log-prob the sampler reported for each against the full forward's log-prob of that token.
    /// Two fp32 routes to the same log-probs (cached decode attention and split-K GEMMs against packed attention and the
    /// fused gather), compared normwise against the log-prob bound, as the model check above.
    /// </summary>
    private static CheckResult DecodeAgainstForward(Device device, ModelConfig config, int seed, Random random, double tolerance, string shape)
    {
        using var model = TransformerModel.CreateRandom(device, config, seed);
        const int groupSize = 2, steps = 6;
        const float temperature = 0.9f;
        int[][] prompts = [.. new[] { 5, 9 }.Select(length => Enumerable.Range(0, length).Select(_ => random.Next(config.VocabSize)).ToArray())];
        int slots = prompts.Length * groupSize;
        using var promptBatch = TokenBatch.Create(device, prompts, config.VocabSize, config.MaxPositions);
        using var decoder = new KvCacheDecoder(model, slots, capacity: 16, maxPromptTokens: promptBatch.TokenCount);
        using var tokens = device.Allocate<int>(slots);      // (S)
        using var logprobs = device.Allocate<float>(slots);  // (S)
        var options = new SamplingOptions { Temperature = temperature };
        var completions = new int[slots, steps];
        var sampled = new float[slots, steps];
        var logits = decoder.Prefill(promptBatch, groupSize);
        for (int step = 0; step < steps; step++)
        {
            device.Operations.SampleTokens(logits, options, seed: (ulong)seed, step, tokens, logprobs);
            int[] t = tokens.ToArray();
            float[] lp = logprobs.ToArray();
            for (int slot = 0; slot < slots; slot++) (completions[slot, step], sampled[slot, step]) = (t[slot], lp[slot]);
            if (step < steps - 1) logits = decoder.Step(tokens);
        }

        // One forward over every prompt + completion; row (prompt end − 1 + step) predicts the token of that step.
        var sequences = Enumerable.Range(0, slots)
            .Select(slot => prompts[slot / groupSize].Concat(Enumerable.Range(0, steps).Select(step => completions[slot, step])).ToArray()).ToArray();
        using var full = TokenBatch.Create(device, sequences, config.VocabSize, config.MaxPositions);
        using var activations = model.CreateActivations(full.TokenCount, ActivationMode.Inference);
        var hidden = model.Forward(full, activations);
        var targets = new int[full.TokenCount];
        var rows = new List<(int Row, int Slot, int Step)>();
        for (int slot = 0; slot < slots; slot++)
            for (int step = 0; step < steps; step++)
            {
                int row = full.HostStarts[slot] + prompts[slot / groupSize].Length - 1 + step;
                targets[row] = completions[slot, step];
                rows.Add((row, slot, step));
            }
        using var targetTensor = device.FromArray<int>(targets, targets.Length);  // (M)
        using var fullLogprobs = device.Allocate<float>(full.TokenCount);        // (M)
        using var lse = device.Allocate<float>(full.TokenCount);                 // (M)
        device.Operations.LogSoftmaxGatherForward(hidden, model.LmHead, targetTensor, temperature, fullLogprobs, lse, null);
        float[] forward = fullLogprobs.ToArray();
        double[] expected = rows.Select(r => (double)forward[r.Row]).ToArray();
        float[] actual = rows.Select(r => sampled[r.Slot, r.Step]).ToArray();
        return new CheckResult($"model {shape} decode vs forward", ErrorMeasure.NormwiseRelativeError(expected, actual), tolerance,
            $"normwise over {actual.Length} sampled tokens");
    }

    private static (GrpoGradResult Result, double Seconds) GradientOn(Device device, ModelConfig config, int seed, GrpoGradBatch batch)
    {
        var clock = Stopwatch.StartNew();
        using var policy = TransformerModel.CreateRandom(device, config, seed);
        using var reference = TransformerModel.CreateRandom(device, config, seed + 1);
        var result = GrpoGradient.Compute(policy, reference, batch);
        return (result, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// On a GPU: two layers, 4 heads (2 key-value heads but GPT-2's), width 64, vocabulary 301, Qwen2 untied (with its
    /// q/k/v biases): small, yet past one 64-wide GEMM tile. On the simulator, which runs kernels on threads: one layer,
    /// width 32, vocabulary 67, so the check stays a few seconds.
    /// </summary>
    private static ModelConfig SmallModel(string family, bool onSimulator) => new()
    {
        ModelType = family, VocabSize = onSimulator ? 67 : 301, HiddenSize = onSimulator ? 32 : 64, NumLayers = onSimulator ? 1 : 2,
        NumHeads = 4, NumKeyValueHeads = family == "gpt2" ? 4 : 2, IntermediateSize = (family == "gpt2" ? 4 : 3) * (onSimulator ? 32 : 64),
        MaxPositions = 64, NormEpsilon = 1e-5, RopeTheta = 10000, TieWordEmbeddings = family != "qwen2",
    };

    /// <summary>2 prompts × 4 completions of 3 to 20 tokens, varied rewards, in two micro-batches.</summary>
    private static GrpoGradBatch RandomBatch(Random random, int vocab)
    {
        int[] Tokens(int length) => Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray(); // prompts + completions ≤ 32 < 64 positions
        return new GrpoGradBatch
        {
            GroupSize = 4,
            Prompts = [Tokens(7), Tokens(12)],
            Completions = Enumerable.Range(0, 8).Select(_ => Tokens(3 + random.Next(18))).ToArray(),
            Rewards = Enumerable.Range(0, 8).Select(_ => (float)random.NextDouble()).ToArray(),
            Objective = new GrpoObjectiveOptions { Beta = 0.04f },
            MicroBatchCompletions = 4,
        };
    }
}

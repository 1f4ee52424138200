using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Models;

/// <summary>
/// Cached decoding must give exactly what a full forward gives: the log-prob the sampler reports for
/// every generated token equals the log-prob of that token from one forward over prompt + completion.
/// </summary>
public sealed class KvCacheDecoderTests
{
    // Two fp32 computations of the same log-prob by different routes (cached decode attention vs packed
    // attention, a logits GEMM vs the fused gather): their rounding differs, within the hidden-state bound.
    private const double LogProbTolerance = 5e-4;

    public static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds()
        from name in TinyModels.NamesWithRopeScaling
        select new TestCaseData(kind, name);

    [TestCaseSource(nameof(Cases))]
    public void DecodedLogProbsEqualThoseOfAFullForward(DeviceKind kind, string name)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var config = TinyModels.Config(name);
        using var model = TransformerModel.CreateRandom(device, config, seed: random.Next());
        // Larger weights than the default init so the distribution is far from uniform, yet not so peaked that
        // log-probs round to 0 (then both routes are right to 1e-7 absolute, which no relative measure can judge).
        device.Operations.Scale(model.Parameters.Buffer, 5f);
        const int groupSize = 3, steps = 6;
        int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 4, 1, 7);
        int slots = prompts.Length * groupSize;
        using var promptBatch = TokenBatch.Create(device, prompts, config.VocabSize, config.MaxPositions);
        using var decoder = new KvCacheDecoder(model, slots, capacity: 16, maxPromptTokens: promptBatch.TokenCount);
        using var tokens = device.Allocate<int>(slots);
        using var logprobs = device.Allocate<float>(slots);
        var options = new SamplingOptions { Temperature = 0.9f };
        var completions = Enumerable.Range(0, slots).Select(_ => new List<int>()).ToArray();
        var sampled = Enumerable.Range(0, slots).Select(_ => new List<float>()).ToArray();

        var logits = decoder.Prefill(promptBatch, groupSize);
        for (int step = 0; step < steps; step++)
        {
            device.Operations.SampleTokens(logits, options, seed: 11, step, tokens, logprobs);
            int[] t = tokens.ToArray();
            float[] lp = logprobs.ToArray();
            for (int s = 0; s < slots; s++)
            {
                completions[s].Add(t[s]);
                sampled[s].Add(lp[s]);
            }
            if (step < steps - 1) logits = decoder.Step(tokens);
        }
        Assert.That(decoder.Lengths.ToArray(), Is.EqualTo(Enumerable.Range(0, slots).Select(s => prompts[s / groupSize].Length + steps - 1)));
        Assert.That(completions.Select(c => string.Join(",", c)).Distinct().Count(), Is.GreaterThan(1),
            "the group's completions should differ (different rows of the counter-based RNG)");

        // One full forward over every prompt + completion; row (prompt end − 1 + t) predicts completion token t.
        var sequences = Enumerable.Range(0, slots).Select(s => prompts[s / groupSize].Concat(completions[s]).ToArray()).ToArray();
        using var full = TokenBatch.Create(device, sequences, config.VocabSize, config.MaxPositions);
        using var activations = model.CreateActivations(full.TokenCount, ActivationMode.Inference);
        var hidden = model.Forward(full, activations);
        var targets = new int[full.TokenCount];
        var rows = new List<(int Row, int Slot, int Step)>();
        for (int s = 0; s < slots; s++)
            for (int step = 0; step < steps; step++)
            {
                int row = full.HostStarts[s] + prompts[s / groupSize].Length - 1 + step;
                targets[row] = completions[s][step];
                rows.Add((row, s, step));
            }
        using var targetTensor = device.FromArray<int>(targets, targets.Length);
        using var fullLogprobs = device.Allocate<float>(full.TokenCount);
        using var lse = device.Allocate<float>(full.TokenCount);
        device.Operations.LogSoftmaxGatherForward(hidden, model.LmHead, targetTensor, options.Temperature, fullLogprobs, lse, null);
        float[] reference = fullLogprobs.ToArray();
        double[] expected = rows.Select(r => (double)reference[r.Row]).ToArray();
        float[] actual = rows.Select(r => sampled[r.Slot][r.Step]).ToArray();
        Compare.WorstRelativeError($"{name}: sampler log-probs from the cache vs a full forward ({actual.Length} tokens)",
            expected, actual, LogProbTolerance);
    }

    /// <summary>
    /// A decode step through the fused q/k/v epilogue (one GEMM, then SplitIntoKvCache) gives the bits of the separate path
    /// (three GEMMs with their biases, Qwen3's head norms, RoPE, KvCacheWrite): on the ILGPU backend each q, k and v value is
    /// the same dot product plus bias, rounded once, and the epilogue repeats the later steps' arithmetic. Several steps, so
    /// the caches the later steps attend to were written by both routes too.
    /// </summary>
    [TestCaseSource(typeof(TinyModels), nameof(TinyModels.Names))]
    public void TheFusedDecodeEpilogueGivesTheLogitsOfTheSeparateSteps(string name)
    {
        var device = TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config(name);
        using var model = TransformerModel.CreateRandom(device, config, seed: random.Next());
        int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 3, 5);
        int[][] stepTokens = TinyModels.Sequences(random, config.VocabSize, 2, 2, 2, 2); // 4 steps of one token per slot
        float[][] Decode(bool fused)
        {
            model.FusesQkv = fused;
            using var batch = TokenBatch.Create(device, prompts, config.VocabSize, config.MaxPositions);
            using var decoder = new KvCacheDecoder(model, prompts.Length, capacity: 12, maxPromptTokens: batch.TokenCount);
            var logits = new List<float[]> { decoder.Prefill(batch, 1).ToArray() };
            foreach (int[] step in stepTokens)
            {
                using var tokens = device.FromArray<int>(step, step.Length);
                logits.Add(decoder.Step(tokens).ToArray());
            }
            return [.. logits];
        }
        float[][] separate = Decode(fused: false), epilogue = Decode(fused: true);
        for (int step = 0; step < separate.Length; step++)
            Assert.That(epilogue[step], Is.EqualTo(separate[step]), $"logits after {step} decode step(s)");
    }

    [Test]
    public void MisuseIsRefusedWithTheReason()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var config = TinyModels.Config("llama");
        using var model = TransformerModel.CreateRandom(device, config, seed: 5);
        var tooLong = Assert.Throws<ArgumentOutOfRangeException>(() => new KvCacheDecoder(model, 2, config.MaxPositions + 1, 4));
        Assert.That(tooLong!.Message, Does.Contain("context"));
        using var decoder = new KvCacheDecoder(model, maxSlots: 2, capacity: 4, maxPromptTokens: 8);
        using var tokens = device.FromArray<int>(new[] { 1, 2 }, 2);
        Assert.That(Assert.Throws<InvalidOperationException>(() => decoder.Step(tokens))!.Message, Does.Contain("Prefill"));
        using var prompts = TokenBatch.Create(device, [[1, 2]], config.VocabSize, config.MaxPositions);
        var tooMany = Assert.Throws<ArgumentException>(() => decoder.Prefill(prompts, groupSize: 3));
        Assert.That(tooMany!.Message, Does.Contain("3 slots"));
        decoder.Prefill(prompts, groupSize: 2);
        decoder.Step(tokens);
        decoder.Step(tokens);
        var full = Assert.Throws<InvalidOperationException>(() => decoder.Step(tokens));
        Assert.That(full!.Message, Does.Contain("capacity"));
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Models;

/// <summary>
/// What decoding asks of the device, counted on the ILGPU simulator (the same host code issues the same
/// calls on CUDA): a decode step copies nothing between host and device and allocates nothing, and the
/// rollout, which reads tokens back only every few steps, gives exactly the completions of a loop that
/// reads them every step.
/// </summary>
public sealed class DecodeDeviceTrafficTests
{
    [TestCaseSource(typeof(TinyModels), nameof(TinyModels.NamesWithRopeScaling))]
    public void ADecodeStepCopiesAndAllocatesNothing(string name)
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config(name);
        using var model = TransformerModel.CreateRandom(device, config, seed: random.Next());
        const int groupSize = 2;
        int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 3, 5);
        int slots = prompts.Length * groupSize;
        using var batch = TokenBatch.Create(device, prompts, config.VocabSize, config.MaxPositions);
        using var decoder = new KvCacheDecoder(model, slots, capacity: 12, maxPromptTokens: batch.TokenCount);
        using var tokens = device.Allocate<int>(slots);
        using var logprobs = device.Allocate<float>(slots);
        var options = new SamplingOptions { Temperature = 0.9f };

        var logits = decoder.Prefill(batch, groupSize);
        for (int step = 0; step < 3; step++)
        {
            device.Operations.SampleTokens(logits, options, seed: 5, step, tokens, logprobs);
            var before = device.Stats.Snapshot();
            logits = decoder.Step(tokens);
            var counted = device.Stats.Snapshot() - before;
            TestContext.Out.WriteLine($"{name} decode step {step}: {counted}");
            Assert.That(counted.HostCopies, Is.Zero, "a decode step must not copy between host and device");
            Assert.That(counted.Synchronizations, Is.Zero, "a decode step must not wait for the device");
            Assert.That(counted.Allocations + counted.Frees, Is.Zero, "a decode step must not allocate or free");
            Assert.That(counted.KernelLaunches, Is.GreaterThan(0));
        }
    }

    /// <summary>
    /// A decode step projects q, k and v with one GEMM and one epilogue kernel (split, bias, head norms, RoPE, cache write)
    /// instead of three GEMMs, RoPE and a cache write: fewer launches than with the fusion off.
    /// </summary>
    [TestCaseSource(typeof(TinyModels), nameof(TinyModels.Names))]
    public void TheFusedQkvProjectionCostsFewerLaunchesPerDecodeStep(string name)
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        using var model = TransformerModel.CreateRandom(device, TinyModels.Config(name), seed: random.Next());
        long LaunchesPerStep(bool fused)
        {
            model.FusesQkv = fused;
            return LaunchesOfOneDecodeStep(device, model, random).Values.Sum();
        }
        long fusedLaunches = LaunchesPerStep(true), separateLaunches = LaunchesPerStep(false);
        TestContext.Out.WriteLine($"{name}: {fusedLaunches} launches per decode step with q/k/v fused, {separateLaunches} without");
        Assert.That(fusedLaunches, Is.LessThan(separateLaunches));
    }

    /// <summary>
    /// Which kernels one decode step launches, by name: each stage the forward fuses is one launch where it took two or three.
    /// A GPU decode step is bound by launches, so a fusion undone by accident shows here, not only as a slower step on a machine
    /// the suite does not have. GEMMs are counted by kernel, so the counts do not depend on how a machine splits K.
    /// </summary>
    [TestCaseSource(typeof(TinyModels), nameof(TinyModels.Names))]
    public void ADecodeStepLaunchesOneKernelPerFusedStage(string name)
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config(name, layers: 3);
        using var model = TransformerModel.CreateRandom(device, config, seed: random.Next());
        var launches = LaunchesOfOneDecodeStep(device, model, random);
        TestContext.Out.WriteLine($"{name}, {config.NumLayers} layers: {launches.Values.Sum()} launches: {launches.Describe()}");

        int layers = config.NumLayers;
        bool gpt2 = config.ModelType == "gpt2";
        // The residual adds run inside the norms after them: no Add kernel; one norm kernel per norm (each block's two, the
        // final one). Qwen3's per-head q and k norms run inside the q/k/v epilogue below.
        Assert.That(launches.Of(".Add"), Is.Zero, "residual adds");
        string norm = gpt2 ? "NormalizationKernels.LayerNormForward" : "NormalizationKernels.RmsNormForward";
        Assert.That(launches.Of(norm), Is.EqualTo(2 * layers + 1), "norms");
        // Q, K and V leave their GEMM through one kernel per layer: it adds their biases, norms each head (Qwen3), rotates q
        // and k and writes k and v into the cache. The GEMM kernel adds the other projections' biases as it writes (GPT-2's
        // c_proj, c_fc and mlp c_proj; Qwen3's o_proj with attention_bias): nothing is broadcast first.
        string epilogue = config.HasQkNorm ? "KvCacheKernels.SplitNormIntoCache" : "KvCacheKernels.SplitIntoCache";
        Assert.That(launches.Of(epilogue), Is.EqualTo(layers), "split, head norms, RoPE and cache write in one");
        foreach (string apart in new[] { ".CopyColumns", ".Rope", ".KvCacheWrite" })
            Assert.That(launches.Of(apart), Is.Zero, apart);
        Assert.That(launches.Of(".BroadcastBias"), Is.Zero, "bias broadcasts");
        // GEMMs: q/k/v as one, o_proj, the MLP's up (gate_proj and up_proj as one) and down, per layer; then the LM head.
        Assert.That(launches.Of("MatmulKernels.Matmul"), Is.EqualTo(4 * layers + 1), "GEMMs");
        Assert.That(launches.Of(".SwiGluForward"), Is.EqualTo(gpt2 ? 0 : layers), "SwiGLU");
    }

    /// <summary>The launches, by kernel, of one decode step of <paramref name="model"/> after a prefill of two prompts (3 and 5 tokens).</summary>
    private static Dictionary<string, long> LaunchesOfOneDecodeStep(IlgpuDevice device, TransformerModel model, Random random)
    {
        var config = model.Config;
        int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 3, 5);
        using var batch = TokenBatch.Create(device, prompts, config.VocabSize, config.MaxPositions);
        using var tokens = device.FromArray<int>(new int[prompts.Length], prompts.Length);
        using var decoder = new KvCacheDecoder(model, prompts.Length, capacity: 8, maxPromptTokens: batch.TokenCount);
        decoder.Prefill(batch, 1);
        var before = device.Stats.LaunchesByKernel();
        decoder.Step(tokens);
        return KernelLaunches.Between(before, device.Stats.LaunchesByKernel());
    }

    [Test]
    public void TheRolloutGivesTheCompletionsOfAPerStepLoopAndReadsBackOnlyEveryFewSteps()
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config("llama");
        using var model = TransformerModel.CreateRandom(device, config, seed: random.Next());
        device.Operations.Scale(model.Parameters.Buffer, 3f); // a peaked distribution, so stop tokens come up at various steps
        const int groupSize = 3, maxCompletion = 11;
        int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 4, 2);
        int n = prompts.Length * groupSize;
        var stop = new HashSet<int> { random.Next(config.VocabSize), random.Next(config.VocabSize), random.Next(config.VocabSize) };
        var options = new SamplingOptions { Temperature = 1f };
        ulong seed = (ulong)random.NextInt64();

        using var generator = new RolloutGenerator(model, n, 4, maxCompletion, 6);
        var before = device.Stats.Snapshot();
        var rollout = generator.Generate(prompts, groupSize, maxCompletion, options, stop, seed);
        var counted = device.Stats.Snapshot() - before;
        TestContext.Out.WriteLine($"rollout of {maxCompletion} steps: {counted}; stopped: {rollout.Truncated.Count(t => !t)} of {n}");
        // Reads: the tokens once per StopCheckInterval steps (and at the end), the log-probs once.
        int reads = (maxCompletion + RolloutGenerator.StopCheckInterval - 1) / RolloutGenerator.StopCheckInterval + 1;
        Assert.That(counted.DeviceToHostCopies, Is.LessThanOrEqualTo(reads));

        // The loop the rollout replaced: read every step, stop each row at its first stop token.
        using var batch = TokenBatch.Create(device, prompts, config.VocabSize, config.MaxPositions);
        using var decoder = new KvCacheDecoder(model, n, 4 + maxCompletion, 6);
        using var tokens = device.Allocate<int>(n);
        using var logprobs = device.Allocate<float>(n);
        var completions = Enumerable.Range(0, n).Select(_ => new List<int>()).ToArray();
        var sampled = Enumerable.Range(0, n).Select(_ => new List<float>()).ToArray();
        var finished = new bool[n];
        var logits = decoder.Prefill(batch, groupSize);
        for (int step = 0; step < maxCompletion; step++)
        {
            device.Operations.SampleTokens(logits, options, seed, step, tokens, logprobs);
            int[] t = tokens.ToArray();
            float[] lp = logprobs.ToArray();
            for (int i = 0; i < n; i++)
            {
                if (finished[i]) continue;
                completions[i].Add(t[i]);
                sampled[i].Add(lp[i]);
                finished[i] = stop.Contains(t[i]);
            }
            if (finished.All(f => f) || step == maxCompletion - 1) break;
            logits = decoder.Step(tokens);
        }
        Assert.That(rollout.Completions, Is.EqualTo(completions.Select(c => c.ToArray()).ToArray()));
        Assert.That(rollout.Logprobs, Is.EqualTo(sampled.Select(c => c.ToArray()).ToArray()));
        Assert.That(rollout.Truncated, Is.EqualTo(finished.Select(f => !f).ToArray()));
    }
}

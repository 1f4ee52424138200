using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Models;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Models;

/// <summary>
/// Which kernels one decode step launches, by name, on the ILGPU simulator (the host code CUDA runs): each stage the
/// forward fuses is one launch where it took two or three. A GPU decode step is bound by launches, so a fusion undone by
/// accident shows here, not only as a slower step on a machine the suite does not have.
/// </summary>
public sealed class DecodeKernelLaunchTests
{
    [TestCaseSource(typeof(TinyModels), nameof(TinyModels.Names))]
    public void ADecodeStepLaunchesOneKernelPerFusedStage(string name)
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config(name, layers: 3);
        using var model = TransformerModel.CreateRandom(device, config, seed: random.Next());
        int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 3, 5);
        using var batch = TokenBatch.Create(device, prompts, config.VocabSize, config.MaxPositions);
        using var tokens = device.FromArray<int>(new int[prompts.Length], prompts.Length);
        using var decoder = new KvCacheDecoder(model, prompts.Length, capacity: 8, maxPromptTokens: batch.TokenCount);
        decoder.Prefill(batch, 1);

        var before = device.Stats.LaunchesByKernel();
        decoder.Step(tokens);
        var launches = KernelLaunches.Between(before, device.Stats.LaunchesByKernel());
        TestContext.Out.WriteLine($"{name}, {config.NumLayers} layers: {launches.Values.Sum()} launches: {launches.Describe()}");

        int layers = config.NumLayers;
        bool gpt2 = config.ModelType == "gpt2";
        // The residual adds run inside the norms after them: no Add kernel; one norm kernel per norm (each block's two, the
        // final one), plus Qwen3's per-head q and k norms.
        Assert.That(launches.Of(".Add"), Is.Zero, "residual adds");
        string norm = gpt2 ? "NormalizationKernels.LayerNormForward" : "NormalizationKernels.RmsNormForward";
        Assert.That(launches.Of(norm), Is.EqualTo(2 * layers + 1 + (config.HasQkNorm ? 2 * layers : 0)), "norms");
        // Q, K and V: one split per layer, which adds their biases; the biases of the other projections are still broadcast
        // before their GEMMs (GPT-2's c_proj, c_fc and mlp c_proj; Qwen3's o_proj with attention_bias).
        Assert.That(launches.Of(".CopyColumns"), Is.EqualTo(layers), "q/k/v splits");
        int otherBiases = gpt2 ? 3 : config.HasOutputBias ? 1 : 0;
        Assert.That(launches.Of(".BroadcastBias"), Is.EqualTo(otherBiases * layers), "bias broadcasts");
        // RoPE rotates q and k in one launch.
        Assert.That(launches.Of(".Rope"), Is.EqualTo(gpt2 ? 0 : layers), "RoPE");
        // GEMMs: q/k/v as one, o_proj, the MLP's up (gate_proj and up_proj as one) and down, per layer; then the LM head.
        Assert.That(launches.Of("MatmulKernels.Matmul"), Is.EqualTo(4 * layers + 1), "GEMMs");
        Assert.That(launches.Of(".SwiGluForward"), Is.EqualTo(gpt2 ? 0 : layers), "SwiGLU");
    }
}

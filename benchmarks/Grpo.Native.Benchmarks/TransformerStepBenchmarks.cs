using BenchmarkDotNet.Attributes;
using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;
using Grpo.Native.Losses;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Training;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// A whole training step of the hand-built transformer: forward over 64 packed sequences of 96 tokens
/// (M = 6144), next-token cross-entropy through the fused gather, backward, global-norm clipping and
/// AdamW. Two models of about the same size: GPT-2 (C = 128, 4 layers, 4 heads, MLP 512, V = 512,
/// 128 positions: 0.88 M parameters) and Llama (C = 128, 4 layers, 4 heads with 2 kv heads, SwiGLU 352,
/// V = 512, tied: 0.80 M parameters). FLOPs from <see cref="TransformerCost"/>: GPT-2 forward
/// 11.08 GFLOP (step 3×: 33.2 GFLOP), Llama forward 10.48 GFLOP (step 31.4 GFLOP);
/// GFLOP/s = flops / mean, tokens/s = 6144 / mean.
/// </summary>
[MemoryDiagnoser]
public class TransformerStepBenchmarks
{
    private const int Sequences = 64, Length = 96;
    private Device _device = null!;
    private TransformerModel _model = null!;
    private TokenBatch _batch = null!;
    private TransformerActivations _activations = null!;
    private NextTokenLoss _loss = null!;
    private Grpo.Native.Tensors.Tensor<float> _dHidden = null!;
    private AdamWOptimizer _optimizer = null!;

    /// <summary>The managed CPU backend, and CUDA when a GPU is visible.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.Devices();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    /// <summary>The model family.</summary>
    [Params("gpt2", "llama")]
    public string Family { get; set; } = "gpt2";

    /// <summary>The benchmark's GPT-2 or Llama configuration.</summary>
    public static ModelConfig Config(string family) => family == "gpt2"
        ? new ModelConfig
        {
            ModelType = "gpt2", VocabSize = 512, HiddenSize = 128, NumLayers = 4, NumHeads = 4, NumKeyValueHeads = 4,
            IntermediateSize = 512, MaxPositions = 128, NormEpsilon = 1e-5, TieWordEmbeddings = true,
        }
        : new ModelConfig
        {
            ModelType = "llama", VocabSize = 512, HiddenSize = 128, NumLayers = 4, NumHeads = 4, NumKeyValueHeads = 2,
            IntermediateSize = 352, MaxPositions = 128, NormEpsilon = 1e-5, TieWordEmbeddings = true,
        };

    [GlobalSetup]
    public void Setup()
    {
        var config = Config(Family);
        _device = Device.Create(Backend);
        _model = TransformerModel.CreateRandom(_device, config, seed: 1);
        var random = new Random(42);
        var sequences = Enumerable.Range(0, Sequences)
            .Select(_ => Enumerable.Range(0, Length).Select(_ => random.Next(config.VocabSize)).ToArray()).ToArray();
        _batch = TokenBatch.Create(_device, sequences, config.VocabSize, config.MaxPositions);
        _activations = _model.CreateActivations(_batch.TokenCount);
        _loss = new NextTokenLoss(_device, _batch.TokenCount);
        _dHidden = _device.Allocate<float>(_batch.TokenCount, config.HiddenSize);
        _optimizer = new AdamWOptimizer(_device, _model.Parameters.Count, new AdamWOptions());
        Console.WriteLine($"// {Family}: {_model.Parameters.Count} parameters, step {TransformerCost.TrainingFlops(config, Enumerable.Repeat(Length, Sequences)) / 1e9:F1} GFLOP, activations {_activations.Memory}");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _optimizer.Dispose();
        _dHidden.Dispose();
        _loss.Dispose();
        _activations.Dispose();
        _batch.Dispose();
        _model.Dispose();
        _device.Dispose();
    }

    /// <summary>Forward only (the reference-model and old-log-prob passes of GRPO).</summary>
    [Benchmark]
    public void Forward()
    {
        _model.Forward(_batch, _activations);
        _device.Synchronize();
    }

    /// <summary>Forward, loss, backward, clipping and AdamW.</summary>
    [Benchmark]
    public void TrainingStep()
    {
        _model.ZeroGradients();
        _dHidden.Fill(0f);
        var hidden = _model.Forward(_batch, _activations);
        _loss.Compute(_batch, hidden, _model.LmHead, _dHidden, _model.LmHeadGradient);
        _model.Backward(_batch, _activations, _dHidden);
        GradientClipping.ClipGlobalNorm(_device.Operations, _model.Gradients.Buffer, 1.0f);
        _optimizer.Step(_model.Parameters.Buffer, _model.Gradients.Buffer, 1e-4f);
        _device.Synchronize();
    }
}

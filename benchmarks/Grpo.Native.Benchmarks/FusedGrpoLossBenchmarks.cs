using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.Losses;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// The whole fused GRPO loss from hidden states: gather forward, objective,
/// gather backward. FLOPs per call: forward 2·M·V·C, backward 2·M·V·C (recomputed logits) + 4·M·V·C
/// (d hidden and d LM head) = 8·M·V·C in all, M = N·T tokens.
/// Memory: the unfused path would hold the (M, V) logits, M·V·4 bytes (and as much again for their
/// gradient); the fused path holds four (N, T) buffers and the gather scratch, printed at set-up.
/// </summary>
[MemoryDiagnoser]
public class FusedGrpoLossBenchmarks
{
    // 8 prompts × G = 8 completions × 32 tokens = 2048 token rows; 64 × 256 = 16384 rows costs 8× as much.
    private const int N = 64, T = 32, C = 128, V = 32000;

    private Device _device = null!;

    /// <summary>The managed CPU backend, and CUDA when a GPU is visible.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.Devices();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";
    private FusedGrpoLoss _loss = null!;
    private Tensor<float> _hidden = null!, _lmHead = null!, _mask = null!, _advantages = null!, _dHidden = null!, _dLmHead = null!;
    private Tensor<int> _tokens = null!;
    private readonly GrpoObjectiveOptions _options = new() { LossType = LossType.Dapo };

    [GlobalSetup]
    public void Setup()
    {
        _device = Device.Create(Backend);
        var random = new Random(1);
        float[] Uniform(int count, float scale) =>
            Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() - 0.5) * scale)).ToArray();
        _hidden = _device.FromArray<float>(Uniform(N * T * C, 2f), N, T, C);
        _lmHead = _device.FromArray<float>(Uniform(V * C, 0.2f), V, C);
        _tokens = _device.FromArray<int>(Enumerable.Range(0, N * T).Select(_ => random.Next(V)).ToArray(), N, T);
        _mask = _device.FromArray<float>(Enumerable.Repeat(1f, N * T).ToArray(), N, T);
        _advantages = _device.FromArray<float>(Uniform(N, 2f), N);
        _dHidden = _device.Allocate<float>(N, T, C);
        _dLmHead = _device.Allocate<float>(V, C);
        _loss = new FusedGrpoLoss(_device, N, T);

        long scratch = _device.Operations.LogSoftmaxGatherScratchBytes(N * T, V, C);
        long perToken = 4L * 4 * N * T; // the four (N, T) buffers of FusedGrpoLoss
        long unfused = 4L * N * T * V;
        Console.WriteLine($"// fused GRPO loss, M = {N * T} tokens, V = {V}, C = {C}: extra memory " +
                          $"{(scratch + perToken) / 1048576.0:F1} MiB (gather scratch {scratch / 1048576.0:F1} MiB) " +
                          $"vs {unfused / 1048576.0:F1} MiB for the unfused (M, V) logits alone");
    }

    [Benchmark]
    public float ForwardObjectiveBackward()
    {
        _dHidden.Fill(0);
        _dLmHead.Fill(0);
        // Compute returns host metrics, so it has synchronised with the device by the time it returns.
        return _loss.Compute(_hidden, _lmHead, _tokens, _mask, _advantages, null, null, 1f, _options, _dHidden, _dLmHead).Loss;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _loss.Dispose();
        foreach (var t in new[] { _hidden, _lmHead, _mask, _advantages, _dHidden, _dLmHead }) t.Dispose();
        _tokens.Dispose();
        _device.Dispose();
    }
}

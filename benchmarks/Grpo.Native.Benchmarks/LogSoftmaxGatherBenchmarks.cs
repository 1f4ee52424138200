using BenchmarkDotNet.Attributes;
using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// The fused log-softmax-gather at M = 2048 tokens, V = 32000, C = 128 (a GRPO batch of 64 x 256 =
/// 16384 tokens costs 8x this; the work is linear in M). FLOPs per call: forward 2·M·V·C = 16.8 G;
/// forward + backward = forward + recompute 2·M·V·C + backward 4·M·V·C = 8·M·V·C = 67.1 G.
/// GFLOP/s = flops / mean. Bytes: the unfused logits would be M·V·4 = 262 MB; the fused op's
/// scratch is printed at setup (managed CPU on 2 cores: 14.2 MB = one 96 x V logits chunk of
/// 12.3 MB, the split-K partial sums and the per-thread packing panels; ILGPU: a 64 MiB chunk).
/// The double reference is left out: it materialises the logits and needs minutes per call.
/// </summary>
[MemoryDiagnoser]
public class LogSoftmaxGatherBenchmarks
{
    private const int M = 2048, V = 32000, C = 128;
    private Device _device = null!;
    private Tensor<float> _hidden = null!, _lmHead = null!, _logprobs = null!, _lse = null!, _entropy = null!;
    private Tensor<float> _dLogprobs = null!, _dHidden = null!, _dLmHead = null!;
    private Tensor<int> _targets = null!;

    /// <summary>The managed CPU backend, and CUDA when a GPU is visible.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.Devices();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        _device = Device.Create(Backend);
        var random = new Random(42);
        _hidden = _device.FromArray<float>(BenchmarkData.Noise(random, M * C, 1f), M, C);
        _lmHead = _device.FromArray<float>(BenchmarkData.Noise(random, V * C, 0.2f), V, C);
        var ids = new int[M];
        for (int i = 0; i < M; i++) ids[i] = random.Next(V);
        _targets = _device.FromArray<int>(ids, M);
        _logprobs = _device.Allocate<float>(M);
        _lse = _device.Allocate<float>(M);
        _entropy = _device.Allocate<float>(M);
        _dLogprobs = _device.FromArray<float>(BenchmarkData.Noise(random, M, 1f), M);
        _dHidden = _device.Allocate<float>(M, C);
        _dLmHead = _device.Allocate<float>(V, C);
        _dHidden.Fill(0);
        _dLmHead.Fill(0);
        long scratch = _device.Operations.LogSoftmaxGatherScratchBytes(M, V, C);
        Console.WriteLine($"// {Backend}: fused scratch {scratch:N0} bytes vs unfused logits {4L * M * V:N0} bytes");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _hidden, _lmHead, _logprobs, _lse, _entropy, _dLogprobs, _dHidden, _dLmHead }) t.Dispose();
        _targets.Dispose();
        _device.Dispose();
    }

    /// <summary>Forward with entropy: 2·M·V·C flops.</summary>
    [Benchmark]
    public void Forward()
    {
        _device.Operations.LogSoftmaxGatherForward(_hidden, _lmHead, _targets, 0.7f, _logprobs, _lse, _entropy);
        _device.Synchronize();
    }

    /// <summary>Forward then backward (gradients keep accumulating; only the timing matters): 8·M·V·C flops.</summary>
    [Benchmark]
    public void ForwardBackward()
    {
        _device.Operations.LogSoftmaxGatherForward(_hidden, _lmHead, _targets, 0.7f, _logprobs, _lse, null);
        _device.Operations.LogSoftmaxGatherBackward(_hidden, _lmHead, _targets, 0.7f, _lse, _dLogprobs, _dHidden, _dLmHead);
        _device.Synchronize();
    }
}

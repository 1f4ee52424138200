using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// LayerNorm and RMSNorm over M = 4096 token rows of C = 896 channels (Qwen2.5-0.5B's hidden size).
/// Both are memory-bound: one (M, C) fp32 tensor is 14.7 MB, and the (C) weights and (M) statistics
/// are negligible. Bytes: a forward reads x and writes y (29.4 MB); a backward reads dy and x and
/// reads and writes dInput (58.7 MB), so forward + backward moves 88.1 MB. GB/s = bytes / mean.
/// Flops per element, for the record: LayerNorm forward ≈ 8 (sum; centre, square, add; centre,
/// scale, weight, bias) = 29.4 M, backward ≈ 17 = 62.4 M; RMSNorm forward ≈ 4 = 14.7 M, backward
/// ≈ 11 = 40.4 M. The double reference is left out: its backward builds each row's (C, C) Jacobian.
/// The residual add fused with RMSNorm reads x and the addend and writes the sum and y (58.7 MB); Add then RMSNorm moves
/// 73.4 MB (the add reads 2 and writes 1, the norm reads the sum back and writes y) in two passes (two launches on a GPU).
/// </summary>
[MemoryDiagnoser]
public class NormalizationBenchmarks
{
    private const int M = 4096, C = 896;
    private Device? _device;
    private Tensor<float> _input = null!, _weight = null!, _bias = null!, _output = null!, _mean = null!, _rstd = null!;
    private Tensor<float> _dOutput = null!, _dInput = null!, _dWeight = null!, _dBias = null!, _addend = null!, _sum = null!;

    /// <summary>The managed CPU backend and CUDA when a GPU is visible.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.Devices();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _device = Device.Create(Backend);
        _input = _device.FromArray<float>(BenchmarkData.Noise(random, M * C, 2, 3), M, C);
        _weight = _device.FromArray<float>(BenchmarkData.Noise(random, C, 0.3f, 1), C);
        _bias = _device.FromArray<float>(BenchmarkData.Noise(random, C, 0.5f, 0), C);
        _dOutput = _device.FromArray<float>(BenchmarkData.Noise(random, M * C, 1, 0), M, C);
        _addend = _device.FromArray<float>(BenchmarkData.Noise(random, M * C, 1, 0), M, C);
        _sum = _device.Allocate<float>(M, C);
        _output = _device.Allocate<float>(M, C);
        _mean = _device.Allocate<float>(M);
        _rstd = _device.Allocate<float>(M);
        _dInput = _device.Allocate<float>(M, C);
        _dWeight = _device.Allocate<float>(C);
        _dBias = _device.Allocate<float>(C);
        foreach (var t in new[] { _dInput, _dWeight, _dBias }) t.Fill(0);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_device is null) return;
        foreach (var t in new[] { _input, _weight, _bias, _output, _mean, _rstd, _dOutput, _dInput, _dWeight, _dBias, _addend, _sum }) t.Dispose();
        _device.Dispose();
    }

    /// <summary>LayerNorm forward: 29.4 MB.</summary>
    [Benchmark]
    public void LayerNormForward()
    {
        _device!.Operations.LayerNormForward(_output, _mean, _rstd, _input, _weight, _bias, 1e-5f);
        _device.Synchronize();
    }

    /// <summary>LayerNorm forward then backward (gradients keep accumulating; only the timing matters): 88.1 MB.</summary>
    [Benchmark]
    public void LayerNormForwardBackward()
    {
        _device!.Operations.LayerNormForward(_output, _mean, _rstd, _input, _weight, _bias, 1e-5f);
        _device.Operations.LayerNormBackward(_dInput, _dWeight, _dBias, _dOutput, _input, _weight, _mean, _rstd);
        _device.Synchronize();
    }

    /// <summary>RMSNorm forward: 29.4 MB.</summary>
    [Benchmark]
    public void RmsNormForward()
    {
        _device!.Operations.RmsNormForward(_output, _rstd, _input, _weight, 1e-6f);
        _device.Synchronize();
    }

    /// <summary>The residual add fused with RMSNorm (sum = x + addend, y = RMSNorm(sum)): 58.7 MB in one pass.</summary>
    [Benchmark]
    public void AddRmsNormForward()
    {
        _device!.Operations.AddRmsNormForward(_sum, _output, _rstd, _input, _addend, _weight, 1e-6f);
        _device.Synchronize();
    }

    /// <summary>The same as Add then RMSNorm, as the forward ran them before they were fused: 73.4 MB in two passes.</summary>
    [Benchmark]
    public void AddThenRmsNormForward()
    {
        _device!.Operations.Add(_sum, _input, _addend);
        _device.Operations.RmsNormForward(_output, _rstd, _sum, _weight, 1e-6f);
        _device.Synchronize();
    }

    /// <summary>RMSNorm forward then backward: 88.1 MB.</summary>
    [Benchmark]
    public void RmsNormForwardBackward()
    {
        _device!.Operations.RmsNormForward(_output, _rstd, _input, _weight, 1e-6f);
        _device.Operations.RmsNormBackward(_dInput, _dWeight, _dOutput, _input, _weight, _rstd);
        _device.Synchronize();
    }
}

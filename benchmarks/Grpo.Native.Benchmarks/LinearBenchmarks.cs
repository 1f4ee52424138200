using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// One attention projection of a GPT-2 small sized model over M = 2048 token rows: K = N = 768, with
/// a bias. Forward = 2·M·K·N = 2.416 GFLOP (plus M·N bias adds); backward = dInput and dWeight,
/// 2 · 2·M·K·N = 4.832 GFLOP, plus M·N for dBias; forward + backward = 7.25 GFLOP.
/// GFLOP/s = flops / mean. Bytes (each operand once): x 6.3 MB, W 2.4 MB, y and dy 6.3 MB each;
/// the forward moves 15 MB, the backward 30 MB: compute bound on every backend. The double
/// reference is left out: it would take minutes per iteration.
/// </summary>
[MemoryDiagnoser]
public class LinearBenchmarks
{
    private const int M = 2048, K = 768, N = 768;
    private Device _device = null!;
    private Tensor<float> _x = null!, _w = null!, _b = null!, _y = null!, _dy = null!, _dx = null!, _dw = null!, _db = null!;

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
        _x = _device.FromArray<float>(BenchmarkData.Noise(random, M * K, 1), M, K);
        _w = _device.FromArray<float>(BenchmarkData.Noise(random, N * K, 0.04f), N, K);
        _b = _device.FromArray<float>(BenchmarkData.Noise(random, N, 0.1f), N);
        _dy = _device.FromArray<float>(BenchmarkData.Noise(random, M * N, 1), M, N);
        _y = _device.Allocate<float>(M, N);
        _dx = _device.Allocate<float>(M, K);
        _dw = _device.Allocate<float>(N, K);
        _db = _device.Allocate<float>(N);
        foreach (var t in new[] { _dx, _dw, _db }) t.Fill(0);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _w, _b, _y, _dy, _dx, _dw, _db }) t.Dispose();
        _device.Dispose();
    }

    /// <summary>Forward with bias: 2.416 GFLOP.</summary>
    [Benchmark]
    public void Forward()
    {
        _device.Operations.LinearForward(_y, _x, _w, _b);
        _device.Synchronize();
    }

    /// <summary>Forward then backward with dInput and dBias (gradients keep accumulating; only the timing matters): 7.25 GFLOP.</summary>
    [Benchmark]
    public void ForwardBackward()
    {
        _device.Operations.LinearForward(_y, _x, _w, _b);
        _device.Operations.LinearBackward(_dx, _dw, _db, _dy, _x, _w);
        _device.Synchronize();
    }
}

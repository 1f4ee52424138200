using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// The element-wise ops at TinyLlama-like sizes: an MLP activation of M = 2048 tokens × 5632
/// intermediate channels (n = 11,534,336 floats, 46.1 MB per tensor; SwiGLU's fused gate|up rows are (M, 2I), two such
/// tensors) and RoPE, in one call, over queries of M = 2048 rows × 32 heads × D = 64 (4,194,304 floats, 16.8 MB) and keys
/// of 4 key-value heads (524,288 floats, 2.1 MB), positions 0..2047, θ = 10000. All are memory-bound,
/// so the figure of merit is bytes / mean: GELU forward reads 1 tensor and writes 1 (92.3 MB;
/// ≈ 25 flops and one exp per element, 0.29 GFLOP); GELU backward reads 3 and writes 1 (184.5 MB;
/// ≈ 35 flops and one exp); SwiGLU forward reads 2, writes 1 (138.4 MB; ≈ 15 flops and one exp);
/// SwiGLU backward reads 5, writes 2 (322.9 MB; ≈ 25 flops and one exp); Add reads 2, writes 1
/// in place (138.4 MB; 1 flop); RoPE reads and writes the queries and keys (37.7 MB) plus the 0.5 MB cos/sin
/// rows, 6 flops per pair (14.2 M flops). The double reference recomputes tanh/exp in double.
/// </summary>
[MemoryDiagnoser]
public class ActivationBenchmarks
{
    private const int M = 2048, Intermediate = 5632, N = M * Intermediate, Heads = 32, KeyHeads = 4, D = 64;
    private const float Theta = 10000f;
    private Device? _device;
    private Tensor<float> _x = null!, _up = null!, _gateUp = null!, _dOutput = null!, _output = null!, _grad = null!, _dGateUp = null!;
    private Tensor<float> _query = null!, _key = null!;
    private Tensor<int> _positions = null!;
    private double[] _xd = [], _upd = [], _gateUpd = [], _dOd = [], _queryd = [], _keyd = [];
    private int[] _pos = [];

    /// <summary>The managed CPU backend, CUDA when a GPU is visible, and the double reference.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.DevicesAndReference();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        float[] x = BenchmarkData.Noise(random, N, 3), up = BenchmarkData.Noise(random, N), dO = BenchmarkData.Noise(random, N);
        float[] q = BenchmarkData.Noise(random, M * Heads * D), k = BenchmarkData.Noise(random, M * KeyHeads * D);
        var gateUp = new float[2 * N]; // (M, 2I): each row x's row (the gates), then up's
        for (int r = 0; r < M; r++)
        {
            x.AsSpan(r * Intermediate, Intermediate).CopyTo(gateUp.AsSpan(2 * r * Intermediate));
            up.AsSpan(r * Intermediate, Intermediate).CopyTo(gateUp.AsSpan(2 * r * Intermediate + Intermediate));
        }
        _pos = Enumerable.Range(0, M).ToArray();
        if (Backend == BenchmarkBackends.Reference)
        {
            (_xd, _upd, _gateUpd, _dOd, _queryd, _keyd) = (ToDouble(x), ToDouble(up), ToDouble(gateUp), ToDouble(dO), ToDouble(q), ToDouble(k));
            return;
        }
        _device = Device.Create(Backend);
        _x = _device.FromArray<float>(x, M, Intermediate);
        _up = _device.FromArray<float>(up, M, Intermediate);
        _gateUp = _device.FromArray<float>(gateUp, M, 2 * Intermediate);
        _dOutput = _device.FromArray<float>(dO, M, Intermediate);
        _output = _device.Allocate<float>(M, Intermediate);
        _grad = _device.Allocate<float>(M, Intermediate);
        _dGateUp = _device.Allocate<float>(M, 2 * Intermediate);
        _query = _device.FromArray<float>(q, M, Heads, D);
        _key = _device.FromArray<float>(k, M, KeyHeads, D);
        _positions = _device.FromArray<int>(_pos, M);
        _output.Fill(0);
        _grad.Fill(0);
        _dGateUp.Fill(0);
        _device.Operations.Rope(_query, _key, _positions, Theta, inverse: false); // builds the cos/sin table outside the timing
    }

    private static double[] ToDouble(float[] values) => Array.ConvertAll(values, v => (double)v);

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_device is null) return;
        foreach (var t in new[] { _x, _up, _gateUp, _dOutput, _output, _grad, _dGateUp, _query, _key }) t.Dispose();
        _positions.Dispose();
        _device.Dispose();
    }

    /// <summary>GELU forward: 92.3 MB.</summary>
    [Benchmark]
    public void GeluForward()
    {
        if (_device is null) { ActivationsReference.GeluForward(_xd); return; }
        _device.Operations.GeluForward(_output, _x);
        _device.Synchronize();
    }

    /// <summary>GELU backward (gradients keep accumulating; only the timing matters): 184.5 MB.</summary>
    [Benchmark]
    public void GeluBackward()
    {
        if (_device is null) { ActivationsReference.GeluBackward(_dOd, _xd); return; }
        _device.Operations.GeluBackward(_grad, _dOutput, _x);
        _device.Synchronize();
    }

    /// <summary>SwiGLU forward on the (M, 2I) gate|up rows: 138.4 MB.</summary>
    [Benchmark]
    public void SwiGluForward()
    {
        if (_device is null) { ActivationsReference.SwiGluForward(_gateUpd, Intermediate); return; }
        _device.Operations.SwiGluForward(_output, _gateUp);
        _device.Synchronize();
    }

    /// <summary>SwiGLU backward into the (M, 2I) gate|up gradient: 322.9 MB.</summary>
    [Benchmark]
    public void SwiGluBackward()
    {
        if (_device is null) { ActivationsReference.SwiGluBackward(_dOd, _gateUpd, Intermediate); return; }
        _device.Operations.SwiGluBackward(_dGateUp, _dOutput, _gateUp);
        _device.Synchronize();
    }

    /// <summary>Residual add in place (output = a): 138.4 MB.</summary>
    [Benchmark]
    public void AddInPlace()
    {
        if (_device is null) { ActivationsReference.Add(_xd, _upd); return; }
        _device.Operations.Add(_output, _output, _up);
        _device.Synchronize();
    }

    /// <summary>RoPE of the queries and keys forward then inverse, one call each (the values return to where they started): 2 × 37.7 MB.</summary>
    [Benchmark]
    public void RopeForwardInverse()
    {
        if (_device is null)
        {
            var rotated = ActivationsReference.Rope(_queryd, _pos, M, Heads, D, Theta, inverse: false);
            ActivationsReference.Rope(rotated, _pos, M, Heads, D, Theta, inverse: true);
            var rotatedKeys = ActivationsReference.Rope(_keyd, _pos, M, KeyHeads, D, Theta, inverse: false);
            ActivationsReference.Rope(rotatedKeys, _pos, M, KeyHeads, D, Theta, inverse: true);
            return;
        }
        _device.Operations.Rope(_query, _key, _positions, Theta, inverse: false);
        _device.Operations.Rope(_query, _key, _positions, Theta, inverse: true);
        _device.Synchronize();
    }
}

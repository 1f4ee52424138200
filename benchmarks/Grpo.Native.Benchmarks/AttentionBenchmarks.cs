using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// Causal attention over B = 64 packed sequences of T = 96 tokens (M = 6144), H = KVH = 4 heads,
/// D = 32. FLOPs count the useful work over the causal half (T²/2 score pairs per sequence and head):
/// forward = 2 products (scores, P·V) · 2·D flops per pair = 4·B·H·(T²/2)·D = 151.0 M;
/// backward = 5 products (scores again, dP, dV, dQ, dK) = 10·B·H·(T²/2)·D = 377.5 M, so
/// forward + backward = 528.5 M. GFLOP/s = flops / mean. Bytes: q, k, v, output and dOutput are
/// M·H·D·4 = 3.1 MB each; the forward reads 3 and writes 1 (12.6 MB), the backward reads 6 and
/// writes 3 (28.3 MB). The double reference builds each sequence's full masked score matrix.
/// </summary>
[MemoryDiagnoser]
public class AttentionBenchmarks
{
    private const int B = 64, T = 96, M = B * T, H = 4, Kvh = 4, D = 32;
    private static readonly float Scale = 1f / MathF.Sqrt(D);
    private Device? _device;
    private Tensor<float> _q = null!, _k = null!, _v = null!, _output = null!, _lse = null!;
    private Tensor<float> _dOutput = null!, _dq = null!, _dk = null!, _dv = null!;
    private Tensor<int> _seqStarts = null!;
    private double[] _qd = [], _kd = [], _vd = [], _dOd = [];
    private int[] _starts = [];

    /// <summary>The managed CPU backend, CUDA when a GPU is visible, and the double reference.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.DevicesAndReference();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        float[] q = BenchmarkData.Noise(random, M * H * D), k = BenchmarkData.Noise(random, M * Kvh * D);
        float[] v = BenchmarkData.Noise(random, M * Kvh * D), dO = BenchmarkData.Noise(random, M * H * D);
        _starts = new int[B + 1];
        for (int b = 0; b < B; b++) _starts[b + 1] = _starts[b] + T;
        if (Backend == BenchmarkBackends.Reference)
        {
            (_qd, _kd, _vd, _dOd) = (ToDouble(q), ToDouble(k), ToDouble(v), ToDouble(dO));
            return;
        }
        _device = Device.Create(Backend);
        _q = _device.FromArray<float>(q, M, H, D);
        _k = _device.FromArray<float>(k, M, Kvh, D);
        _v = _device.FromArray<float>(v, M, Kvh, D);
        _dOutput = _device.FromArray<float>(dO, M, H, D);
        _seqStarts = _device.FromArray<int>(_starts, B + 1);
        _output = _device.Allocate<float>(M, H, D);
        _lse = _device.Allocate<float>(M, H);
        _dq = _device.Allocate<float>(M, H, D);
        _dk = _device.Allocate<float>(M, Kvh, D);
        _dv = _device.Allocate<float>(M, Kvh, D);
        foreach (var t in new[] { _dq, _dk, _dv }) t.Fill(0);
    }

    private static double[] ToDouble(float[] values) => Array.ConvertAll(values, x => (double)x);

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_device is null) return;
        foreach (var t in new[] { _q, _k, _v, _output, _lse, _dOutput, _dq, _dk, _dv }) t.Dispose();
        _seqStarts.Dispose();
        _device.Dispose();
    }

    /// <summary>Forward: 151.0 M flops.</summary>
    [Benchmark]
    public void Forward()
    {
        if (_device is null)
        {
            AttentionReference.Forward(_qd, _kd, _vd, _starts, M, H, Kvh, D, Scale);
            return;
        }
        _device.Operations.AttentionForward(_output, _lse, _q, _k, _v, _seqStarts, Scale);
        _device.Synchronize();
    }

    /// <summary>Forward then backward (gradients keep accumulating; only the timing matters): 528.5 M flops.</summary>
    [Benchmark]
    public void ForwardBackward()
    {
        if (_device is null)
        {
            AttentionReference.Forward(_qd, _kd, _vd, _starts, M, H, Kvh, D, Scale);
            AttentionReference.Backward(_qd, _kd, _vd, _dOd, _starts, M, H, Kvh, D, Scale);
            return;
        }
        _device.Operations.AttentionForward(_output, _lse, _q, _k, _v, _seqStarts, Scale);
        _device.Operations.AttentionBackward(_dq, _dk, _dv, _dOutput, _q, _k, _v, _output, _lse, _seqStarts, Scale);
        _device.Synchronize();
    }
}

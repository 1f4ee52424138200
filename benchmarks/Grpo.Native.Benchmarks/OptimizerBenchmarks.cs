using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// One AdamW step over P = 10M parameters in one contiguous buffer (llm.c style), and the global
/// gradient norm. AdamW is memory-bound: per call it reads p, g, m, v and writes p, m, v,
/// 7 · 4 · P = 280,000,000 bytes (28 bytes/param; GB/s = 0.28 / seconds), and does about 14·P FLOPs
/// (one sqrt and one divide per element among them). SumOfSquares reads 4·P = 40,000,000 bytes and
/// does 2·P FLOPs. The double reference is the baseline row.
/// </summary>
[MemoryDiagnoser]
public class OptimizerBenchmarks
{
    private const int P = 10_000_000;
    private static readonly AdamWOptions Options = new() { Beta1 = 0.9f, Beta2 = 0.95f, WeightDecay = 0.1f };
    private Device? _device;
    private Tensor<float> _p = null!, _g = null!, _m = null!, _v = null!;
    private double[] _pd = null!, _gd = null!, _md = null!, _vd = null!;
    private int _step;

    /// <summary>The managed CPU backend, CUDA when a GPU is visible, and the double reference.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.DevicesAndReference();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        var p = new float[P];
        var g = new float[P];
        for (int i = 0; i < P; i++)
        {
            p[i] = (random.NextSingle() - 0.5f) * 0.04f;
            g[i] = (random.NextSingle() - 0.5f) * 1e-3f;
        }
        if (Backend == BenchmarkBackends.Reference)
        {
            _pd = Array.ConvertAll(p, x => (double)x);
            _gd = Array.ConvertAll(g, x => (double)x);
            _md = new double[P];
            _vd = new double[P];
            return;
        }
        _device = Device.Create(Backend);
        _p = _device.FromArray<float>(p, P);
        _g = _device.FromArray<float>(g, P);
        _m = _device.Allocate<float>(P);
        _v = _device.Allocate<float>(P);
        _m.Fill(0);
        _v.Fill(0);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_device is null) return;
        foreach (var t in new[] { _p, _g, _m, _v }) t.Dispose();
        _device.Dispose();
    }

    /// <summary>One AdamW step; synchronises so asynchronous devices are timed fully.</summary>
    [Benchmark]
    public void AdamWStep()
    {
        int t = ++_step;
        if (_device is null)
        {
            OptimizerReference.AdamWStep(_pd, _gd, _md, _vd, t, 1e-4, Options.Beta1, Options.Beta2, Options.Epsilon, Options.WeightDecay);
            return;
        }
        _device.Operations.AdamWStep(_p, _g, _m, _v, t, 1e-4f, Options);
        _device.Synchronize();
    }

    /// <summary>The global gradient norm (the sum of squares reads back, so it synchronises).</summary>
    [Benchmark]
    public double SumOfSquares() =>
        _device is null ? OptimizerReference.SumOfSquares(_gd) : _device.Operations.SumOfSquares(_g);
}

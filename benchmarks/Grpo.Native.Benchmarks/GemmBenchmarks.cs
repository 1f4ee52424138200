using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using Grpo.Native.Cpu;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// The managed backend's blocked GEMM on 512³ fp32. One call is 2·512³ = 268,435,456 flops, so
/// GFLOP/s = 0.268 / (mean in seconds); it touches 3 · 512² · 4 = 3 MiB. The baseline computes the
/// same A·Bᵀ as one SIMD dot product (TensorPrimitives.Dot) per element of C.
/// </summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private const int N = 512;
    private float[] _a = [], _b = [], _c = [];
    private readonly ParallelOptions _parallelism = new();

    /// <summary>Which form of the product runs.</summary>
    [Params("A·Bᵀ", "A·B", "Aᵀ·B")]
    public string Form { get; set; } = "A·Bᵀ";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _a = new float[N * N];
        _b = new float[N * N];
        _c = new float[N * N];
        for (int i = 0; i < _a.Length; i++)
        {
            _a[i] = random.NextSingle() - 0.5f;
            _b[i] = random.NextSingle() - 0.5f;
        }
    }

    [Benchmark]
    public void Blocked()
    {
        switch (Form)
        {
            case "A·Bᵀ": CpuGemm.MultiplyTransposedB(_parallelism, N, N, N, _a, N, _b, N, _c, N, accumulate: false); break;
            case "A·B": CpuGemm.Multiply(_parallelism, N, N, N, _a, N, _b, N, _c, N, accumulate: false); break;
            default: CpuGemm.MultiplyTransposedA(_parallelism, N, N, N, _a, N, _b, N, _c, N, accumulate: false); break;
        }
    }

    [Benchmark(Baseline = true)]
    public void DotPerElement() =>
        Parallel.For(0, N, _parallelism, i =>
        {
            for (int j = 0; j < N; j++) _c[i * N + j] = TensorPrimitives.Dot(_a.AsSpan(i * N, N), _b.AsSpan(j * N, N));
        });
}

/// <summary>
/// The blocked GEMM on the shapes a transformer layer feeds it (a batch of 6144 tokens, model width 128):
/// the forward projections C = A·Bᵀ with A the tokens and B the weight, and the weight gradient
/// C = Aᵀ·B summed over the tokens (the long-K, split-K path). GFLOP/s = 2·M·N·K / mean.
/// </summary>
[MemoryDiagnoser]
public class GemmTransformerShapeBenchmarks
{
    private float[] _a = [], _b = [], _c = [];
    private int _m, _n, _k;
    private readonly ParallelOptions _parallelism = new();

    /// <summary>M x N x K and the form.</summary>
    [Params("6144x384x128 A·Bᵀ", "6144x128x512 A·Bᵀ", "384x128x6144 Aᵀ·B")]
    public string Shape { get; set; } = "6144x384x128 A·Bᵀ";

    [GlobalSetup]
    public void Setup()
    {
        int[] sizes = Shape.Split(' ')[0].Split('x').Select(int.Parse).ToArray();
        (_m, _n, _k) = (sizes[0], sizes[1], sizes[2]);
        var random = new Random(42);
        _a = new float[_m * _k];
        _b = new float[_n * _k];
        _c = new float[_m * _n];
        for (int i = 0; i < _a.Length; i++) _a[i] = random.NextSingle() - 0.5f;
        for (int i = 0; i < _b.Length; i++) _b[i] = random.NextSingle() - 0.5f;
    }

    [Benchmark]
    public void Blocked()
    {
        if (Shape.EndsWith("Aᵀ·B", StringComparison.Ordinal))
            CpuGemm.MultiplyTransposedA(_parallelism, _m, _n, _k, _a, _m, _b, _n, _c, _n, accumulate: false);
        else
            CpuGemm.MultiplyTransposedB(_parallelism, _m, _n, _k, _a, _k, _b, _k, _c, _n, accumulate: false);
    }
}

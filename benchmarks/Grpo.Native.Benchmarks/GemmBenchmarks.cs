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

using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using Grpo.Native.Cpu;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// The blocked GEMM at a decode step's shapes of Qwen2.5-0.5B: M sequences (one row each) against a weight
/// stored (N, K), C = A·Bᵀ. At these M the product is bound by reading the weight once (N·K·4 bytes), so
/// the figure of merit is weight GB/s = N·K·4 / mean; <see cref="ReadWeightOnce"/> (a parallel sum of the
/// weight, nothing else) is that ceiling on the machine it runs on. Up to <see cref="CpuGemm.NarrowMaxRows"/>
/// rows the GEMM takes its narrow path; M = 64 is tiled. The baseline is one SIMD dot product per element
/// (weight row outer, so each row is read from memory once), which sums in another order.
/// </summary>
[MemoryDiagnoser]
public class GemmDecodeShapeBenchmarks
{
    private float[] _a = [], _b = [], _c = [];
    private int _n, _k;
    private readonly ParallelOptions _parallelism = new();

    /// <summary>Sequences decoded at once.</summary>
    [Params(1, 8, 16, 64)]
    public int M { get; set; }

    /// <summary>N x K of the weight.</summary>
    [Params("9728x896 gate|up", "896x4864 down", "151936x896 LM head")]
    public string Weight { get; set; } = "9728x896 gate|up";

    [GlobalSetup]
    public void Setup()
    {
        int[] sizes = Weight.Split(' ')[0].Split('x').Select(int.Parse).ToArray();
        (_n, _k) = (sizes[0], sizes[1]);
        var random = new Random(42);
        _a = BenchmarkData.Noise(random, M * _k);  // (M, K)
        _b = BenchmarkData.Noise(random, _n * _k); // (N, K)
        _c = new float[M * _n];                     // (M, N)
    }

    [Benchmark]
    public void Blocked() => CpuGemm.MultiplyTransposedB(_parallelism, M, _n, _k, _a, _k, _b, _k, _c, _n, accumulate: false);

    [Benchmark(Baseline = true)]
    public void DotPerElement() =>
        Parallel.For(0, _n, _parallelism, j =>
        {
            var weightRow = _b.AsSpan(j * _k, _k);
            for (int i = 0; i < M; i++) _c[i * _n + j] = TensorPrimitives.Dot(_a.AsSpan(i * _k, _k), weightRow);
        });

    [Benchmark]
    public float ReadWeightOnce()
    {
        int workers = Environment.ProcessorCount, chunk = (_b.Length + workers - 1) / workers;
        var sums = new float[workers];
        Parallel.For(0, workers, _parallelism, w =>
            sums[w] = TensorPrimitives.Sum(_b.AsSpan(w * chunk, Math.Min(chunk, _b.Length - w * chunk))));
        return sums.Sum();
    }
}

using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// A decode step's q/k/v epilogue for one layer of Qwen2.5-0.5B (H = 14, KVH = 2, D = 64, with the bias, θ = 1e6) over
/// R = 64 rows (8 prompts × 8 completions) into caches of S = 64 slots × L = 1024 positions, each row at position 700:
/// <c>SplitIntoKvCache</c> against the three operations it replaces (SplitColumns with the bias, Rope of q and k,
/// KvCacheWrite). Bytes of the fused form: R·(H + 2·KVH)·D·4 = 295 KB of q|k|v read, the same written (q and the two cache
/// rows), plus the bias and 700's row of the (cos, sin) table; the three operations move it about twice over (the split
/// writes q, k and v, RoPE reads and writes q and k, the write reads k and v again). On a GPU the point is launches (one
/// instead of three); on the CPU it is a check that fusing costs nothing.
/// </summary>
[MemoryDiagnoser]
public class DecodeEpilogueBenchmarks
{
    private const int R = 64, H = 14, Kvh = 2, D = 64, S = 64, L = 1024, Position = 700, Width = (H + 2 * Kvh) * D;
    private static readonly RotaryEmbedding Rope = new(1e6f);
    private Device _device = null!;
    private Tensor<float> _qkv = null!, _bias = null!, _query = null!, _key = null!, _value = null!, _keyCache = null!, _valueCache = null!;
    private Tensor<int> _rows = null!, _slots = null!, _positions = null!;

    /// <summary>The managed CPU backend, and CUDA when a GPU is visible.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.Devices();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _device = Device.Create(Backend);
        _qkv = _device.FromArray<float>(BenchmarkData.Noise(random, R * Width), R, Width);   // (R, H·D + 2·KVH·D)
        _bias = _device.FromArray<float>(BenchmarkData.Noise(random, Width), Width);         // (H·D + 2·KVH·D)
        _query = _device.Allocate<float>(R, H, D);                      // (R, H, D)
        _key = _device.Allocate<float>(R, Kvh, D);                      // (R, KVH, D)
        _value = _device.Allocate<float>(R, Kvh, D);                    // (R, KVH, D)
        _keyCache = _device.Allocate<float>(S, L, Kvh, D);              // (S, L, KVH, D)
        _valueCache = _device.Allocate<float>(S, L, Kvh, D);            // (S, L, KVH, D)
        _rows = _device.FromArray<int>(Enumerable.Range(0, R).ToArray(), R);
        _slots = _device.FromArray<int>(Enumerable.Range(0, S).OrderBy(_ => random.Next()).Take(R).ToArray(), R);
        _positions = _device.FromArray<int>(Enumerable.Repeat(Position, R).ToArray(), R);
    }

    [Benchmark(Baseline = true, Description = "split, RoPE and cache write apart")]
    public void Apart()
    {
        var ops = _device.Operations;
        ops.SplitColumns(_qkv, _query.Reshape(R, H * D), _key.Reshape(R, Kvh * D), _value.Reshape(R, Kvh * D), _bias);
        ops.Rope(_query, _key, _positions, Rope.Theta, inverse: false);
        ops.KvCacheWrite(_keyCache, _valueCache, _key, _value, _rows, _slots, _positions);
        _device.Synchronize();
    }

    [Benchmark(Description = "SplitIntoKvCache")]
    public void Fused()
    {
        _device.Operations.SplitIntoKvCache(_qkv, _bias, _query, _keyCache, _valueCache, _slots, _positions, Rope);
        _device.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new Tensor<float>[] { _qkv, _bias, _query, _key, _value, _keyCache, _valueCache }) t.Dispose();
        foreach (var t in new[] { _rows, _slots, _positions }) t.Dispose();
        _device.Dispose();
    }
}

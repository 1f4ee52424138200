using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// Batched KV-cache decoding for a rollout of B = 8 prompts × G = 8 completions: S = R = 64 slots of
/// capacity L = 1024, H = 8 query heads over KVH = 2 kv heads, D = 64 (caches 33.6 MB each).
/// Decode: every row attends to 768 cached positions; flops = 4·R·H·768·D = 100.7 M (scores and P·V,
/// 2·D each per position and head); bytes = the attended keys and values, R·768·KVH·D·4·2 = 50.3 MB
/// (each kv row serves H / KVH = 4 query heads, counted once), plus 0.26 MB of queries and outputs.
/// GFLOP/s = flops / mean; GB/s = bytes / mean (decode is bandwidth-bound: 2 flops per byte).
/// FanOut: the prefill's 8 × 256 prompt rows to the 8 slots of each group, W = 16384 writes of
/// KVH·D = 128 floats for keys and values: reads 16.8 MB, writes 16.8 MB.
/// Step: one decode step's W = 64 writes, 65.5 KB each way: launch and index-validation latency.
/// The reference's write copies both double caches first (134 MB), so its write rows measure that copy.
/// </summary>
[MemoryDiagnoser]
public class KvCacheBenchmarks
{
    private const int B = 8, G = 8, R = B * G, S = R, L = 1024, H = 8, Kvh = 2, D = 64, Length = 768, Prompt = 256;
    private static readonly float Scale = 1f / MathF.Sqrt(D);
    private Device? _device;
    private Tensor<float> _query = null!, _output = null!, _keyCache = null!, _valueCache = null!;
    private Tensor<float> _promptKey = null!, _promptValue = null!, _stepKey = null!, _stepValue = null!;
    private Tensor<int> _slots = null!, _lengths = null!, _fanRows = null!, _fanSlots = null!, _fanPositions = null!;
    private Tensor<int> _stepRows = null!, _stepPositions = null!;
    private double[] _qd = [], _kcd = [], _vcd = [], _pkd = [], _pvd = [], _skd = [], _svd = [];
    private int[] _slotOf = [], _lengthOf = [], _fanRowOf = [], _fanSlotOf = [], _fanPositionOf = [], _stepRowOf = [], _stepPositionOf = [];

    /// <summary>The managed CPU backend, CUDA when a GPU is visible, and the double reference.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.DevicesAndReference();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        float[] q = BenchmarkData.Noise(random, R * H * D);
        float[] kc = BenchmarkData.Noise(random, S * L * Kvh * D), vc = BenchmarkData.Noise(random, S * L * Kvh * D);
        float[] pk = BenchmarkData.Noise(random, B * Prompt * Kvh * D), pv = BenchmarkData.Noise(random, B * Prompt * Kvh * D);
        float[] sk = BenchmarkData.Noise(random, R * Kvh * D), sv = BenchmarkData.Noise(random, R * Kvh * D);
        // Slots in a shuffled order, as a rollout that reuses finished slots would have them.
        _slotOf = Enumerable.Range(0, S).OrderBy(_ => random.Next()).ToArray();
        _lengthOf = Enumerable.Repeat(Length, R).ToArray();
        var fan = (from c in Enumerable.Range(0, R) from j in Enumerable.Range(0, Prompt)
                   select (Row: c / G * Prompt + j, Slot: _slotOf[c], Position: j)).ToArray();
        (_fanRowOf, _fanSlotOf, _fanPositionOf) = (fan.Select(f => f.Row).ToArray(), fan.Select(f => f.Slot).ToArray(), fan.Select(f => f.Position).ToArray());
        _stepRowOf = Enumerable.Range(0, R).ToArray();
        _stepPositionOf = Enumerable.Repeat(Length - 1, R).ToArray();
        if (Backend == BenchmarkBackends.Reference)
        {
            (_qd, _kcd, _vcd) = (ToDouble(q), ToDouble(kc), ToDouble(vc));
            (_pkd, _pvd, _skd, _svd) = (ToDouble(pk), ToDouble(pv), ToDouble(sk), ToDouble(sv));
            return;
        }
        _device = Device.Create(Backend);
        _query = _device.FromArray<float>(q, R, H, D);
        _output = _device.Allocate<float>(R, H, D);
        _keyCache = _device.FromArray<float>(kc, S, L, Kvh, D);
        _valueCache = _device.FromArray<float>(vc, S, L, Kvh, D);
        _promptKey = _device.FromArray<float>(pk, B * Prompt, Kvh, D);
        _promptValue = _device.FromArray<float>(pv, B * Prompt, Kvh, D);
        _stepKey = _device.FromArray<float>(sk, R, Kvh, D);
        _stepValue = _device.FromArray<float>(sv, R, Kvh, D);
        _slots = _device.FromArray<int>(_slotOf, R);
        _lengths = _device.FromArray<int>(_lengthOf, R);
        _fanRows = _device.FromArray<int>(_fanRowOf, fan.Length);
        _fanSlots = _device.FromArray<int>(_fanSlotOf, fan.Length);
        _fanPositions = _device.FromArray<int>(_fanPositionOf, fan.Length);
        _stepRows = _device.FromArray<int>(_stepRowOf, R);
        _stepPositions = _device.FromArray<int>(_stepPositionOf, R);
    }

    private static double[] ToDouble(float[] values) => Array.ConvertAll(values, x => (double)x);

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_device is null) return;
        foreach (var t in new[] { _query, _output, _keyCache, _valueCache, _promptKey, _promptValue, _stepKey, _stepValue }) t.Dispose();
        foreach (var t in new[] { _slots, _lengths, _fanRows, _fanSlots, _fanPositions, _stepRows, _stepPositions }) t.Dispose();
        _device.Dispose();
    }

    /// <summary>AttentionDecode of 64 rows over 768 positions: 100.7 M flops, 50.3 MB of cache read.</summary>
    [Benchmark]
    public void Decode()
    {
        if (_device is null)
        {
            KvCacheReference.Decode(_qd, _kcd, _vcd, _slotOf, _lengthOf, H, Kvh, D, L, Scale);
            return;
        }
        _device.Operations.AttentionDecode(_output, _query, _keyCache, _valueCache, _slots, _lengths, Scale);
        _device.Synchronize();
    }

    /// <summary>The prefill fan-out: 16384 row writes, 16.8 MB read and 16.8 MB written.</summary>
    [Benchmark]
    public void FanOut()
    {
        if (_device is null)
        {
            KvCacheReference.Write(_kcd, _vcd, _pkd, _pvd, _fanRowOf, _fanSlotOf, _fanPositionOf, L, Kvh, D);
            return;
        }
        _device.Operations.KvCacheWrite(_keyCache, _valueCache, _promptKey, _promptValue, _fanRows, _fanSlots, _fanPositions);
        _device.Synchronize();
    }

    /// <summary>One decode step's writes: 64 rows, 65.5 KB each way.</summary>
    [Benchmark]
    public void Step()
    {
        if (_device is null)
        {
            KvCacheReference.Write(_kcd, _vcd, _skd, _svd, _stepRowOf, _slotOf, _stepPositionOf, L, Kvh, D);
            return;
        }
        _device.Operations.KvCacheWrite(_keyCache, _valueCache, _stepKey, _stepValue, _stepRows, _slots, _stepPositions);
        _device.Synchronize();
    }
}

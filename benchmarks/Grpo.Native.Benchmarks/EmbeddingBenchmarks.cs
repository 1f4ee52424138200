using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// GPT-2 token and position embeddings for B = 64 sequences of T = 96 tokens (M = 6144), C = 768,
/// V = 50257, P = 1024, token ids drawn from 5000 distinct values (as a real batch repeats tokens).
/// No FLOPs to speak of (one add per element); it is a memory-bound gather and scatter. Bytes: the
/// forward reads M rows of each table and writes M rows, 3·M·C·4 = 56.6 MB; the backward reads dy
/// twice (18.9 MB each) and reads and writes each touched table row once (the position table's
/// 96 rows, up to 5000 token rows: ≤ 31 MB), plus the (M) ids and positions downloaded and the row
/// lists built and uploaded on the host.
/// </summary>
[MemoryDiagnoser]
public class EmbeddingBenchmarks
{
    private const int B = 64, T = 96, M = B * T, C = 768, V = 50257, P = 1024, Distinct = 5000;
    private Device? _device;
    private Tensor<int> _ids = null!, _positions = null!;
    private Tensor<float> _wte = null!, _wpe = null!, _y = null!, _dy = null!, _dWte = null!, _dWpe = null!;
    private int[] _idHost = [], _positionHost = [];
    private double[] _wteD = [], _wpeD = [], _dyD = [];

    /// <summary>The managed CPU backend, CUDA when a GPU is visible, and the double reference.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.DevicesAndReference();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _idHost = Enumerable.Range(0, M).Select(_ => random.Next(Distinct) * (V / Distinct)).ToArray();
        _positionHost = Enumerable.Range(0, M).Select(m => m % T).ToArray();
        float[] wte = BenchmarkData.Noise(random, V * C), wpe = BenchmarkData.Noise(random, P * C), dy = BenchmarkData.Noise(random, M * C);
        if (Backend == BenchmarkBackends.Reference)
        {
            (_wteD, _wpeD, _dyD) = (ToDouble(wte), ToDouble(wpe), ToDouble(dy));
            return;
        }
        _device = Device.Create(Backend);
        _ids = _device.FromArray<int>(_idHost, M);
        _positions = _device.FromArray<int>(_positionHost, M);
        _wte = _device.FromArray<float>(wte, V, C);
        _wpe = _device.FromArray<float>(wpe, P, C);
        _dy = _device.FromArray<float>(dy, M, C);
        _y = _device.Allocate<float>(M, C);
        _dWte = _device.Allocate<float>(V, C);
        _dWpe = _device.Allocate<float>(P, C);
        _dWte.Fill(0);
        _dWpe.Fill(0);
    }

    private static double[] ToDouble(float[] values) => Array.ConvertAll(values, x => (double)x);

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_device is null) return;
        foreach (var t in new[] { _wte, _wpe, _y, _dy, _dWte, _dWpe }) t.Dispose();
        _ids.Dispose();
        _positions.Dispose();
        _device.Dispose();
    }

    /// <summary>Forward with learned positions: 56.6 MB moved.</summary>
    [Benchmark]
    public void Forward()
    {
        if (_device is null)
        {
            EmbeddingReference.Forward(_idHost, _wteD, _positionHost, _wpeD, C);
            return;
        }
        _device.Operations.EmbeddingForward(_y, _ids, _wte, _positions, _wpe);
        _device.Synchronize();
    }

    /// <summary>Backward into both tables (gradients keep accumulating; only the timing matters).</summary>
    [Benchmark]
    public void Backward()
    {
        if (_device is null)
        {
            EmbeddingReference.Backward(_idHost, _dyD, V, C);
            EmbeddingReference.Backward(_positionHost, _dyD, P, C);
            return;
        }
        _device.Operations.EmbeddingBackward(_dWte, _dWpe, _dy, _ids, _positions);
        _device.Synchronize();
    }
}

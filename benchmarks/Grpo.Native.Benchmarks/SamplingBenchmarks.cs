using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// SampleTokens on a decoding batch: 64 rows × 32,000 vocabulary, plain and with top-p 0.9.
/// Bytes read per call from memory: R·V·4 = 8,192,000 (each row is then re-read from cache by the
/// per-row passes: max, normaliser, ~32 bisection passes for top-p, Gumbel). GB/s = 8.192e6 / mean.
/// Work per element, plain: 1 multiply, 1 exp, 1 hash (2 64-bit multiplies), 2 logs, ~6 compares/adds;
/// top-p adds ~32 masked adds. The reference (double, sort-based filters) is the baseline row.
/// </summary>
[MemoryDiagnoser]
public class SamplingBenchmarks
{
    private const int Rows = 64, Vocab = 32000;

    private Device? _device;
    private Tensor<float> _logits = null!; // (R, V)
    private Tensor<int> _tokens = null!; // (R)
    private Tensor<float> _logprobs = null!; // (R)
    private float[] _hostLogits = null!; // (R, V)
    private SamplingOptions _options = null!;
    private int _step;

    /// <summary>The managed CPU backend, CUDA when a GPU is visible, and the double reference.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.DevicesAndReference();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    /// <summary>1 turns top-p off.</summary>
    [Params(1.0f, 0.9f)]
    public float TopP { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _hostLogits = new float[Rows * Vocab];
        // Logit-like rows: a normal spread of 3 gives a realistic long tail for top-p to cut.
        for (int i = 0; i < _hostLogits.Length; i++)
            _hostLogits[i] = (float)(3 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        _device = Device.Create(Backend == BenchmarkBackends.Reference ? "cpu" : Backend);
        _logits = _device.FromArray<float>(_hostLogits, Rows, Vocab);
        _tokens = _device.Allocate<int>(Rows);
        _logprobs = _device.Allocate<float>(Rows);
        _options = new SamplingOptions { Temperature = 0.8f, TopP = TopP };
    }

    [Benchmark]
    public int Sample()
    {
        int step = _step++;
        if (Backend == "reference")
            return SamplingReference.Sample(_hostLogits, Rows, Vocab, _options.Temperature, _options.TopK, _options.TopP,
                _options.MinP, 7, step)[0].Token;
        _device!.Operations.SampleTokens(_logits, _options, 7, step, _tokens, _logprobs);
        _device.Synchronize(); // CUDA launches are asynchronous
        return step;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _logits.Dispose();
        _tokens.Dispose();
        _logprobs.Dispose();
        _device?.Dispose();
    }
}

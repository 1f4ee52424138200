using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// The GRPO objective with its gradient at N = 512 completions (64 prompts × 8), T = 256 tokens
/// (N·T = 131,072 tokens), dapo, token-level and GSPO sequence-level ratios, β = 0 and β = 0.04.
/// Bytes per call: reads logprobs, old logprobs and mask (3·N·T·4 = 1,572,864) plus the reference
/// log-probs when β &gt; 0 (+524,288), writes dLogprobs (524,288): 2.10 MB (β = 0) or 2.62 MB
/// (β &gt; 0); the managed CPU backend reads the mask a second time (+524,288). FLOPs per token
/// ≈ 12 for the ratio and clipped surrogate (counting exp as one) + 10 with the KL term:
/// ≈ 1.6 MFLOP (β = 0) or 2.9 MFLOP (β &gt; 0) per call. The kernel is memory-bound: read GB/s
/// = bytes / mean. The double reference is the baseline row.
/// </summary>
[MemoryDiagnoser]
public class GrpoObjectiveBenchmarks
{
    private const int N = 512, T = 256;
    private Device? _device;
    private Tensor<float> _logp = null!, _old = null!, _ref = null!, _advantages = null!, _mask = null!, _dLogp = null!;
    private double[] _logpD = null!, _oldD = null!, _refD = null!, _advantagesD = null!, _maskD = null!;
    private GrpoObjectiveOptions _options = null!;

    /// <summary>The managed CPU backend, CUDA when a GPU is visible, and the double reference.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.DevicesAndReference();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    /// <summary>Token-level ratios or GSPO's sequence-level ratio.</summary>
    [Params(ImportanceSamplingLevel.Token, ImportanceSamplingLevel.Sequence)]
    public ImportanceSamplingLevel Level { get; set; }

    /// <summary>KL weight: 0 reads no reference log-probs.</summary>
    [Params(0f, 0.04f)]
    public float Beta { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        float Noise(float scale) => scale * (random.NextSingle() + random.NextSingle() + random.NextSingle() - 1.5f);
        var logp = new float[N * T];
        var old = new float[N * T];
        var reference = new float[N * T];
        var mask = new float[N * T];
        var advantages = new float[N];
        for (int i = 0; i < N; i++)
        {
            advantages[i] = Noise(2f);
            int length = random.Next(T / 4, T + 1); // ragged completions, as sampled
            for (int c = 0; c < T; c++)
            {
                int k = i * T + c;
                logp[k] = -2f * MathF.Abs(Noise(1f)) - 0.01f;
                old[k] = logp[k] + Noise(0.3f);
                reference[k] = logp[k] + Noise(0.3f);
                mask[k] = c < length ? 1f : 0f;
            }
        }
        _options = new GrpoObjectiveOptions { LossType = LossType.Dapo, ImportanceSamplingLevel = Level, Beta = Beta };
        if (Backend == "reference")
        {
            _logpD = Array.ConvertAll(logp, v => (double)v);
            _oldD = Array.ConvertAll(old, v => (double)v);
            _refD = Array.ConvertAll(reference, v => (double)v);
            _maskD = Array.ConvertAll(mask, v => (double)v);
            _advantagesD = Array.ConvertAll(advantages, v => (double)v);
            return;
        }
        _device = Device.Create(Backend);
        _logp = _device.FromArray<float>(logp, N, T);
        _old = _device.FromArray<float>(old, N, T);
        _ref = _device.FromArray<float>(reference, N, T);
        _mask = _device.FromArray<float>(mask, N, T);
        _advantages = _device.FromArray<float>(advantages, N);
        _dLogp = _device.Allocate<float>(N, T);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_device is null) return;
        foreach (var t in new[] { _logp, _old, _ref, _advantages, _mask, _dLogp }) t.Dispose();
        _device.Dispose();
    }

    /// <summary>Loss, metrics and dLogprobs; the scalars come back to the host, so it includes the synchronisation.</summary>
    [Benchmark]
    public float Objective()
    {
        if (_device is null)
        {
            var options = new GrpoReferenceOptions("dapo", _options.EpsilonLow, _options.EffectiveEpsilonHigh, Beta,
                Level == ImportanceSamplingLevel.Sequence, 0);
            return (float)GrpoObjectiveReference.Compute(_logpD, _oldD, _refD, _advantagesD, _maskD, N, T, options).Loss;
        }
        return _device.Operations.GrpoObjective(_logp, _old, Beta > 0 ? _ref : null, _advantages, _mask, _options, _dLogp).Loss;
    }
}

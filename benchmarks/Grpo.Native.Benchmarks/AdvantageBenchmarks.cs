using BenchmarkDotNet.Attributes;
using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// ComputeAdvantages at N = 4096 completions (512 prompts × G = 8), F = 3 reward functions.
/// Per call: reads N·F·4 = 49,152 bytes of rewards, writes rewards and advantages (2·N·4 = 32,768)
/// and the group mean and std (2·(N/G)·4 = 4,096): 86,016 bytes of tensor traffic, plus re-reads
/// of the (N) rewards for the group and batch passes (L1/L2-resident). FLOPs ≈ 2·N·F (weighted
/// sums) + 4·N (group mean, centred squares) + 4·N (batch) + 2·N (centre, scale) ≈ 65,536.
/// The ILGPU backend also copies the (N, F) input to the host (the infinity check) and reads back
/// four scalars, so it synchronises. The double reference is the baseline row.
/// </summary>
[MemoryDiagnoser]
public class AdvantageBenchmarks
{
    private const int N = 4096, F = 3, G = 8;
    private Device? _device;
    private Tensor<float> _input = null!, _rewards = null!, _advantages = null!, _mean = null!, _std = null!;
    private float[] _weights = null!;
    private double[] _inputDouble = null!, _weightsDouble = null!;

    /// <summary>The managed CPU backend, CUDA when a GPU is visible, and the double reference.</summary>
    public static IEnumerable<string> Backends() => BenchmarkBackends.DevicesAndReference();

    /// <summary>The backend under test.</summary>
    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "cpu";

    /// <summary>Group, batch or no scaling.</summary>
    [Params(RewardScaling.Group, RewardScaling.Batch)]
    public RewardScaling Scaling { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        var input = new float[N * F];
        for (int k = 0; k < input.Length; k++)
            input[k] = random.NextDouble() < 0.02 ? float.NaN : MathF.Round(random.NextSingle() * 4) / 4; // coarse scores: some flat groups
        _weights = [1f, 0.5f, 0.25f];
        _inputDouble = Array.ConvertAll(input, v => (double)v);
        _weightsDouble = Array.ConvertAll(_weights, v => (double)v);
        if (Backend == "reference") return;
        _device = Device.Create(Backend);
        _input = _device.FromArray<float>(input, N, F);
        _rewards = _device.Allocate<float>(N);
        _advantages = _device.Allocate<float>(N);
        _mean = _device.Allocate<float>(N / G);
        _std = _device.Allocate<float>(N / G);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_device is null) return;
        foreach (var t in new[] { _input, _rewards, _advantages, _mean, _std }) t.Dispose();
        _device.Dispose();
    }

    /// <summary>One call; the statistics come back to the host, so it includes the synchronisation.</summary>
    [Benchmark]
    public float ComputeAdvantages()
    {
        if (_device is null)
            return (float)AdvantageReference.Compute(_inputDouble, _weightsDouble, G, Scaling.ToString().ToLowerInvariant()).FracRewardZeroStd;
        return _device.Operations.ComputeAdvantages(_input, _weights, G, Scaling, _rewards, _advantages, _mean, _std).FracRewardZeroStd;
    }
}

using System.Diagnostics;
using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Cli;

/// <summary>One timed GEMM shape: forward y = x·Wᵀ (2MNK FLOPs) and backward dX += dY·W, dW += dYᵀ·X (4MNK).</summary>
internal sealed record GemmTiming(string Shape, int M, int N, int K, double ForwardSeconds, double BackwardSeconds)
{
    public double ForwardTflops => 2.0 * M * N * K / ForwardSeconds / 1e12;

    public double BackwardTflops => 4.0 * M * N * K / BackwardSeconds / 1e12;
}

internal static partial class SelfCheck
{
    /// <summary>
    /// The projections' GEMMs at the shapes of a GPT-2-small and a Qwen2.5-0.5B step (4,096 tokens; the LM head on a
    /// 1,024-token gather chunk), a decode step's (64 sequences) and 4096³, timed on the device through the backend's own
    /// linear operations (cuBLAS or the ILGPU kernel, whichever the device uses). On the simulator every dimension is
    /// divided by 64: the figures then only show that the table runs.
    /// </summary>
    public static IReadOnlyList<GemmTiming> GemmTimings(Device device)
    {
        int scale = device.Kind == DeviceKind.Cuda ? 1 : 64;
        var shapes = new (string Name, int M, int N, int K)[]
        {
            ("square 4096³", 4096, 4096, 4096),
            ("gpt2-small qkv", 4096, 2304, 768),
            ("gpt2-small mlp up", 4096, 3072, 768),
            ("gpt2-small mlp down", 4096, 768, 3072),
            ("gpt2-small lm head (chunk)", 1024, 50257, 768),
            ("qwen2.5-0.5b q", 4096, 896, 896),
            ("qwen2.5-0.5b kv", 4096, 128, 896),
            ("qwen2.5-0.5b gate/up", 4096, 4864, 896),
            ("qwen2.5-0.5b down", 4096, 896, 4864),
            ("qwen2.5-0.5b lm head (chunk)", 1024, 151936, 896),
            ("qwen2.5-0.5b decode q, 64 seqs", 64, 896, 896),
            ("qwen2.5-0.5b decode up, 64 seqs", 64, 4864, 896),
        };
        var random = new Random(1);
        var timings = new List<GemmTiming>();
        foreach (var (name, m0, n0, k0) in shapes)
        {
            int m = Math.Max(1, m0 / scale), n = Math.Max(1, n0 / scale), k = Math.Max(1, k0 / scale);
            using var x = device.FromArray<float>(Uniform(random, m * k), m, k);      // (M, K)
            using var w = device.FromArray<float>(Uniform(random, n * k), n, k);      // (N, K)
            using var y = device.Allocate<float>(m, n);                               // (M, N)
            using var dX = device.Allocate<float>(m, k);                              // (M, K)
            using var dW = device.Allocate<float>(n, k);                              // (N, K)
            double forward = Time(device, () => device.Operations.LinearForward(y, x, w, bias: null));
            double backward = Time(device, () => device.Operations.LinearBackward(dX, dW, null, y, x, w));
            timings.Add(new GemmTiming(scale == 1 ? name : $"{name} / {scale}", m, n, k, forward, backward));
        }
        return timings;
    }

    /// <summary>Seconds per call: one warm-up (compiles kernels, sizes scratch), then doubling repeats until 50 ms pass.</summary>
    private static double Time(Device device, Action call)
    {
        call();
        device.Synchronize();
        for (int repeats = 1; ; repeats *= 2)
        {
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < repeats; i++) call();
            device.Synchronize();
            if (clock.Elapsed.TotalSeconds >= 0.05 || repeats >= 64) return clock.Elapsed.TotalSeconds / repeats;
        }
    }

    private static float[] Uniform(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() - 0.5);
        return values;
    }
}

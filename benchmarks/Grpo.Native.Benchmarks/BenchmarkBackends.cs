using Grpo.Native.Ilgpu;

namespace Grpo.Native.Benchmarks;

/// <summary>
/// The backends a suite measures: the managed CPU backend, CUDA when a GPU is visible, and the
/// double-precision reference as a baseline row where it is not absurdly slow. The ILGPU CPU
/// simulator is left out: it exists to test kernels, and its timings mean nothing.
/// </summary>
public static class BenchmarkBackends
{
    /// <summary>The name of the reference row.</summary>
    public const string Reference = "reference";

    /// <summary>Device backends only.</summary>
    public static IEnumerable<string> Devices()
    {
        yield return "cpu";
        if (IlgpuDevice.IsCudaAvailable()) yield return "cuda";
    }

    /// <summary>Device backends and the reference.</summary>
    public static IEnumerable<string> DevicesAndReference() => Devices().Append(Reference);
}

using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

/// <summary>
/// The managed CPU backend: SIMD through System.Numerics.Tensors and Vector256, rows spread over
/// threads with Parallel.For. Operations run synchronously, so <see cref="Synchronize"/> has nothing to wait for.
/// </summary>
public sealed class CpuDevice : Device
{
    private readonly CpuOperations _operations;

    /// <summary>Creates the managed CPU backend.</summary>
    /// <param name="maxDegreeOfParallelism">Threads per operation; -1 uses every core.</param>
    public CpuDevice(int maxDegreeOfParallelism = -1)
    {
        if (maxDegreeOfParallelism == 0 || maxDegreeOfParallelism < -1)
            throw new ArgumentOutOfRangeException(nameof(maxDegreeOfParallelism), maxDegreeOfParallelism,
                "Use -1 for every core or a positive thread count.");
        Parallelism = new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism };
        _operations = new CpuOperations(this);
    }

    /// <inheritdoc />
    public override DeviceKind Kind => DeviceKind.Cpu;

    /// <inheritdoc />
    public override string Name => $"managed CPU ({Environment.ProcessorCount} cores, {SimdDescription})";

    /// <inheritdoc />
    public override IGrpoOperations Operations => _operations;

    internal ParallelOptions Parallelism { get; }

    private static string SimdDescription =>
        System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "AVX-512"
        : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "AVX2"
        : "128-bit SIMD";

    /// <inheritdoc />
    public override void Synchronize() { }


    /// <inheritdoc />
    public override void Dispose() { }
}

using System.Collections.Concurrent;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// Counts what the ILGPU backend asks of the accelerator: kernel launches, host↔device copies in each
/// direction, explicit synchronisations, allocations and frees. Every launch, copy and allocation in this
/// folder goes through <see cref="IlgpuDevice"/>, which counts here, so tests can assert bounds such as
/// "a decode step copies nothing to or from the host" and the bench can report them. On the CPU simulator
/// the counts are those CUDA would see: the same host code issues the same calls. Thread-safe.
/// </summary>
public sealed class DeviceStats
{
    private long _launches, _uploads, _downloads, _synchronizations, _allocations, _frees, _bytesAllocated, _reuses;
    private readonly ConcurrentDictionary<string, long> _launchesByKernel = new();

    /// <summary>Kernels queued.</summary>
    public long KernelLaunches => Interlocked.Read(ref _launches);

    /// <summary>Copies from host memory to the device.</summary>
    public long HostToDeviceCopies => Interlocked.Read(ref _uploads);

    /// <summary>Copies from the device to host memory; each one also waits for the work queued before it.</summary>
    public long DeviceToHostCopies => Interlocked.Read(ref _downloads);

    /// <summary>Explicit waits for the device (not counting the wait inside each device→host copy).</summary>
    public long Synchronizations => Interlocked.Read(ref _synchronizations);

    /// <summary>Device buffers allocated.</summary>
    public long Allocations => Interlocked.Read(ref _allocations);

    /// <summary>Device buffers freed (cuMemFree synchronises the device on CUDA).</summary>
    public long Frees => Interlocked.Read(ref _frees);

    /// <summary>Tensors given a cached buffer instead of a new allocation (see <see cref="IlgpuDevice.CachedBytes"/>).</summary>
    public long Reuses => Interlocked.Read(ref _reuses);

    /// <summary>Bytes of all device buffers allocated (not net of frees).</summary>
    public long BytesAllocated => Interlocked.Read(ref _bytesAllocated);

    /// <summary>
    /// The launches so far by kernel ("NormalizationKernels.RmsNormForward", "memset", "cuBLAS GEMM"): what
    /// <see cref="KernelLaunches"/> is made of, so a test can say which kernels a step runs and how often. A copy.
    /// </summary>
    public IReadOnlyDictionary<string, long> LaunchesByKernel() => new Dictionary<string, long>(_launchesByKernel);

    /// <summary>The counts now, as one value that can be subtracted from a later one.</summary>
    public DeviceCounts Snapshot() => new(KernelLaunches, HostToDeviceCopies, DeviceToHostCopies, Synchronizations, Allocations, Frees);

    /// <summary>Sets every count back to zero.</summary>
    public void Reset()
    {
        Interlocked.Exchange(ref _launches, 0);
        Interlocked.Exchange(ref _uploads, 0);
        Interlocked.Exchange(ref _downloads, 0);
        Interlocked.Exchange(ref _synchronizations, 0);
        Interlocked.Exchange(ref _allocations, 0);
        Interlocked.Exchange(ref _frees, 0);
        Interlocked.Exchange(ref _bytesAllocated, 0);
        Interlocked.Exchange(ref _reuses, 0);
        _launchesByKernel.Clear();
    }

    internal void CountLaunch(string kernel)
    {
        Interlocked.Increment(ref _launches);
        _launchesByKernel.AddOrUpdate(kernel, 1, (_, count) => count + 1);
    }

    internal void CountUpload() => Interlocked.Increment(ref _uploads);
    internal void CountDownload() => Interlocked.Increment(ref _downloads);
    internal void CountSynchronization() => Interlocked.Increment(ref _synchronizations);
    internal void CountFree() => Interlocked.Increment(ref _frees);
    internal void CountReuse() => Interlocked.Increment(ref _reuses);

    internal void CountAllocation(long bytes)
    {
        Interlocked.Increment(ref _allocations);
        Interlocked.Add(ref _bytesAllocated, bytes);
    }
}

/// <summary>A snapshot of <see cref="DeviceStats"/>; subtract two to get the counts of what ran between them.</summary>
public readonly record struct DeviceCounts(
    long KernelLaunches, long HostToDeviceCopies, long DeviceToHostCopies, long Synchronizations, long Allocations, long Frees)
{
    /// <summary>Copies in either direction.</summary>
    public long HostCopies => HostToDeviceCopies + DeviceToHostCopies;

    /// <summary>The counts of what ran between <paramref name="before"/> and <paramref name="after"/>.</summary>
    public static DeviceCounts operator -(DeviceCounts after, DeviceCounts before) => new(
        after.KernelLaunches - before.KernelLaunches, after.HostToDeviceCopies - before.HostToDeviceCopies,
        after.DeviceToHostCopies - before.DeviceToHostCopies, after.Synchronizations - before.Synchronizations,
        after.Allocations - before.Allocations, after.Frees - before.Frees);

    /// <inheritdoc />
    public override string ToString() =>
        $"{KernelLaunches} launches, {HostToDeviceCopies} uploads, {DeviceToHostCopies} downloads, " +
        $"{Synchronizations} syncs, {Allocations} allocations, {Frees} frees";
}

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
    private readonly CpuArrayCache _cache = new();

    private long _allocatedBytes;
    private long _peakAllocatedBytes;
    private long _arrayAllocations;

    /// <summary>Creates the managed CPU backend.</summary>
    /// <param name="maxDegreeOfParallelism">Threads per operation; -1 uses every core.</param>
    /// <param name="memoryLimitBytes">
    /// The most bytes of tensors this device holds at once (tensors not yet disposed); null: no limit
    /// beyond the process's. Past it, allocations fail with <see cref="DeviceOutOfMemoryException"/>,
    /// as on a GPU: a way to budget memory and to test out-of-memory handling.
    /// </param>
    public CpuDevice(int maxDegreeOfParallelism = -1, long? memoryLimitBytes = null)
    {
        if (maxDegreeOfParallelism == 0 || maxDegreeOfParallelism < -1)
            throw new ArgumentOutOfRangeException(nameof(maxDegreeOfParallelism), maxDegreeOfParallelism,
                "Use -1 for every core or a positive thread count.");
        if (memoryLimitBytes is <= 0)
            throw new ArgumentOutOfRangeException(nameof(memoryLimitBytes), memoryLimitBytes, "Use a positive number of bytes, or null for no limit.");
        MemoryLimitBytes = memoryLimitBytes;
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

    /// <summary>The memory limit, or null.</summary>
    public long? MemoryLimitBytes { get; }

    /// <summary>Bytes of tensors allocated on this device and not yet disposed.</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    /// <summary>The most bytes of tensors this device held at once since it was created or <see cref="ResetPeakAllocatedBytes"/>.</summary>
    public long PeakAllocatedBytes => Interlocked.Read(ref _peakAllocatedBytes);

    /// <summary>Starts a new high-water mark at the bytes held now.</summary>
    public void ResetPeakAllocatedBytes() => Interlocked.Exchange(ref _peakAllocatedBytes, AllocatedBytes);

    /// <inheritdoc />
    public override long? AvailableBytes()
    {
        long heapFree = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes - GC.GetTotalMemory(forceFullCollection: false);
        return MemoryLimitBytes is { } limit ? Math.Min(limit - AllocatedBytes, heapFree) : heapFree;
    }

    internal void Reserve(long bytes)
    {
        long after = Interlocked.Add(ref _allocatedBytes, bytes);
        if (MemoryLimitBytes is { } limit && after > limit)
        {
            Interlocked.Add(ref _allocatedBytes, -bytes);
            throw new OutOfMemoryException($"The managed CPU device's memory limit of {limit} bytes would be exceeded.");
        }
        for (long peak = Interlocked.Read(ref _peakAllocatedBytes); after > peak; peak = Interlocked.Read(ref _peakAllocatedBytes))
            if (Interlocked.CompareExchange(ref _peakAllocatedBytes, after, peak) == peak) break;
    }

    internal void Release(long bytes) => Interlocked.Add(ref _allocatedBytes, -bytes);

    /// <summary>
    /// An array for a tensor of <paramref name="length"/> elements: a cached one of that length when one is free,
    /// else a new uninitialised one; when the process is out of memory, the cache is dropped, the GC runs and the
    /// allocation is tried once more.
    /// </summary>
    internal T[] RentArray<T>(int length) where T : unmanaged
    {
        if (_cache.TryTake<T>(length) is { } cached) return cached;
        Interlocked.Increment(ref _arrayAllocations);
        try
        {
            return GC.AllocateUninitializedArray<T>(length);
        }
        catch (OutOfMemoryException) when (_cache.CachedBytes > 0)
        {
            _cache.Clear();
            GC.Collect();
            return GC.AllocateUninitializedArray<T>(length);
        }
    }

    /// <summary>
    /// Keeps a disposed tensor's array for the next tensor of its length, then bounds the cache so that live and cached
    /// arrays together stay within 1.25 × the most bytes of tensors ever live at once: a run whose shapes repeat keeps
    /// every array it reuses (the rollout's beside the training step's), and one whose shapes change from step to step
    /// (prompts of other lengths) drops the arrays of old shapes instead of collecting a set per shape.
    /// </summary>
    internal void ReturnArray<T>(T[] array) where T : unmanaged
    {
        _cache.Give(array);
        long peak = PeakAllocatedBytes;
        _cache.TrimTo(Math.Max(0, peak + peak / 4 - AllocatedBytes));
    }

    /// <summary>Arrays allocated for tensors so far (a tensor that reuses a cached array does not count).</summary>
    public long ArrayAllocations => Interlocked.Read(ref _arrayAllocations);

    /// <summary>Bytes held in the arrays of disposed tensors, kept for reuse.</summary>
    public long CachedBytes => _cache.CachedBytes;

    /// <summary>Drops the arrays kept for reuse (the GC reclaims them at its next full collection).</summary>
    public void ClearCache() => _cache.Clear();

    private static string SimdDescription =>
        System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "AVX-512"
        : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "AVX2"
        : "128-bit SIMD";

    /// <inheritdoc />
    public override void Synchronize() { }

    /// <inheritdoc />
    public override DeviceTimeMark MarkTime() => new HostTimeMark();


    /// <inheritdoc />
    public override void Dispose() { }
}

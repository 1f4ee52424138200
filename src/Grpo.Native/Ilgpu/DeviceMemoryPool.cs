using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// Keeps the buffers of disposed tensors for the next tensor of the same size class, as PyTorch's caching
/// allocator does: a training step allocates and frees the same activation, logit and scratch tensors every
/// step, and on CUDA each cuMemAlloc costs time and each cuMemFree waits for the whole device. With the pool,
/// a step after the first allocates no device memory when its shapes repeat (asserted by the counters).
/// Reuse is safe because the backend queues all work on one in-order stream: whatever a later tensor writes
/// into a returned buffer runs after every kernel queued while the old tensor lived.
/// Sizes are rounded up to classes a quarter of a power of two apart (at most 25 % unused), so steps whose
/// token counts differ a little still reuse buffers. Thread-safe.
/// </summary>
internal sealed class DeviceMemoryPool
{
    /// <summary>Elements below which every size rounds to a multiple of this (small tensors: ids, scalars, biases).</summary>
    private const long SmallGranule = 256;

    private readonly Dictionary<(Type Element, long Length), Stack<MemoryBuffer>> _free = new();
    private readonly object _gate = new();

    /// <summary>The size class holding <paramref name="length"/> elements: the next multiple of 256, or of a quarter of the power of two below.</summary>
    internal static long SizeClass(long length)
    {
        if (length <= 4 * SmallGranule) return Math.Max(SmallGranule, (length + SmallGranule - 1) / SmallGranule * SmallGranule);
        long power = 1L << (63 - (int)long.LeadingZeroCount(length)); // the largest power of two <= length
        long step = power / 4;
        return (length + step - 1) / step * step;
    }

    /// <summary>A cached buffer of exactly <paramref name="classLength"/> elements of <typeparamref name="T"/>, if one is free.</summary>
    public MemoryBuffer1D<T, Stride1D.Dense>? TryTake<T>(long classLength) where T : unmanaged
    {
        lock (_gate)
            return _free.TryGetValue((typeof(T), classLength), out var stack) && stack.Count > 0
                ? (MemoryBuffer1D<T, Stride1D.Dense>)stack.Pop()
                : null;
    }

    /// <summary>Keeps <paramref name="buffer"/> (of a size class) for the next request of its class.</summary>
    public void Give<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer) where T : unmanaged
    {
        lock (_gate)
        {
            var key = (typeof(T), buffer.Length);
            if (!_free.TryGetValue(key, out var stack)) _free[key] = stack = new Stack<MemoryBuffer>();
            stack.Push(buffer);
        }
    }

    /// <summary>Removes and returns every cached buffer, for the caller to free (before retrying an allocation that ran out of memory, or on dispose).</summary>
    public List<MemoryBuffer> TakeAll()
    {
        lock (_gate)
        {
            var all = _free.Values.SelectMany(s => s).ToList();
            _free.Clear();
            return all;
        }
    }

    /// <summary>Bytes held in cached buffers.</summary>
    public long CachedBytes
    {
        get
        {
            lock (_gate) return _free.Values.SelectMany(s => s).Sum(b => b.LengthInBytes);
        }
    }
}

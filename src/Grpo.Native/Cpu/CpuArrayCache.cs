namespace Grpo.Native.Cpu;

/// <summary>
/// Keeps the arrays of disposed tensors for the next tensor of exactly the same length and element type, as the
/// ILGPU backend's pool does for device buffers. Without it every training step drops and re-allocates its
/// activation, logit and scratch arrays; those live on the large-object heap, which the GC collects only in full
/// collections, so the process held gigabytes of dead arrays besides the live ones (a 196 M-parameter model's
/// bench step: 5.5 GiB resident for 4.1 GiB of tensors). With the cache a step whose shapes repeat allocates
/// nothing. Exact lengths, because a CPU tensor's array is its storage and must not be longer. Thread-safe.
/// </summary>
internal sealed class CpuArrayCache
{
    private readonly Dictionary<(Type Element, int Length), Stack<Array>> _free = new();
    private readonly object _gate = new();
    private long _cachedBytes;

    /// <summary>A cached array of exactly <paramref name="length"/> elements, if one is free; its contents are stale.</summary>
    public T[]? TryTake<T>(int length) where T : unmanaged
    {
        lock (_gate)
        {
            if (!_free.TryGetValue((typeof(T), length), out var stack) || stack.Count == 0) return null;
            var array = (T[])stack.Pop();
            _cachedBytes -= Bytes(array);
            return array;
        }
    }

    /// <summary>Keeps <paramref name="array"/> for the next request of its length.</summary>
    public void Give<T>(T[] array) where T : unmanaged
    {
        lock (_gate)
        {
            var key = (typeof(T), array.Length);
            if (!_free.TryGetValue(key, out var stack)) _free[key] = stack = new Stack<Array>();
            stack.Push(array);
            _cachedBytes += Bytes(array);
        }
    }

    /// <summary>Forgets every cached array (for the GC to reclaim), before retrying an allocation that ran out of memory.</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _free.Clear();
            _cachedBytes = 0;
        }
    }

    /// <summary>Bytes held in cached arrays.</summary>
    public long CachedBytes
    {
        get { lock (_gate) return _cachedBytes; }
    }

    private static unsafe long Bytes<T>(T[] array) where T : unmanaged => (long)array.Length * sizeof(T);
}

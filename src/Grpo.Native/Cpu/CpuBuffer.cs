namespace Grpo.Native.Cpu;

/// <summary>
/// The elements of one tensor on the managed CPU backend: a window [Offset, Offset + Length) of
/// the storage's array, so that a view into a larger buffer (a parameter inside the model's one
/// parameter buffer) is read and written in place. Indexing returns a reference, like an array.
/// </summary>
internal readonly struct CpuBuffer<T> where T : unmanaged
{
    public CpuBuffer(T[] array, int offset, int length)
    {
        Array = array;
        Offset = offset;
        Length = length;
    }

    /// <summary>The storage's whole array.</summary>
    public T[] Array { get; }

    /// <summary>Index of element 0 in <see cref="Array"/>.</summary>
    public int Offset { get; }

    /// <summary>Number of elements.</summary>
    public int Length { get; }

    /// <summary>Element <paramref name="index"/> of the window.</summary>
    public ref T this[int index] => ref Array[Offset + index];

    /// <summary>The whole window.</summary>
    public Span<T> AsSpan() => new(Array, Offset, Length);

    /// <summary>Elements [start, Length).</summary>
    public Span<T> AsSpan(int start) => AsSpan().Slice(start);

    /// <summary>Elements [start, start + length).</summary>
    public Span<T> AsSpan(int start, int length) => AsSpan().Slice(start, length);

    /// <summary>The elements in <paramref name="range"/>.</summary>
    public Span<T> AsSpan(Range range) => AsSpan()[range];

    /// <summary>The whole window as a span.</summary>
    public static implicit operator Span<T>(CpuBuffer<T> buffer) => buffer.AsSpan();

    /// <summary>The whole window as a read-only span.</summary>
    public static implicit operator ReadOnlySpan<T>(CpuBuffer<T> buffer) => buffer.AsSpan();
}

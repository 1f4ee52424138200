using Grpo.Native.Devices;

namespace Grpo.Native.Tensors;

/// <summary>
/// A dense row-major tensor that owns memory on one <see cref="Device"/>. Dispose it to free that memory.
/// Operations refuse tensors that live on another device or have the wrong shape.
/// </summary>
/// <typeparam name="T">Element type: <see cref="float"/> for values, <see cref="int"/> for token ids.</typeparam>
public sealed class Tensor<T> : IDisposable where T : unmanaged
{
    private TensorStorage<T>? _storage;
    private readonly Tensor<T>? _owner; // set on views: the tensor whose memory they share

    internal Tensor(Device device, TensorShape shape, TensorStorage<T> storage)
    {
        Device = device;
        Shape = shape;
        _storage = storage;
    }

    private Tensor(Tensor<T> owner, TensorShape shape, long offset)
    {
        Device = owner.Device;
        Shape = shape;
        _owner = owner;
        Offset = offset;
    }

    /// <summary>The device that owns the memory.</summary>
    public Device Device { get; }

    /// <summary>The dimensions.</summary>
    public TensorShape Shape { get; }

    /// <summary>Number of elements.</summary>
    public long Length => Shape.ElementCount;

    /// <summary>True once <see cref="Dispose"/> has run (for a view: once its original was disposed).</summary>
    public bool IsDisposed => (_owner ?? this)._storage is null;

    /// <summary>True when this tensor is a view (see <see cref="Reshape"/> and <see cref="Slice"/>) of another tensor's memory.</summary>
    public bool IsView => _owner is not null;

    /// <summary>Where element 0 lies in the storage, in elements: 0 unless this is a <see cref="Slice"/>.</summary>
    internal long Offset { get; }

    internal TensorStorage<T> Storage =>
        (_owner is null ? _storage : _owner._storage)
        ?? throw new ObjectDisposedException(nameof(Tensor<T>), $"The tensor of shape {Shape} (or the tensor it views) was disposed.");

    /// <summary>
    /// A view of the same memory with another shape of the same element count, e.g. (N, T, C) as (N·T, C).
    /// The view owns nothing: disposing it does nothing, and it is valid only while the original lives.
    /// </summary>
    public Tensor<T> Reshape(params int[] shape)
    {
        var newShape = new TensorShape(shape);
        if (newShape.ElementCount != Length)
            throw new ArgumentException(
                $"Cannot view the tensor of shape {Shape} ({Length} elements) as {newShape} ({newShape.ElementCount} elements).",
                nameof(shape));
        _ = Storage; // a disposed tensor has nothing to view
        return new Tensor<T>(_owner ?? this, newShape, Offset);
    }

    /// <summary>
    /// A view of the elements [<paramref name="offset"/>, offset + count) of this tensor, read
    /// row-major, with the given shape: one named parameter inside a model's single parameter
    /// buffer, say. Like <see cref="Reshape"/>, the view owns nothing and is valid only while the original lives.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The window does not fit inside this tensor.</exception>
    public Tensor<T> Slice(long offset, params int[] shape)
    {
        var newShape = new TensorShape(shape);
        if (offset < 0 || offset + newShape.ElementCount > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"A slice of shape {newShape} ({newShape.ElementCount} elements) at offset {offset} does not fit inside " +
                $"the tensor of shape {Shape} ({Length} elements).");
        _ = Storage;
        return new Tensor<T>(_owner ?? this, newShape, Offset + offset);
    }

    /// <summary>Copies host data into the tensor; <paramref name="source"/> must have exactly <see cref="Length"/> elements.</summary>
    public void CopyFrom(ReadOnlySpan<T> source)
    {
        if (source.Length != Length)
            throw new ArgumentException(
                $"The source has {source.Length} elements but the tensor of shape {Shape} holds {Length}.", nameof(source));
        Storage.CopyFrom(Offset, source);
    }

    /// <summary>Copies the tensor to host memory; <paramref name="destination"/> must have exactly <see cref="Length"/> elements.</summary>
    public void CopyTo(Span<T> destination)
    {
        if (destination.Length != Length)
            throw new ArgumentException(
                $"The destination has {destination.Length} elements but the tensor of shape {Shape} holds {Length}.",
                nameof(destination));
        Storage.CopyTo(Offset, destination);
    }

    /// <summary>
    /// Copies host data into the elements [<paramref name="start"/>, start + source.Length), read row-major: a large tensor
    /// written piece by piece through a small staging array.
    /// </summary>
    public void CopyFrom(long start, ReadOnlySpan<T> source)
    {
        CheckRange(start, source.Length);
        Storage.CopyFrom(Offset + start, source);
    }

    /// <summary>Copies the elements [<paramref name="start"/>, start + destination.Length), read row-major, to host memory.</summary>
    public void CopyTo(long start, Span<T> destination)
    {
        CheckRange(start, destination.Length);
        Storage.CopyTo(Offset + start, destination);
    }

    private void CheckRange(long start, int count)
    {
        if (start < 0 || start + count > Length)
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"Elements [{start}, {start + count}) are not inside the tensor of shape {Shape} ({Length} elements).");
    }

    /// <summary>Returns a host copy of the elements.</summary>
    public T[] ToArray()
    {
        var result = new T[Length];
        Storage.CopyTo(Offset, result);
        return result;
    }

    /// <summary>Sets every element to <paramref name="value"/>.</summary>
    public void Fill(T value) => Storage.Fill(Offset, Length, value);

    /// <summary>Frees the device memory (a view frees nothing). Safe to call twice.</summary>
    public void Dispose()
    {
        if (_owner is not null) return;
        _storage?.Dispose();
        _storage = null;
    }

    /// <inheritdoc />
    public override string ToString() => $"Tensor<{typeof(T).Name}>{Shape} on {Device.Name}";
}

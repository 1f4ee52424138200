using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

/// <summary>Tensor memory of the managed CPU backend: one managed array.</summary>
internal sealed class CpuStorage<T> : TensorStorage<T> where T : unmanaged
{
    private readonly CpuDevice _device;
    private readonly long _bytes;
    private bool _disposed;

    public unsafe CpuStorage(CpuDevice device, long length)
    {
        if (length > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(length), length,
                $"The managed CPU backend holds at most {Array.MaxLength} elements per tensor.");
        _device = device;
        _bytes = length * sizeof(T);
        device.Reserve(_bytes); // throws OutOfMemoryException past the device's memory limit
        try
        {
            Data = device.RentArray<T>((int)length);
        }
        catch
        {
            device.Release(_bytes);
            throw;
        }
    }

    /// <summary>The elements, row-major.</summary>
    public T[] Data { get; }

    public override void CopyFrom(long offset, ReadOnlySpan<T> source) => source.CopyTo(Data.AsSpan((int)offset));
    public override void CopyTo(long offset, Span<T> destination) => Data.AsSpan((int)offset, destination.Length).CopyTo(destination);
    public override void Fill(long offset, long length, T value) => Data.AsSpan((int)offset, (int)length).Fill(value);
    /// <summary>Gives the array back to the device's cache (once: a second Dispose does nothing).</summary>
    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _device.Release(_bytes);
        _device.ReturnArray(Data);
    }
}

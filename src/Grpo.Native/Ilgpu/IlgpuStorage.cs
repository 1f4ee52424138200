using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;
using Device = Grpo.Native.Devices.Device;

namespace Grpo.Native.Ilgpu;

/// <summary>Tensor memory of the ILGPU backend: one dense 1-D buffer on the accelerator.</summary>
internal sealed class IlgpuStorage<T> : TensorStorage<T> where T : unmanaged
{
    private readonly IlgpuDevice _device;
    private readonly MemoryBuffer1D<T, Stride1D.Dense> _buffer;

    public IlgpuStorage(IlgpuDevice device, long length)
    {
        _device = device;
        _buffer = device.Rent<T>(length); // a cached buffer of the size class when one is free
        View = _buffer.View.SubView(0, length);
        if (typeof(T) == typeof(int)) Known = new KnownIndices(length);
    }

    /// <summary>For int buffers, what the host knows of the contents (see <see cref="KnownIndices"/>); null for floats.</summary>
    public KnownIndices? Known { get; }

    /// <summary>The elements, row-major.</summary>
    public ArrayView1D<T, Stride1D.Dense> View { get; }

    public override void CopyFrom(long offset, ReadOnlySpan<T> source)
    {
        _device.Upload(_buffer.View.BaseView.SubView(offset, source.Length), source);
        Known?.Uploaded(offset, System.Runtime.InteropServices.MemoryMarshal.Cast<T, int>(source));
    }

    public override void CopyTo(long offset, Span<T> destination) =>
        _device.Download(_buffer.View.BaseView.SubView(offset, destination.Length), destination);

    public override void Fill(long offset, long length, T value)
    {
        if (value.Equals(default(T)))
        {
            _device.Zero(_buffer.View.BaseView.SubView(offset, length));
            Known?.Bounded(offset, length, 0, 0);
        }
        else
        {
            // Rare (tests poison outputs this way), so a host array staged through one copy is fine.
            var host = new T[checked((int)length)];
            Array.Fill(host, value);
            CopyFrom(offset, host);
        }
    }

    /// <summary>Gives the buffer back to the device's cache (the tensor calls this once).</summary>
    public override void Dispose() => _device.Return(_buffer);
}

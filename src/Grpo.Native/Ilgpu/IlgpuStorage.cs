using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;
using Device = Grpo.Native.Devices.Device;

namespace Grpo.Native.Ilgpu;

/// <summary>Tensor memory of the ILGPU backend: one dense 1-D buffer on the accelerator.</summary>
internal sealed class IlgpuStorage<T> : TensorStorage<T> where T : unmanaged
{
    private readonly MemoryBuffer1D<T, Stride1D.Dense> _buffer;

    public IlgpuStorage(Accelerator accelerator, long length) => _buffer = accelerator.Allocate1D<T>(length);

    /// <summary>The elements, row-major.</summary>
    public ArrayView1D<T, Stride1D.Dense> View => _buffer.View;

    public override void CopyFrom(long offset, ReadOnlySpan<T> source) =>
        _buffer.View.BaseView.SubView(offset, source.Length).CopyFromCPU(source);

    public override void CopyTo(long offset, Span<T> destination) =>
        _buffer.View.BaseView.SubView(offset, destination.Length).CopyToCPU(destination);

    public override void Fill(long offset, long length, T value)
    {
        if (value.Equals(default(T))) _buffer.View.BaseView.SubView(offset, length).MemSetToZero();
        else
        {
            // Rare (tests poison outputs this way), so a host array staged through one copy is fine.
            var host = new T[checked((int)length)];
            Array.Fill(host, value);
            CopyFrom(offset, host);
        }
    }

    public override void Dispose() => _buffer.Dispose();
}

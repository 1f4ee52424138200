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

    public override void CopyFrom(ReadOnlySpan<T> source) => _buffer.View.BaseView.CopyFromCPU(source);

    public override void CopyTo(Span<T> destination) => _buffer.View.BaseView.CopyToCPU(destination);

    public override void Fill(T value)
    {
        if (value.Equals(default(T))) _buffer.MemSetToZero();
        else
        {
            // Rare (tests poison outputs this way), so a host array staged through one copy is fine.
            var host = new T[checked((int)_buffer.Length)];
            Array.Fill(host, value);
            CopyFrom(host);
        }
    }

    public override void Dispose() => _buffer.Dispose();
}

using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// A float scratch buffer on the device, kept between calls and grown when a call needs more, so
/// a hot operation does not allocate every time. Callers serialise access (the operations hold a
/// lock around each use). The accelerator frees it when the device is disposed.
/// </summary>
internal sealed class ReusableDeviceBuffer(IlgpuDevice device)
{
    private MemoryBuffer1D<float, Stride1D.Dense>? _buffer;

    /// <summary>A view of <paramref name="length"/> floats; earlier contents are not kept.</summary>
    public ArrayView<float> Get(long length)
    {
        if (_buffer is null || _buffer.Length < length)
        {
            if (_buffer is not null)
            {
                device.Synchronize(); // queued kernels may still read the old buffer
                device.Free(_buffer);
            }
            _buffer = device.Allocate1D<float>(length);
        }
        return _buffer.View.BaseView.SubView(0, length);
    }
}

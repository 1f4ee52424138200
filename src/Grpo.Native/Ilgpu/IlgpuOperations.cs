using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;
using Device = Grpo.Native.Devices.Device;

namespace Grpo.Native.Ilgpu;

/// <summary>The ILGPU implementation of the GRPO operations (host side); one partial file per family.</summary>
internal sealed partial class IlgpuOperations : IGrpoOperations
{
    public IlgpuOperations(IlgpuDevice device) => Device = device;

    public IlgpuDevice Device { get; }

    /// <summary>The device view of a tensor that lives on this device (a window of its storage when the tensor is a slice).</summary>
    internal ArrayView1D<T, Stride1D.Dense> View<T>(Tensor<T> tensor, string argumentName) where T : unmanaged
    {
        Guard.OnDevice(tensor, Device, argumentName);
        return ((IlgpuStorage<T>)tensor.Storage).View.SubView(tensor.Offset, tensor.Length);
    }
}

using Grpo.Native.Operations;

namespace Grpo.Native.Cpu;

/// <summary>The managed CPU implementation of the GRPO operations; one partial file per family.</summary>
internal sealed partial class CpuOperations : IGrpoOperations
{
    public CpuOperations(CpuDevice device) => Device = device;

    public CpuDevice Device { get; }

    /// <summary>The elements of a tensor that lives on this device (a window of its storage when the tensor is a slice).</summary>
    internal CpuBuffer<T> Data<T>(Tensors.Tensor<T> tensor, string argumentName) where T : unmanaged
    {
        Guard.OnDevice(tensor, Device, argumentName);
        return new CpuBuffer<T>(((CpuStorage<T>)tensor.Storage).Data, (int)tensor.Offset, (int)tensor.Length);
    }
}

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

    /// <summary>Most threads a flat element-wise launch uses; each strides over the rest (2^24: a full H100 many times over).</summary>
    internal const int MaxFlatThreads = 1 << 24;

    /// <summary>Threads for a flat launch over <paramref name="elements"/>: one per element up to <see cref="MaxFlatThreads"/>.</summary>
    internal static int FlatThreads(long elements) => (int)Math.Min(elements, MaxFlatThreads);

    /// <summary>A check of index values that throws the user's error for a bad one.</summary>
    internal delegate void IndexCheck(ReadOnlySpan<int> values);

    /// <summary>
    /// The values of an index tensor, for checks on the host: what the host uploaded when it knows every
    /// element (no copy), otherwise a download (counted in <see cref="IlgpuDevice.Stats"/>).
    /// </summary>
    internal ReadOnlySpan<int> HostIndices(Tensor<int> tensor, string argumentName)
    {
        var known = Known(tensor, argumentName);
        return known.TryExact(tensor.Offset, tensor.Length, out var values) ? values : tensor.ToArray();
    }

    /// <summary>
    /// Runs a range check (one that holds for every value between two values it accepts) on an index tensor.
    /// When the host knows a range for each element and the check accepts both ends, no copy is needed:
    /// this is how the sampler's token ids are checked in a decode step. Otherwise the exact values decide,
    /// downloaded if the host does not know them, so an error names the real offending element.
    /// </summary>
    internal void CheckIndexRange(Tensor<int> tensor, string argumentName, IndexCheck check)
    {
        var known = Known(tensor, argumentName);
        try
        {
            check(known.Low(tensor.Offset, tensor.Length));
            check(known.High(tensor.Offset, tensor.Length));
            return;
        }
        catch (ArgumentException)
        {
            // A range the check refuses: only the values themselves can say whether one is out of range.
        }
        check(HostIndices(tensor, argumentName));
    }

    /// <summary>Records that a kernel queued now writes values in [<paramref name="low"/>, <paramref name="high"/>] to the tensor.</summary>
    internal void KernelWrites(Tensor<int> tensor, string argumentName, int low, int high) =>
        Known(tensor, argumentName).Bounded(tensor.Offset, tensor.Length, low, high);

    private KnownIndices Known(Tensor<int> tensor, string argumentName)
    {
        Guard.OnDevice(tensor, Device, argumentName);
        return ((IlgpuStorage<int>)tensor.Storage).Known!;
    }
}

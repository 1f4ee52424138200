using Grpo.Native.Ilgpu;
using ILGPU.Runtime.Cuda;
using NUnit.Framework;

namespace Grpo.Native.Tests.Devices;

/// <summary>
/// Which CUDA errors read as "out of memory" (a clear message, the cache freed and the allocation retried once): only
/// CUDA_ERROR_OUT_OF_MEMORY. A kernel fault surfaces at a later call, an allocation among them, and must reach the user as
/// the fault it is. Runs without a GPU: ILGPU names a CudaException's error by the CudaError member's name.
/// </summary>
public sealed class CudaOutOfMemoryTests
{
    [Test]
    public void OnlyTheOutOfMemoryErrorReadsAsOutOfMemory()
    {
        Assert.That(IlgpuDevice.IsOutOfMemoryError(CudaError.CUDA_ERROR_OUT_OF_MEMORY.ToString()), Is.True);
        Assert.That(IlgpuDevice.IsOutOfMemoryError(CudaError.CUDA_ERROR_ILLEGAL_ADDRESS.ToString()), Is.False);
        Assert.That(IlgpuDevice.IsOutOfMemoryError(CudaError.CUDA_ERROR_LAUNCH_FAILED.ToString()), Is.False);
        Assert.That(IlgpuDevice.IsOutOfMemoryError("N/A"), Is.False, "what ILGPU sets when it has no error code");
        Assert.That(IlgpuDevice.IsOutOfMemoryError(null), Is.False);
    }

    [Test]
    public void ACudaExceptionWithoutTheOutOfMemoryErrorIsNotOutOfMemory()
    {
        // Constructing one with an error code needs the driver (ILGPU asks it for the message); a message-only one has none.
        Assert.That(IlgpuDevice.IsCudaOutOfMemory(new CudaException("an illegal memory access was encountered")), Is.False);
        Assert.That(IlgpuDevice.IsCudaOutOfMemory(new InvalidOperationException("not CUDA")), Is.False);
    }
}

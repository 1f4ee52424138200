namespace Grpo.Native.Devices;

/// <summary>Which execution backend runs the operations.</summary>
public enum DeviceKind
{
    /// <summary>CUDA when an NVIDIA GPU is visible, otherwise the managed CPU backend.</summary>
    Auto,

    /// <summary>The managed CPU backend: SIMD through System.Numerics.Tensors, multi-threaded. The fast path without a GPU.</summary>
    Cpu,

    /// <summary>The ILGPU kernels compiled for CUDA.</summary>
    Cuda,

    /// <summary>The ILGPU kernels on ILGPU's CPU accelerator: a GPU simulator, slow, used to test the kernels without a GPU.</summary>
    IlgpuCpu,

    /// <summary>
    /// The ILGPU kernels on the CPU simulator with CUDA's launch shapes: 32-thread warps and 256-thread groups, so
    /// row reductions run 256 threads and matrix products 16×16 groups, as on a GPU. Slower still; checks that configuration.
    /// </summary>
    IlgpuCpuCudaShapes,
}

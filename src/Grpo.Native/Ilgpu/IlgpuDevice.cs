using System.Collections.Concurrent;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Device = Grpo.Native.Devices.Device;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// The ILGPU backend: the kernels in <c>kernels/Grpo.Kernels</c>, compiled for CUDA, or run on
/// ILGPU's CPU accelerator (a GPU simulator, used to test the kernels without a GPU).
/// Kernels are compiled once per device and cached.
/// </summary>
public sealed class IlgpuDevice : Device
{
    private readonly Context _context;
    private readonly ConcurrentDictionary<string, object> _kernels = new();
    private readonly IlgpuOperations _operations;

    private IlgpuDevice(Context context, Accelerator accelerator, DeviceKind kind)
    {
        _context = context;
        Accelerator = accelerator;
        Kind = kind;
        // Reductions over a row use one group; it must be a power of two the device allows.
        RowGroupSize = LargestPowerOfTwoAtMost(Math.Min(256, accelerator.MaxNumThreadsPerGroup));
        _operations = new IlgpuOperations(this);
    }

    /// <summary>True when ILGPU can see an NVIDIA GPU with a CUDA driver.</summary>
    public static bool IsCudaAvailable()
    {
        try
        {
            using var context = Context.Create(builder => builder.Cuda());
            return context.GetCudaDevices().Count > 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or TypeInitializationException or CudaException
                                   or InvalidOperationException or NotSupportedException)
        {
            return false;
        }
    }

    /// <summary>The ILGPU kernels on the first CUDA GPU.</summary>
    /// <exception cref="NotSupportedException">No NVIDIA GPU with a CUDA driver is visible.</exception>
    public static IlgpuDevice CreateCuda()
    {
        var context = Context.Create(builder => ConfigureForCuda(builder).Cuda());
        if (context.GetCudaDevices().Count == 0)
        {
            context.Dispose();
            throw new NotSupportedException(
                "No CUDA GPU is visible. Use the managed CPU backend (GRPO_DEVICE=cpu) or install the NVIDIA driver.");
        }
        return new IlgpuDevice(context, context.CreateCudaAccelerator(0), DeviceKind.Cuda);
    }

    /// <summary>
    /// The compiler settings of the CUDA context; the PTX compilation test uses the same ones.
    /// EnableAlgorithms: without it XMath.Exp/Log have no CUDA intrinsic and kernels fail to compile for PTX.
    /// </summary>
    internal static Context.Builder ConfigureForCuda(Context.Builder builder) =>
        builder.EnableAlgorithms().Optimize(OptimizationLevel.O2);

    /// <summary>
    /// The ILGPU kernels on ILGPU's CPU accelerator. It simulates a GPU with threads, so it is slow:
    /// use it to check kernels, not to train. Four-thread warps, four warps per group and one
    /// multiprocessor per core keep barrier traffic low while still exercising group reductions.
    /// </summary>
    public static IlgpuDevice CreateCpuSimulator()
    {
        var simulated = new CPUDevice(
            numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 4,
            numMultiprocessors: Math.Max(1, Environment.ProcessorCount));
        var context = Context.Create(builder => builder.CPU(simulated).EnableAlgorithms().Optimize(OptimizationLevel.O1));
        return new IlgpuDevice(context, context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel), DeviceKind.IlgpuCpu);
    }

    /// <inheritdoc />
    public override DeviceKind Kind { get; }

    /// <inheritdoc />
    public override string Name => Accelerator.Name;

    /// <inheritdoc />
    public override IGrpoOperations Operations => _operations;

    /// <summary>The ILGPU accelerator the kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>Threads in the group that reduces one row (a power of two).</summary>
    internal int RowGroupSize { get; }

    /// <summary>
    /// Returns the kernel <paramref name="name"/> of <paramref name="kernels"/>, compiling it on first use.
    /// The key is the declaring type and the name: kernel families reuse short names (two are called Scale).
    /// </summary>
    internal TKernel Kernel<TKernel>(Type kernels, string name, Func<Accelerator, TKernel> load) where TKernel : Delegate =>
        (TKernel)_kernels.GetOrAdd($"{kernels.FullName}.{name}", _ => load(Accelerator));

    /// <inheritdoc />
    public override void Synchronize() => Accelerator.Synchronize();

    /// <inheritdoc />
    public override long? AvailableBytes() => Accelerator is CudaAccelerator cuda ? cuda.GetFreeMemory() : null;

    // ILGPU reports a failed cudaMalloc as a CudaException; allocation is the only call this filter guards.
    private protected override bool IsDeviceOutOfMemory(Exception e) => e is CudaException;


    /// <inheritdoc />
    public override void Dispose()
    {
        Accelerator.Dispose();
        _context.Dispose();
    }

    private static int LargestPowerOfTwoAtMost(int n)
    {
        int p = 1;
        while (p * 2 <= n) p *= 2;
        return p;
    }
}

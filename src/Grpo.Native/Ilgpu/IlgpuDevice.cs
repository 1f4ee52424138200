using System.Collections.Concurrent;
using System.Linq.Expressions;
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
        CudaDriverLibrary.Install();
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

    /// <summary>The ILGPU kernels on the first CUDA GPU (a data-parallel rank: the GPU of its local rank).</summary>
    /// <param name="options">cuBLAS and TF32 (unset: from the environment, see <see cref="CudaOptions"/>).</param>
    /// <exception cref="NotSupportedException">No NVIDIA GPU with a CUDA driver is visible.</exception>
    /// <exception cref="ArgumentException">TF32 without cuBLAS.</exception>
    public static IlgpuDevice CreateCuda(CudaOptions? options = null)
    {
        var (useCuBlas, tf32) = (options ?? new CudaOptions()).Resolve(); // refused before any work
        CudaDriverLibrary.Install();
        Context context;
        try
        {
            context = Context.Create(builder => ConfigureForCuda(builder).Cuda());
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or CudaException
                                  or InvalidOperationException or NotSupportedException)
        {
            throw new NotSupportedException(NoGpuMessage($"the CUDA driver did not start ({e.GetBaseException().Message})"), e);
        }
        if (context.GetCudaDevices().Count == 0)
        {
            context.Dispose();
            // ILGPU reports no device both when the driver has none and when no driver library loaded: say which.
            throw new NotSupportedException(NoGpuMessage(CudaDriverLibrary.AnyLoaded() ? "the driver reports no CUDA GPU"
                : "no CUDA driver library could be loaded"));
        }
        // Ranks of an mpirun job on one machine each take their own GPU (one process: the first).
        int ordinal = Distributed.Communicators.LocalRank() % context.GetCudaDevices().Count;
        var device = new IlgpuDevice(context, context.CreateCudaAccelerator(ordinal), DeviceKind.Cuda);
        // cuBLAS where it loads (the ILGPU kernel otherwise). Its path runs in the tests against an emulation of cuBLAS
        // (SgemmCall's mapping, cuBLAS's argument checks, the views' bounds); the device check runs it on a GPU.
        if (useCuBlas)
        {
            device.GemmLibrary = CuBlas.TryCreate((CudaAccelerator)device.Accelerator, tf32, out string message);
            Device.DiagnosticLog?.WriteLine($"device cuda: {message}");
        }
        return device;
    }

    /// <summary>Why CUDA cannot run, with every driver library the loader was asked for.</summary>
    private static string NoGpuMessage(string reason) =>
        $"No usable CUDA GPU: {reason}. Looked for the driver as {CudaDriverLibrary.Describe()} on the loader path " +
        $"(LD_LIBRARY_PATH={Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "unset"}). " +
        "Install the NVIDIA driver, or use the managed CPU backend (--device cpu, GRPO_DEVICE=cpu).";

    /// <summary>
    /// The compiler settings of the CUDA context; the PTX compilation test uses the same ones.
    /// EnableAlgorithms: without it XMath.Exp/Log have no CUDA intrinsic and kernels fail to compile for PTX. Profiling: the
    /// training step times its phases with markers in the stream (<see cref="MarkTime"/>, CUDA events) instead of waits.
    /// </summary>
    internal static Context.Builder ConfigureForCuda(Context.Builder builder) =>
        builder.EnableAlgorithms().Optimize(OptimizationLevel.O2).Profiling();

    /// <summary>
    /// The ILGPU kernels on ILGPU's CPU accelerator. It simulates a GPU with threads, so it is slow:
    /// use it to check kernels, not to train. By default four-thread warps, four warps per group and one
    /// multiprocessor per core keep barrier traffic low while still exercising group reductions; with
    /// <paramref name="cudaLaunchShapes"/> it takes CUDA's shapes instead (32-thread warps, groups of up to
    /// 256 threads, hence 256-thread row groups and 16×16 matmul groups), the configuration a GPU runs.
    /// </summary>
    public static IlgpuDevice CreateCpuSimulator(bool cudaLaunchShapes = false)
    {
        var simulated = cudaLaunchShapes
            ? new CPUDevice(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 8, numMultiprocessors: Math.Max(1, Environment.ProcessorCount))
            : new CPUDevice(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 4, numMultiprocessors: Math.Max(1, Environment.ProcessorCount));
        var context = Context.Create(builder => builder.CPU(simulated).EnableAlgorithms().Optimize(OptimizationLevel.O1).Profiling());
        return new IlgpuDevice(context, context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel),
            cudaLaunchShapes ? DeviceKind.IlgpuCpuCudaShapes : DeviceKind.IlgpuCpu);
    }

    /// <inheritdoc />
    public override DeviceKind Kind { get; }

    /// <inheritdoc />
    public override string Name => Accelerator.Name;

    /// <inheritdoc />
    public override IGrpoOperations Operations => _operations;

    /// <summary>The ILGPU accelerator the kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>cuBLAS on this CUDA accelerator when it loaded (the GEMMs then go there); null on the simulator or without it.</summary>
    internal IGemmLibrary? GemmLibrary { get; private set; }

    /// <summary>
    /// Sends this device's GEMMs to <paramref name="library"/> from now on: the tests' emulation of cuBLAS on the simulator,
    /// which runs every GEMM's path to cuBLAS without a GPU. The device disposes it.
    /// </summary>
    internal void UseGemmLibrary(IGemmLibrary library)
    {
        ArgumentNullException.ThrowIfNull(library);
        if (GemmLibrary is not null) throw new InvalidOperationException($"This device's GEMMs already run on {GemmLibrary.Description}.");
        GemmLibrary = library;
    }

    /// <summary>The NCCL the tests put here (an emulation on the simulator); null: a GPU's own libnccl, looked up when ranks need it.</summary>
    internal Distributed.INccl? Nccl { get; private set; }

    /// <summary>Sums this device's data-parallel gradients through <paramref name="nccl"/>: the tests' emulation of NCCL on the simulator.</summary>
    internal void UseNccl(Distributed.INccl nccl)
    {
        ArgumentNullException.ThrowIfNull(nccl);
        if (Nccl is not null) throw new InvalidOperationException($"This device's gradients already go through {Nccl.Description}.");
        Nccl = nccl;
    }

    /// <summary>True when GEMMs run through cuBLAS.</summary>
    public bool UsesCuBlas => GemmLibrary is not null;

    /// <summary>True when the cuBLAS GEMMs use TF32 tensor cores (<see cref="CudaOptions"/>' remarks give the wider bound).</summary>
    public bool UsesTf32 => GemmLibrary is { Tf32: true };

    /// <summary>Which code runs the GEMMs, in words: the ILGPU kernel, or cuBLAS from where it loaded, in fp32 or TF32.</summary>
    public string GemmPath => GemmLibrary?.Description ?? "the ILGPU kernel (fp32)";

    /// <summary>Threads in the group that reduces one row (a power of two).</summary>
    internal int RowGroupSize { get; }

    /// <summary>Launches, copies, synchronisations and allocations this device has done: every one in this folder is counted here.</summary>
    public DeviceStats Stats { get; } = new();

    /// <summary>
    /// Returns the kernel <paramref name="name"/> of <paramref name="kernels"/>, compiling it on first use.
    /// The key is the declaring type and the name: kernel families reuse short names (two are called Scale).
    /// The delegate returned counts each launch in <see cref="Stats"/> before queuing it.
    /// </summary>
    internal TKernel Kernel<TKernel>(Type kernels, string name, Func<Accelerator, TKernel> load) where TKernel : Delegate =>
        (TKernel)_kernels.GetOrAdd($"{kernels.FullName}.{name}", _ => Counted(load(Accelerator), $"{kernels.Name}.{name}"));

    /// <summary>Wraps a loaded kernel in a delegate of the same type that counts the launch under <paramref name="name"/>, then queues it.</summary>
    private TKernel Counted<TKernel>(TKernel kernel, string name) where TKernel : Delegate
    {
        var parameters = typeof(TKernel).GetMethod("Invoke")!.GetParameters()
            .Select(p => Expression.Parameter(p.ParameterType, p.Name)).ToArray();
        var body = Expression.Block(
            Expression.Call(Expression.Constant(Stats), typeof(DeviceStats).GetMethod(nameof(DeviceStats.CountLaunch),
                System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!, Expression.Constant(name)),
            Expression.Invoke(Expression.Constant(kernel), parameters));
        return Expression.Lambda<TKernel>(body, parameters).Compile();
    }

    /// <summary>Allocates <paramref name="length"/> elements on the accelerator, counted.</summary>
    internal unsafe MemoryBuffer1D<T, Stride1D.Dense> Allocate1D<T>(long length) where T : unmanaged
    {
        var buffer = Accelerator.Allocate1D<T>(length);
        Stats.CountAllocation(length * sizeof(T));
        return buffer;
    }

    private readonly DeviceMemoryPool _pool = new();

    /// <summary>
    /// A buffer of at least <paramref name="length"/> elements for a tensor: a cached one of its size class when
    /// one is free (counted as a reuse), else a new allocation; on running out of memory the cache is freed and the
    /// allocation tried once more. Give it back with <see cref="Return{T}"/>.
    /// </summary>
    internal MemoryBuffer1D<T, Stride1D.Dense> Rent<T>(long length) where T : unmanaged
    {
        long size = DeviceMemoryPool.SizeClass(length);
        var cached = _pool.TryTake<T>(size);
        if (cached is not null)
        {
            Stats.CountReuse();
            return cached;
        }
        try
        {
            return Allocate1D<T>(size);
        }
        catch (Exception e) when (IsDeviceOutOfMemory(e) && _pool.CachedBytes > 0)
        {
            ReleaseCachedMemory();
            return Allocate1D<T>(size);
        }
    }

    /// <summary>Takes back a buffer from <see cref="Rent{T}"/> for the next tensor of its size class (no free, so no device-wide wait on CUDA).</summary>
    internal void Return<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer) where T : unmanaged => _pool.Give(buffer);

    /// <summary>Frees every cached tensor buffer (after a synchronisation: queued kernels may still use them).</summary>
    public void ReleaseCachedMemory()
    {
        var buffers = _pool.TakeAll();
        if (buffers.Count == 0) return;
        Synchronize();
        foreach (var buffer in buffers) Free(buffer);
    }

    /// <summary>Bytes the cache of disposed tensors' buffers holds.</summary>
    public long CachedBytes => _pool.CachedBytes;

    /// <summary>Frees a buffer from <see cref="Allocate1D{T}"/>, counted.</summary>
    internal void Free(MemoryBuffer buffer)
    {
        buffer.Dispose();
        Stats.CountFree();
    }

    /// <summary>Copies host data to the device, counted; queued on the default stream after the kernels before it.</summary>
    internal void Upload<T>(ArrayView<T> destination, ReadOnlySpan<T> source) where T : unmanaged
    {
        destination.CopyFromCPU(source);
        Stats.CountUpload();
    }

    /// <summary>Copies device data to the host, counted; waits for the kernels queued before it.</summary>
    internal void Download<T>(ArrayView<T> source, Span<T> destination) where T : unmanaged
    {
        source.CopyToCPU(destination);
        Stats.CountDownload();
    }

    /// <summary>A host array of the device data, counted as one download.</summary>
    internal T[] Download<T>(ArrayView<T> source) where T : unmanaged
    {
        var host = new T[source.Length];
        Download(source, host);
        return host;
    }

    /// <summary>Queues a memset of the view to zero bits, counted as a launch (it is a device operation like one).</summary>
    internal void Zero<T>(ArrayView<T> view) where T : unmanaged
    {
        view.MemSetToZero();
        Stats.CountLaunch("memset");
    }

    /// <inheritdoc />
    public override void Synchronize()
    {
        Accelerator.Synchronize();
        Stats.CountSynchronization();
    }

    /// <inheritdoc />
    /// <remarks>
    /// On CUDA an event in the stream. The simulator runs each launch before the call returns, so there a host clock
    /// reading is where its queue is; ILGPU's own CPU markers read the wall clock (DateTime.UtcNow), which the system may
    /// step or slew, while a step's own time comes from the monotonic Stopwatch. On this machine the two clocks once ran
    /// 0.5 % apart for a whole test run, and phases summed to more than the step that held them.
    /// </remarks>
    public override DeviceTimeMark MarkTime() =>
        Accelerator is CudaAccelerator ? new StreamTimeMark(Accelerator.DefaultStream.AddProfilingMarker()) : new HostTimeMark();

    /// <inheritdoc />
    public override long? AvailableBytes() => Accelerator is CudaAccelerator cuda ? cuda.GetFreeMemory() + _pool.CachedBytes : null;

    private protected override bool IsDeviceOutOfMemory(Exception e) => IsCudaOutOfMemory(e);

    /// <summary>
    /// True for ILGPU's report of a failed cuMemAlloc (a <see cref="CudaException"/> whose error is CUDA_ERROR_OUT_OF_MEMORY),
    /// and for no other CUDA error: a kernel fault earlier in the stream (an illegal address, say) surfaces at the next call,
    /// an allocation among them, and must not read as "out of memory" nor have the cache freed and the call retried.
    /// </summary>
    internal static bool IsCudaOutOfMemory(Exception e) => e is CudaException cuda && IsOutOfMemoryError(cuda.Error);

    /// <summary>ILGPU names a <see cref="CudaException"/>'s error by the <see cref="CudaError"/> member's name.</summary>
    internal static bool IsOutOfMemoryError(string? error) => error == nameof(CudaError.CUDA_ERROR_OUT_OF_MEMORY);


    /// <inheritdoc />
    public override void Dispose()
    {
        GemmLibrary?.Dispose();
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

using Grpo.Native.Cpu;
using Grpo.Native.Ilgpu;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Devices;

/// <summary>
/// An execution backend: it allocates tensors and runs the GRPO operations on them.
/// Create one with <see cref="Create(DeviceKind)"/> or <see cref="FromEnvironment"/>, and dispose it last.
/// </summary>
public abstract class Device : IDisposable
{
    /// <summary>Environment variable read by <see cref="FromEnvironment"/>: auto, cpu, cuda or ilgpu-cpu.</summary>
    public const string EnvironmentVariable = "GRPO_DEVICE";

    /// <summary>The backend kind (never <see cref="DeviceKind.Auto"/>).</summary>
    public abstract DeviceKind Kind { get; }

    /// <summary>A human-readable name, e.g. the GPU model.</summary>
    public abstract string Name { get; }

    /// <summary>The GRPO operations, running on this device.</summary>
    public abstract IGrpoOperations Operations { get; }

    /// <summary>Allocates an uninitialised tensor of the given shape on this device.</summary>
    /// <exception cref="DeviceOutOfMemoryException">The device has not enough memory left; the message gives both sizes.</exception>
    public unsafe Tensor<T> Allocate<T>(params int[] shape) where T : unmanaged
    {
        var tensorShape = new TensorShape(shape);
        long bytes = tensorShape.ElementCount * sizeof(T);
        TensorStorage<T> storage;
        try
        {
            storage = CreateStorage<T>(tensorShape.ElementCount);
        }
        catch (Exception e) when (e is OutOfMemoryException || IsDeviceOutOfMemory(e))
        {
            throw new DeviceOutOfMemoryException(ToString(), bytes, AvailableBytes(), e);
        }
        return new Tensor<T>(this, tensorShape, storage);
    }

    /// <summary>Bytes the device can still allocate, when it can tell; used in out-of-memory messages.</summary>
    public abstract long? AvailableBytes();

    /// <summary>True when <paramref name="e"/> is this backend's own out-of-memory error.</summary>
    private protected virtual bool IsDeviceOutOfMemory(Exception e) => false;

    /// <summary>Allocates a tensor and copies <paramref name="data"/> into it.</summary>
    public Tensor<T> FromArray<T>(ReadOnlySpan<T> data, params int[] shape) where T : unmanaged
    {
        var tensor = Allocate<T>(shape);
        try
        {
            tensor.CopyFrom(data);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Waits until every queued operation has finished.</summary>
    public abstract void Synchronize();

    /// <summary>
    /// Marks the current end of the device's queue without waiting; subtract two marks (<see cref="DeviceTimeMark.SecondsSince"/>)
    /// to time what ran between them. Dispose it when done.
    /// </summary>
    public abstract DeviceTimeMark MarkTime();

    // A switch rather than a generic virtual: C# cannot carry the 'unmanaged' constraint into overrides.
    private TensorStorage<T> CreateStorage<T>(long length) where T : unmanaged => this switch
    {
        CpuDevice cpu => new CpuStorage<T>(cpu, length),
        IlgpuDevice ilgpu => new IlgpuStorage<T>(ilgpu, length),
        _ => throw new NotSupportedException($"{GetType().Name} has no tensor storage."),
    };

    /// <summary>Frees the backend's resources.</summary>
    public abstract void Dispose();

    /// <summary>Where <see cref="DeviceKind.Auto"/> says, once per process, which backend it chose and why (null: nowhere). The CLI sets standard error.</summary>
    public static TextWriter? DiagnosticLog { get; set; }

    private static int _autoChoiceLogged;

    /// <summary>Creates a device of the given kind.</summary>
    /// <exception cref="NotSupportedException">CUDA was asked for and no NVIDIA GPU is visible.</exception>
    public static Device Create(DeviceKind kind) => Create(kind, cuda: null);

    /// <summary>
    /// Creates a device of the given kind; <paramref name="cuda"/> sets how CUDA runs its GEMMs (cuBLAS, TF32), and applies when
    /// the device is CUDA (<see cref="DeviceKind.Auto"/> choosing CUDA included).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="cuda"/> asks for cuBLAS or TF32 on a kind that has no GPU, or TF32 without cuBLAS.</exception>
    public static Device Create(DeviceKind kind, CudaOptions? cuda)
    {
        if (cuda is not null && kind is not (DeviceKind.Cuda or DeviceKind.Auto) && cuda.AsksForCuda())
            throw new ArgumentException($"The CUDA options ask for cuBLAS or TF32, which only the cuda device has; this is {kind}. " +
                "Create a cuda (or auto) device, or leave the options out.", nameof(cuda));
        return kind switch
        {
            DeviceKind.Auto => CreateAuto(cuda),
            DeviceKind.Cpu => new CpuDevice(),
            DeviceKind.IlgpuCpu => IlgpuDevice.CreateCpuSimulator(),
            DeviceKind.IlgpuCpuCudaShapes => IlgpuDevice.CreateCpuSimulator(cudaLaunchShapes: true),
            DeviceKind.Cuda => IlgpuDevice.CreateCuda(cuda),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Use Auto, Cpu, Cuda, IlgpuCpu or IlgpuCpuCudaShapes."),
        };
    }

    /// <summary>CUDA when a GPU is usable, else the managed CPU backend; logs the choice once.</summary>
    private static Device CreateAuto(CudaOptions? cuda)
    {
        Device device;
        string why;
        if (IlgpuDevice.IsCudaAvailable())
        {
            device = IlgpuDevice.CreateCuda(cuda);
            why = "a CUDA GPU is visible";
        }
        else
        {
            device = new CpuDevice();
            why = $"no usable CUDA GPU (looked for the driver as {CudaDriverLibrary.Describe()})" +
                  (cuda is not null && cuda.AsksForCuda() ? "; the CUDA options (cuBLAS, TF32) do not apply" : "");
        }
        if (Interlocked.Exchange(ref _autoChoiceLogged, 1) == 0)
            DiagnosticLog?.WriteLine($"device auto: {device} ({why})");
        return device;
    }

    /// <summary>Creates a device named by text: auto, cpu, cuda or ilgpu-cpu (case-insensitive).</summary>
    public static Device Create(string name) => Create(ParseKind(name, nameof(name)));

    /// <summary>Creates the device that <c>GRPO_DEVICE</c> names, or <see cref="DeviceKind.Auto"/> when it is not set.</summary>
    public static Device FromEnvironment()
    {
        string? value = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(value) ? Create(DeviceKind.Auto) : Create(ParseKind(value, EnvironmentVariable));
    }

    /// <summary>Parses auto, cpu, cuda or ilgpu-cpu (case-insensitive).</summary>
    /// <exception cref="ArgumentException">The text names no device kind.</exception>
    public static DeviceKind ParseKind(string name, string argumentName = "device") =>
        name.Trim().ToLowerInvariant() switch
        {
            "auto" => DeviceKind.Auto,
            "cpu" => DeviceKind.Cpu,
            "cuda" => DeviceKind.Cuda,
            "ilgpu-cpu" => DeviceKind.IlgpuCpu,
            "ilgpu-cpu-cuda" => DeviceKind.IlgpuCpuCudaShapes,
            _ => throw new ArgumentException(
                $"'{name}' is not a device: use auto, cpu, cuda or ilgpu-cpu (ilgpu-cpu-cuda: the simulator with CUDA's launch shapes).", argumentName),
        };

    /// <inheritdoc />
    public override string ToString() => $"{Kind} ({Name})";
}

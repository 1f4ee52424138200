using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using NUnit.Framework;

namespace Grpo.Native.Tests.Support;

/// <summary>
/// One device of each kind for the whole test run: creating an ILGPU context and compiling kernels
/// is slow, and kernels are cached per device, so tests share them. CUDA joins when a GPU is visible.
/// </summary>
[SetUpFixture]
public sealed class TestDevices
{
    private static readonly Dictionary<DeviceKind, Device> Devices = new();
    private static readonly object Gate = new();

    /// <summary>The backends every operation test runs on.</summary>
    public static IEnumerable<DeviceKind> Kinds()
    {
        yield return DeviceKind.Cpu;
        yield return DeviceKind.IlgpuCpu;
        if (CudaVisible.Value) yield return DeviceKind.Cuda;
    }

    private static readonly Lazy<bool> CudaVisible = new(IlgpuDevice.IsCudaAvailable);

    public static Device Get(DeviceKind kind)
    {
        lock (Gate)
        {
            if (!Devices.TryGetValue(kind, out var device))
                Devices[kind] = device = Device.Create(kind);
            return device;
        }
    }

    [OneTimeTearDown]
    public void DisposeAll()
    {
        lock (Gate)
        {
            foreach (var device in Devices.Values) device.Dispose();
            Devices.Clear();
        }
    }
}

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

    /// <summary>
    /// <paramref name="cases"/>, then the first <paramref name="count"/> ILGPU-simulator cases again on the simulator
    /// with CUDA's launch shapes (32-thread warps, 256-thread row groups, 16×16 matmul groups): one small case per
    /// kernel family checks the configuration a GPU runs, without running the whole suite twice on the simulator.
    /// The device kind must be each case's first argument.
    /// </summary>
    public static IEnumerable<TestCaseData> PlusCudaShapes(IEnumerable<TestCaseData> cases, int count = 1)
    {
        var list = cases.ToList();
        var shaped = list.Where(c => c.Arguments[0] is DeviceKind.IlgpuCpu).Take(count).Select(c =>
        {
            var arguments = (object?[])c.Arguments.Clone();
            arguments[0] = DeviceKind.IlgpuCpuCudaShapes;
            return new TestCaseData(arguments);
        }).ToList();
        return list.Concat(shaped);
    }

    /// <summary><see cref="Kinds"/> without the ILGPU simulator: for sizes that take it minutes (CUDA joins when visible).</summary>
    public static IEnumerable<DeviceKind> KindsBesidesTheSimulator() => Kinds().Where(k => k != DeviceKind.IlgpuCpu);

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

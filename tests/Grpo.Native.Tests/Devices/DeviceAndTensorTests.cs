using Grpo.Native.Devices;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Devices;

public sealed class DeviceAndTensorTests
{
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RoundTripKeepsEveryElement(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] data = TestRandom.Normal(random, 3 * 37);
        using var tensor = device.FromArray<float>(data, 3, 37);
        Assert.That(tensor.Shape.ToString(), Is.EqualTo("[3, 37]"));
        Assert.That(tensor.ToArray(), Is.EqualTo(data));
        tensor.Fill(2.5f);
        Assert.That(tensor.ToArray(), Is.All.EqualTo(2.5f));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void CopyWithWrongLengthNamesBothSizes(DeviceKind kind)
    {
        using var tensor = TestDevices.Get(kind).Allocate<int>(2, 5);
        var error = Assert.Throws<ArgumentException>(() => tensor.CopyFrom(new int[9]));
        Assert.That(error!.Message, Does.Contain("9 elements").And.Contain("[2, 5]"));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ReshapeSharesMemoryAndOwnsNothing(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var tensor = device.FromArray<float>(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var view = tensor.Reshape(3, 2);
        Assert.That(view.IsView && !tensor.IsView);
        view.CopyFrom(new float[] { 6, 5, 4, 3, 2, 1 });
        Assert.That(tensor.ToArray(), Is.EqualTo(new float[] { 6, 5, 4, 3, 2, 1 }));
        view.Dispose();
        Assert.That(tensor.ToArray()[0], Is.EqualTo(6f), "disposing a view must not free the memory");
        var error = Assert.Throws<ArgumentException>(() => tensor.Reshape(4, 2));
        Assert.That(error!.Message, Does.Contain("[2, 3]").And.Contain("[4, 2]"));
        tensor.Dispose();
        Assert.That(view.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => view.ToArray());
    }

    [Test]
    public void ZeroDimensionIsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => TestDevices.Get(DeviceKind.Cpu).Allocate<float>(4, 0));
        Assert.That(error!.Message, Does.Contain("[4, 0]"));
    }

    [TestCase("cpu", DeviceKind.Cpu)]
    [TestCase(" CUDA ", DeviceKind.Cuda)]
    [TestCase("ilgpu-cpu", DeviceKind.IlgpuCpu)]
    [TestCase("Auto", DeviceKind.Auto)]
    public void ParsesDeviceNames(string text, DeviceKind expected) =>
        Assert.That(Device.ParseKind(text), Is.EqualTo(expected));

    [Test]
    public void UnknownDeviceNameSaysWhatIsAllowed()
    {
        var error = Assert.Throws<ArgumentException>(() => Device.ParseKind("tpu", "GRPO_DEVICE"));
        Assert.That(error!.ParamName, Is.EqualTo("GRPO_DEVICE"));
        Assert.That(error.Message, Does.Contain("auto, cpu, cuda or ilgpu-cpu"));
    }

    [Test]
    public void AutoWithoutGpuPicksTheManagedCpuBackend()
    {
        if (Grpo.Native.Ilgpu.IlgpuDevice.IsCudaAvailable()) Assert.Ignore("a CUDA GPU is visible here");
        using var device = Device.Create(DeviceKind.Auto);
        Assert.That(device.Kind, Is.EqualTo(DeviceKind.Cpu));
    }

    [Test]
    public void CudaWithoutGpuExplainsTheAlternative()
    {
        if (Grpo.Native.Ilgpu.IlgpuDevice.IsCudaAvailable()) Assert.Ignore("a CUDA GPU is visible here");
        var error = Assert.Throws<NotSupportedException>(() => Device.Create(DeviceKind.Cuda));
        Assert.That(error!.Message, Does.Contain("GRPO_DEVICE=cpu"));
    }

    [Test]
    public void TensorFromAnotherDeviceIsRefused()
    {
        var cpu = TestDevices.Get(DeviceKind.Cpu);
        var ilgpu = TestDevices.Get(DeviceKind.IlgpuCpu);
        using var tensor = ilgpu.Allocate<float>(4);
        var error = Assert.Throws<ArgumentException>(
            () => Grpo.Native.Operations.Guard.OnDevice(tensor, cpu, "logits"));
        Assert.That(error!.Message, Does.Contain("'logits'").And.Contain("same device"));
    }
}

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
    public void RangeCopiesTouchOnlyTheirElements(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] data = TestRandom.Normal(random, 4 * 9);
        using var tensor = device.FromArray<float>(data, 4, 9);
        using var view = tensor.Slice(9, 3, 9); // rows 1..3: ranges are relative to the view
        float[] piece = TestRandom.Normal(random, 5);
        view.CopyFrom(7, piece);
        piece.CopyTo(data, 9 + 7);
        Assert.That(tensor.ToArray(), Is.EqualTo(data));
        var read = new float[6];
        view.CopyTo(20, read);
        Assert.That(read, Is.EqualTo(data[29..35]));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => view.CopyTo(25, read));
        Assert.That(error!.ParamName, Is.EqualTo("start"));
        Assert.That(error.Message, Does.Contain("[25, 31)").And.Contain("27 elements"));
        Assert.Throws<ArgumentOutOfRangeException>(() => view.CopyFrom(-1, piece));
    }

    [Test]
    public void TheCpuBackendReusesTheArraysOfDisposedTensors()
    {
        using var device = new Grpo.Native.Cpu.CpuDevice();
        using (var first = device.Allocate<float>(3, 4)) { }
        Assert.That(device.CachedBytes, Is.EqualTo(48), "a disposed tensor's array is kept");
        long allocations = device.ArrayAllocations;
        using (var same = device.Allocate<float>(12))
        {
            Assert.That(device.ArrayAllocations, Is.EqualTo(allocations), "the same length reuses the array");
            Assert.That(device.CachedBytes, Is.Zero);
            Assert.That(device.AllocatedBytes, Is.EqualTo(48));
            using var other = device.Allocate<float>(13);
            using var ints = device.Allocate<int>(12);
            Assert.That(device.ArrayAllocations, Is.EqualTo(allocations + 2), "another length or element type needs a new array");
            Assert.That(device.PeakAllocatedBytes, Is.EqualTo(48 + 52 + 48));
        }
        Assert.That(device.AllocatedBytes, Is.Zero);
        Assert.That(device.CachedBytes, Is.EqualTo(48 + 52 + 48));
        device.ResetPeakAllocatedBytes();
        Assert.That(device.PeakAllocatedBytes, Is.Zero);
        device.ClearCache();
        Assert.That(device.CachedBytes, Is.Zero);
    }

    /// <summary>
    /// Shapes that change every step (prompts of other lengths) must not collect a set of arrays per shape: live and
    /// cached arrays stay within 1.25 × the peak of live tensors, the least recently returned dropped first.
    /// </summary>
    [Test]
    public void TheCpuBackendsCacheStaysBoundedWhenShapesKeepChanging()
    {
        using var device = new Grpo.Native.Cpu.CpuDevice();
        using var resident = device.Allocate<float>(4000);                 // 16,000 bytes live throughout
        for (int step = 0; step < 200; step++)
        {
            using var a = device.Allocate<float>(1000 + step);            // a "step" of two tensors of a new shape
            using var b = device.Allocate<float>(500 + step);
        }
        long peak = device.PeakAllocatedBytes;
        TestContext.Out.WriteLine($"peak {peak} bytes live, {device.CachedBytes} cached after 200 shapes");
        Assert.That(peak, Is.EqualTo(16_000 + 4 * (1199 + 699)));
        Assert.That(device.AllocatedBytes + device.CachedBytes, Is.LessThanOrEqualTo(peak + peak / 4));
        long allocations = device.ArrayAllocations;
        using (device.Allocate<float>(1199)) { }
        Assert.That(device.ArrayAllocations, Is.EqualTo(allocations), "the most recently returned array is still cached");
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

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void SliceReadsAndWritesOnlyItsWindow(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var buffer = device.FromArray<float>(new float[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 10);
        var slice = buffer.Slice(3, 2, 2);                       // elements 3..6 as (2, 2)
        Assert.That(slice.ToArray(), Is.EqualTo(new float[] { 3, 4, 5, 6 }));
        slice.Fill(-1);
        Assert.That(buffer.ToArray(), Is.EqualTo(new float[] { 0, 1, 2, -1, -1, -1, -1, 7, 8, 9 }));
        var inner = slice.Reshape(4).Slice(1, 2);                // a view of a view keeps both offsets: elements 4..5
        inner.CopyFrom(new float[] { 40, 50 });
        Assert.That(buffer.ToArray(), Is.EqualTo(new float[] { 0, 1, 2, -1, 40, 50, -1, 7, 8, 9 }));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Slice(8, 3));
        Assert.That(error!.Message, Does.Contain("offset 8").And.Contain("[10]"));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void OperationsOnASliceTouchOnlyItsWindow(DeviceKind kind)
    {
        // Parameters live in one buffer and operations run on named slices of it: the backends must
        // honour the slice's offset, not read or write from the start of the storage.
        var device = TestDevices.Get(kind);
        float[] data = Enumerable.Range(1, 12).Select(i => (float)i).ToArray();
        using var buffer = device.FromArray<float>(data, 12);
        var middle = buffer.Slice(4, 4);
        device.Operations.Scale(middle, 10);
        Assert.That(device.Operations.SumOfSquares(middle), Is.EqualTo(50.0 * 50 + 60 * 60 + 70 * 70 + 80 * 80));
        Assert.That(buffer.ToArray(), Is.EqualTo(new float[] { 1, 2, 3, 4, 50, 60, 70, 80, 9, 10, 11, 12 }));
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

    /// <summary>
    /// Time marks measure what the queue did between them without a wait: host time passes while the queue is idle, so a mark
    /// queued 50 ms after another is reached at least 50 ms later, and marks around queued work measure it from the device.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void TimeMarksMeasureTheQueueWithoutWaiting(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var stats = (device as Grpo.Native.Ilgpu.IlgpuDevice)?.Stats;
        long syncsBefore = stats?.Synchronizations ?? 0;
        using var first = device.MarkTime();
        Thread.Sleep(50);
        using var afterSleep = device.MarkTime();
        using var a = device.Allocate<float>(1 << 16);
        a.Fill(1f);
        using var sum = device.Allocate<float>(1 << 16);
        device.Operations.Add(sum, a, a);
        using var afterWork = device.MarkTime();
        Assert.That((stats?.Synchronizations ?? 0) - syncsBefore, Is.Zero, "marking waits for nothing");
        Assert.That(afterSleep.SecondsSince(first), Is.GreaterThanOrEqualTo(0.05));
        Assert.That(afterWork.SecondsSince(afterSleep), Is.GreaterThanOrEqualTo(0));
        Assert.That(afterWork.SecondsSince(first), Is.GreaterThanOrEqualTo(afterSleep.SecondsSince(first)), "marks in queue order");
    }

    /// <summary>
    /// Off a GPU, marks read the clock a step's own time is read with (Stopwatch), so an interval between marks lies within
    /// any Stopwatch interval around it, as a step's phases lie within the step. ILGPU's CPU markers read the wall clock,
    /// which the system may step: once, for a whole test run, it ran 0.5 % apart from Stopwatch, and the phases of every
    /// step in TrainingStepDeviceTrafficTests summed to more than the step.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void OffAGpuMarksReadTheStepsOwnClock(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        if (kind == DeviceKind.Cuda) Assert.Ignore("a GPU's marks are events in its stream");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var first = device.MarkTime();
        Thread.Sleep(20);
        using var second = device.MarkTime();
        double enclosing = clock.Elapsed.TotalSeconds;
        Assert.That(first, Is.InstanceOf<HostTimeMark>(), "a host reading of Stopwatch's clock");
        Assert.That(second.SecondsSince(first), Is.InRange(0.02, enclosing));
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Devices;

/// <summary>The ILGPU device counts every launch, copy, synchronisation, allocation and free it does.</summary>
public sealed class DeviceStatsTests
{
    [Test]
    public void EachCallIsCountedOnceAndResetClearsTheCounts()
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var stats = device.Stats;
        var before = stats.Snapshot();
        var kernelsBefore = stats.LaunchesByKernel();
        long reusesBefore = stats.Reuses;
        using (var a = device.FromArray<float>(new float[] { 1, 2, 3 }, 3))      // 1 buffer, 1 upload
        using (var sum = device.Allocate<float>(3))                                // 1 buffer
        {
            device.Operations.Add(sum, a, a);                                      // 1 launch
            device.Synchronize();                                                  // 1 sync
            Assert.That(sum.ToArray(), Is.EqualTo(new float[] { 2, 4, 6 }));       // 1 download
        }                                                                          // both buffers back to the cache
        var counted = stats.Snapshot() - before;
        Assert.That(counted with { Allocations = 0 }, Is.EqualTo(new DeviceCounts(
            KernelLaunches: 1, HostToDeviceCopies: 1, DeviceToHostCopies: 1, Synchronizations: 1, Allocations: 0, Frees: 0)));
        Assert.That(counted.Allocations + (stats.Reuses - reusesBefore), Is.EqualTo(2), "each tensor gets one buffer, new or cached");
        Assert.That(counted.HostCopies, Is.EqualTo(2));
        Assert.That(KernelLaunches.Between(kernelsBefore, stats.LaunchesByKernel()),
            Is.EqualTo(new Dictionary<string, long> { ["ActivationKernels.Add"] = 1 }), "the launch, by kernel");

        stats.Reset();
        Assert.That(stats.Snapshot(), Is.EqualTo(default(DeviceCounts)));
        Assert.That(stats.LaunchesByKernel(), Is.Empty);
        Assert.That(stats.BytesAllocated + stats.Reuses, Is.Zero);
    }

    [Test]
    public void ADisposedTensorsBufferServesTheNextTensorOfItsSizeClass()
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        using (device.Allocate<float>(5000)) { }   // warms the class of 5000 floats (5120: a quarter of 4096 apart)
        var before = device.Stats.Snapshot();
        long reuses = device.Stats.Reuses;
        using (var again = device.Allocate<float>(4900))
        {
            again.Fill(1f);
            Assert.That(again.ToArray(), Is.All.EqualTo(1f));
        }
        Assert.That((device.Stats.Snapshot() - before).Allocations, Is.Zero);
        Assert.That(device.Stats.Reuses - reuses, Is.EqualTo(1));

        device.ReleaseCachedMemory();
        Assert.That(device.CachedBytes, Is.Zero);
    }

    [TestCase(1, 256)]
    [TestCase(256, 256)]
    [TestCase(257, 512)]
    [TestCase(1024, 1024)]
    [TestCase(1025, 1280)]
    [TestCase(5000, 5120)]
    [TestCase(4096, 4096)]
    [TestCase(4097, 5120)]
    public void SizeClassesWasteAtMostAQuarter(long length, long expected)
    {
        Assert.That(DeviceMemoryPool.SizeClass(length), Is.EqualTo(expected));
        // Below 1024 elements the class is the next multiple of 256 (< 256 unused), above it at most a quarter more.
        Assert.That(DeviceMemoryPool.SizeClass(length), Is.LessThanOrEqualTo(Math.Max(length + 255, length * 1.25)));
    }
}

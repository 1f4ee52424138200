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
        using (var a = device.FromArray<float>(new float[] { 1, 2, 3 }, 3))      // 1 allocation, 1 upload
        using (var sum = device.Allocate<float>(3))                                // 1 allocation
        {
            device.Operations.Add(sum, a, a);                                      // 1 launch
            device.Synchronize();                                                  // 1 sync
            Assert.That(sum.ToArray(), Is.EqualTo(new float[] { 2, 4, 6 }));       // 1 download
        }                                                                          // 2 frees
        var counted = stats.Snapshot() - before;
        Assert.That(counted, Is.EqualTo(new DeviceCounts(
            KernelLaunches: 1, HostToDeviceCopies: 1, DeviceToHostCopies: 1, Synchronizations: 1, Allocations: 2, Frees: 2)));
        Assert.That(counted.HostCopies, Is.EqualTo(2));

        stats.Reset();
        Assert.That(stats.Snapshot(), Is.EqualTo(default(DeviceCounts)));
        Assert.That(stats.BytesAllocated, Is.Zero);
    }
}

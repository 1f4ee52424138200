using Grpo.Native.Devices;
using Grpo.Native.Operations;
using NUnit.Framework;

namespace Grpo.Native.Tests.Kernels;

/// <summary>Kernels are cached per device; two families' kernels with the same name must not be confused.</summary>
public sealed class KernelCacheTests
{
    [Test]
    public void KernelsWithTheSameNameInDifferentFamiliesStayApart()
    {
        // A fresh device, so the cache starts empty and the load order is the one below.
        using var device = Device.Create(DeviceKind.IlgpuCpu);
        var ops = device.Operations;
        using var scores = device.FromArray<float>(new float[] { 1, 2, 3, 5 }, 4, 1);
        using var rewards = device.Allocate<float>(4);
        using var advantages = device.Allocate<float>(4);
        using var mean = device.Allocate<float>(2);
        using var std = device.Allocate<float>(2);
        ops.ComputeAdvantages(scores, [1f], 2, RewardScaling.Group, rewards, advantages, mean, std); // AdvantageKernels.Scale

        using var values = device.FromArray<float>(new float[] { 1, -2, 3 }, 3);
        ops.Scale(values, 2f);                                                                      // OptimizerKernels.Scale
        Assert.That(values.ToArray(), Is.EqualTo(new float[] { 2, -4, 6 }));
    }
}

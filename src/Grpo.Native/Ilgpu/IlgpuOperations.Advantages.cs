using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _advantageGate = new();

    /// <summary>The advantages' scratch, [weights (F) | zero-std flags (N/G, ints) | statistics], grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _advantageScratch;

    public AdvantageStatistics ComputeAdvantages(
        Tensor<float> rewardsPerFunction, ReadOnlySpan<float> weights, int groupSize, RewardScaling scaling,
        Tensor<float> rewards, Tensor<float> advantages, Tensor<float> groupMean, Tensor<float> groupStd)
    {
        var (n, f, groups) = AdvantageValidation.Validate(
            Device, rewardsPerFunction, weights, groupSize, scaling, rewards, advantages, groupMean, groupStd);
        lock (_advantageGate)
        {
            var scratch = (_advantageScratch ??= new ReusableDeviceBuffer(Device)).Get(f + groups + AdvantageKernels.StatCount);
            var weightBuffer = scratch.SubView(0, f);                                     // (F)
            var zeroStd = scratch.SubView(f, groups).Cast<int>();                         // (N/G)
            var stats = scratch.SubView(f + groups, AdvantageKernels.StatCount);          // (StatCount)
            Device.Upload(weightBuffer, weights);
            return Advantages(rewardsPerFunction, groupSize, scaling, rewards, advantages, groupMean, groupStd,
                n, f, groups, weightBuffer, zeroStd, stats);
        }
    }

    /// <summary>Queues the advantage kernels and reads the statistics back; call under the gate.</summary>
    private AdvantageStatistics Advantages(Tensor<float> rewardsPerFunction, int groupSize, RewardScaling scaling,
        Tensor<float> rewards, Tensor<float> advantages, Tensor<float> groupMean, Tensor<float> groupStd,
        int n, int f, int groups, ArrayView<float> weightBuffer, ArrayView<int> zeroStd, ArrayView<float> stats)
    {

        var rewardView = View(rewards, nameof(rewards)).BaseView;                 // (N)
        var advantageView = View(advantages, nameof(advantages)).BaseView;       // (N)
        var stdView = View(groupStd, nameof(groupStd)).BaseView;                 // (N/G)

        var groupStatistics = Device.Kernel(typeof(AdvantageKernels), nameof(AdvantageKernels.GroupStatistics), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, AdvantageSizes,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>>(
                AdvantageKernels.GroupStatistics));
        groupStatistics(groups, View(rewardsPerFunction, nameof(rewardsPerFunction)).BaseView, weightBuffer,
            new AdvantageSizes(n, f, groupSize), rewardView, advantageView,
            View(groupMean, nameof(groupMean)).BaseView, stdView, zeroStd);

        var batchStatistics = Device.Kernel(typeof(AdvantageKernels), nameof(AdvantageKernels.BatchStatistics), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>>(AdvantageKernels.BatchStatistics));
        batchStatistics(new KernelConfig(1, Device.RowGroupSize), rewardView, zeroStd, View(rewardsPerFunction, nameof(rewardsPerFunction)).BaseView, stats);

        if (scaling != RewardScaling.None)
        {
            var scale = Device.Kernel(typeof(AdvantageKernels), nameof(AdvantageKernels.Scale), a =>
                a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(
                    AdvantageKernels.Scale));
            scale(n, advantageView, stdView, stats, groupSize,
                scaling == RewardScaling.Batch ? 1 : 0, AdvantageValidation.StdEpsilon);
        }

        // Reading the statistics back waits for the kernels above. An infinite reward was found on the device (the outputs
        // are then unspecified); the error, the managed backend's, reads the (N, F) rewards only then.
        var host = Device.Download(stats);
        if (float.IsFinite(host[AdvantageKernels.StatFirstInfinite]))
            AdvantageValidation.RewardsAreFiniteOrMissing(rewardsPerFunction.ToArray(), f);
        return AdvantageValidation.Statistics(groups, (int)host[AdvantageKernels.StatZeroStdGroups],
            (int)host[AdvantageKernels.StatMissing], host[AdvantageKernels.StatMean], host[AdvantageKernels.StatStd]);
    }
}

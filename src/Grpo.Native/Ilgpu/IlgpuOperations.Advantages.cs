using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    public AdvantageStatistics ComputeAdvantages(
        Tensor<float> rewardsPerFunction, ReadOnlySpan<float> weights, int groupSize, RewardScaling scaling,
        Tensor<float> rewards, Tensor<float> advantages, Tensor<float> groupMean, Tensor<float> groupStd)
    {
        var (n, f, groups) = AdvantageValidation.Validate(
            Device, rewardsPerFunction, weights, groupSize, scaling, rewards, advantages, groupMean, groupStd);
        // The (N, F) input is tiny; checking it on the host keeps the error the same as on the CPU backend.
        AdvantageValidation.RewardsAreFiniteOrMissing(rewardsPerFunction.ToArray(), f);

        var accelerator = Device.Accelerator;
        using var weightBuffer = accelerator.Allocate1D<float>(f);               // (F)
        using var zeroStd = accelerator.Allocate1D<int>(groups);                 // (N/G)
        using var stats = accelerator.Allocate1D<float>(AdvantageKernels.StatCount);
        weightBuffer.View.BaseView.CopyFromCPU(weights);

        var rewardView = View(rewards, nameof(rewards)).BaseView;                 // (N)
        var advantageView = View(advantages, nameof(advantages)).BaseView;       // (N)
        var stdView = View(groupStd, nameof(groupStd)).BaseView;                 // (N/G)

        var groupStatistics = Device.Kernel(typeof(AdvantageKernels), nameof(AdvantageKernels.GroupStatistics), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, AdvantageSizes,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>>(
                AdvantageKernels.GroupStatistics));
        groupStatistics(groups, View(rewardsPerFunction, nameof(rewardsPerFunction)).BaseView, weightBuffer.View.BaseView,
            new AdvantageSizes(n, f, groupSize), rewardView, advantageView,
            View(groupMean, nameof(groupMean)).BaseView, stdView, zeroStd.View.BaseView);

        var batchStatistics = Device.Kernel(typeof(AdvantageKernels), nameof(AdvantageKernels.BatchStatistics), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>>(AdvantageKernels.BatchStatistics));
        batchStatistics(new KernelConfig(1, Device.RowGroupSize), rewardView, zeroStd.View.BaseView, stats.View.BaseView);

        if (scaling != RewardScaling.None)
        {
            var scale = Device.Kernel(typeof(AdvantageKernels), nameof(AdvantageKernels.Scale), a =>
                a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(
                    AdvantageKernels.Scale));
            scale(n, advantageView, stdView, stats.View.BaseView, groupSize,
                scaling == RewardScaling.Batch ? 1 : 0, AdvantageValidation.StdEpsilon);
        }

        // Reading the statistics back waits for the kernels above.
        var host = stats.GetAsArray1D();
        return AdvantageValidation.Statistics(groups, (int)host[AdvantageKernels.StatZeroStdGroups],
            (int)host[AdvantageKernels.StatMissing], host[AdvantageKernels.StatMean], host[AdvantageKernels.StatStd]);
    }
}

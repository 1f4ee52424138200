using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    public GrpoObjectiveResult GrpoObjective(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy = null, Tensor<float>? dEntropy = null)
    {
        var p = GrpoObjectiveValidation.Validate(Device, logprobs, oldLogprobs, refLogprobs, advantages, mask, options, dLogprobs, entropy, dEntropy);
        int n = p.Completions;
        var logp = View(logprobs, nameof(logprobs)).BaseView;                                          // (N, T)
        // μ = 1: the old policy is the current one, detached, so ρ = exp(0) = 1 exactly.
        var old = oldLogprobs is null ? logp : View(oldLogprobs, nameof(oldLogprobs)).BaseView;       // (N, T)
        // β = 0: the kernels never read the reference; any view stands in.
        var reference = p.Beta > 0 ? View(refLogprobs!, nameof(refLogprobs)).BaseView : logp;         // (N, T)
        var maskView = View(mask, nameof(mask)).BaseView;                                             // (N, T)
        // Entropy unused (no bonus, no mask): the kernels never read it, nor write dEntropy; any view stands in.
        var entropyView = p.ReadsEntropy ? View(entropy!, nameof(entropy)).BaseView : logp;          // (N, T)
        var dLogprobView = View(dLogprobs, nameof(dLogprobs)).BaseView;                              // (N, T)
        var dEntropyView = p.EntropyCoefficient != 0 ? View(dEntropy!, nameof(dEntropy)).BaseView : dLogprobView; // (N, T)

        var accelerator = Device.Accelerator;
        using var rowStats = accelerator.Allocate1D<float>((long)n * ObjectiveKernels.RowPrepareColumns); // (N, RowPrepareColumns)
        using var rowTerms = accelerator.Allocate1D<float>((long)n * ObjectiveKernels.RowTermColumns);    // (N, RowTermColumns)
        using var scalars = accelerator.Allocate1D<float>(ObjectiveKernels.ScalarCount);                 // (ScalarCount)
        var rows = new KernelConfig(n, Device.RowGroupSize);
        var single = new KernelConfig(1, Device.RowGroupSize);

        var rowPrepare = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.RowPrepare), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>, ArrayView<float>>(
                ObjectiveKernels.RowPrepare));
        rowPrepare(rows, logp, old, maskView, p, rowStats.View.BaseView, entropyView);

        var totals = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.Totals), a =>
            a.LoadStreamKernel<ArrayView<float>, int, ArrayView<float>>(ObjectiveKernels.Totals));
        totals(single, rowStats.View.BaseView, n, scalars.View.BaseView);

        var tokenTerms = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.TokenTerms), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>>(ObjectiveKernels.TokenTerms));
        tokenTerms(rows, logp, old, reference, View(advantages, nameof(advantages)).BaseView, maskView,
            rowStats.View.BaseView, scalars.View.BaseView, p, dLogprobView, rowTerms.View.BaseView, entropyView, dEntropyView);

        var finish = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.Finish), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>>(ObjectiveKernels.Finish));
        finish(single, rowStats.View.BaseView, rowTerms.View.BaseView, p, scalars.View.BaseView);

        // Reading the scalars back waits for the kernels. The mask is checked on the device, so a bad
        // one is reported here, after the kernels ran (dLogprobs is then unspecified).
        var host = scalars.GetAsArray1D();
        if (host[ObjectiveKernels.TotalBadMask] > 0)
            throw GrpoObjectiveValidation.BadMask((long)host[ObjectiveKernels.TotalBadMask], (int)host[ObjectiveKernels.FirstBadRow]);
        return new GrpoObjectiveResult(host[ObjectiveKernels.ResultLoss], host[ObjectiveKernels.ResultLow],
            host[ObjectiveKernels.ResultHigh], host[ObjectiveKernels.ResultRegion], host[ObjectiveKernels.ResultKl],
            host[ObjectiveKernels.ResultDual], host[ObjectiveKernels.ResultCispo]);
    }
}

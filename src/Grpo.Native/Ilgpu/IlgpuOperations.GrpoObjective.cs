using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _objectiveGate = new();

    /// <summary>The objective's scratch, [row stats (N, RowPrepareColumns) | row terms (N, RowTermColumns) | scalars], grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _objectiveScratch;

    public GrpoObjectiveResult GrpoObjective(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy = null, Tensor<float>? dEntropy = null)
    {
        // Advantages and old log-probs are checked on the device and reported with the scalars (one read, not three).
        var p = GrpoObjectiveValidation.Validate(Device, logprobs, oldLogprobs, refLogprobs, advantages, mask, options, dLogprobs, entropy, dEntropy,
            checkFiniteInputs: false);
        int n = p.Completions;
        var logp = View(logprobs, nameof(logprobs)).BaseView;                                          // (N, T)
        // μ = 1: the old policy is the current one, detached, so ρ = exp(0) = 1 exactly.
        var old = oldLogprobs is null ? logp : View(oldLogprobs, nameof(oldLogprobs)).BaseView;       // (N, T)
        // β = 0: the kernels never read the reference; any view stands in.
        var reference = p.Beta > 0 ? View(refLogprobs!, nameof(refLogprobs)).BaseView : logp;         // (N, T)
        var maskView = View(mask, nameof(mask)).BaseView;                                             // (N, T)
        // No entropies given: the kernels never read them (no bonus, no mask, no metric), nor write dEntropy; any view stands in.
        var entropyView = entropy is not null ? View(entropy, nameof(entropy)).BaseView : logp;       // (N, T)
        var dLogprobView = View(dLogprobs, nameof(dLogprobs)).BaseView;                              // (N, T)
        var dEntropyView = p.EntropyCoefficient != 0 ? View(dEntropy!, nameof(dEntropy)).BaseView : dLogprobView; // (N, T)

        long statsLength = (long)n * ObjectiveKernels.RowPrepareColumns, termsLength = (long)n * ObjectiveKernels.RowTermColumns;
        lock (_objectiveGate)
        {
            var scratch = (_objectiveScratch ??= new ReusableDeviceBuffer(Device)).Get(statsLength + termsLength + ObjectiveKernels.ScalarCount);
            var rowStats = scratch.SubView(0, statsLength);                                  // (N, RowPrepareColumns)
            var rowTerms = scratch.SubView(statsLength, termsLength);                        // (N, RowTermColumns)
            var scalars = scratch.SubView(statsLength + termsLength, ObjectiveKernels.ScalarCount); // (ScalarCount)
            var host = Objective(p, n, logp, old, reference, View(advantages, nameof(advantages)).BaseView, maskView,
                dLogprobView, rowStats, rowTerms, scalars, entropyView, dEntropyView, checkOld: oldLogprobs is not null, sumEntropy: entropy is not null);
            ThrowOnBadInputs(host, advantages, oldLogprobs, p.Tokens);
            float tokens = host[ObjectiveKernels.TotalTokens];
            return new GrpoObjectiveResult(host[ObjectiveKernels.ResultLoss], host[ObjectiveKernels.ResultLow],
                host[ObjectiveKernels.ResultHigh], host[ObjectiveKernels.ResultRegion], host[ObjectiveKernels.ResultKl],
                host[ObjectiveKernels.ResultDual], host[ObjectiveKernels.ResultCispo],
                entropy is null ? float.NaN : host[ObjectiveKernels.TotalEntropy] / MathF.Max(tokens, 1f));
        }
    }

    /// <summary>
    /// The errors the managed backend raises before its work, raised from the device's counts after the kernels ran (the
    /// outputs are then unspecified), in the same order: advantages, old log-probs, mask. Only an error reads more back.
    /// </summary>
    private static void ThrowOnBadInputs(float[] host, Tensor<float> advantages, Tensor<float>? oldLogprobs, int t)
    {
        if (float.IsFinite(host[ObjectiveKernels.FirstBadAdvantageRow]))
        {
            int row = (int)host[ObjectiveKernels.FirstBadAdvantageRow];
            throw GrpoObjectiveValidation.NonFiniteAdvantage(row, advantages.ToArray()[row]);
        }
        if (host[ObjectiveKernels.TotalBadOld] > 0)
        {
            int row = (int)host[ObjectiveKernels.FirstBadOldRow], column = (int)host[ObjectiveKernels.FirstBadOldColumn];
            throw GrpoObjectiveValidation.NonFiniteOldLogprob(row, column, oldLogprobs!.ToArray()[row * t + column]);
        }
        if (host[ObjectiveKernels.TotalBadMask] > 0)
            throw GrpoObjectiveValidation.BadMask((long)host[ObjectiveKernels.TotalBadMask], (int)host[ObjectiveKernels.FirstBadRow]);
    }

    /// <summary>Queues the four objective kernels and reads the scalars back in one copy; call under the gate.</summary>
    private float[] Objective(ObjectiveParameters p, int n, ArrayView<float> logp, ArrayView<float> old,
        ArrayView<float> reference, ArrayView<float> advantages, ArrayView<float> maskView, ArrayView<float> dLogprobs,
        ArrayView<float> rowStats, ArrayView<float> rowTerms, ArrayView<float> scalars,
        ArrayView<float> entropyView, ArrayView<float> dEntropyView, bool checkOld, bool sumEntropy)
    {
        var rows = new KernelConfig(n, Device.RowGroupSize);
        var single = new KernelConfig(1, Device.RowGroupSize);

        var rowPrepare = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.RowPrepare), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, int, int>(ObjectiveKernels.RowPrepare));
        rowPrepare(rows, logp, old, maskView, p, rowStats, entropyView, advantages, checkOld ? 1 : 0, sumEntropy ? 1 : 0);

        var totals = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.Totals), a =>
            a.LoadStreamKernel<ArrayView<float>, int, ArrayView<float>>(ObjectiveKernels.Totals));
        totals(single, rowStats, n, scalars);

        var tokenTerms = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.TokenTerms), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>>(ObjectiveKernels.TokenTerms));
        tokenTerms(rows, logp, old, reference, advantages, maskView, rowStats, scalars, p, dLogprobs, rowTerms, entropyView, dEntropyView);

        var finish = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.Finish), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>>(ObjectiveKernels.Finish));
        finish(single, rowStats, rowTerms, p, scalars);

        // Reading the scalars back waits for the kernels; the input checks ran on the device and come back with them.
        return Device.Download(scalars);
    }
}

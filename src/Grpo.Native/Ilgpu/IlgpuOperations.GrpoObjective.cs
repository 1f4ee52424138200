using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _objectiveGate = new();

    /// <summary>The objective's scratch, [row stats (N, RowPrepareColumns) | row terms (N, RowTermColumns)], grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _objectiveScratch;

    /// <summary>(ScalarCount) the scalars <see cref="GrpoObjective"/> reads back.</summary>
    private ReusableDeviceBuffer? _objectiveScalars;

    public GrpoObjectiveResult GrpoObjective(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy = null, Tensor<float>? dEntropy = null)
    {
        float[] host;
        int tokens;
        lock (_objectiveGate)
        {
            var scalars = (_objectiveScalars ??= new ReusableDeviceBuffer(Device)).Get(ObjectiveScalars.Count); // (ScalarCount)
            tokens = QueueObjective(logprobs, oldLogprobs, refLogprobs, advantages, mask, options, dLogprobs, entropy, dEntropy, scalars);
            // Reading the scalars back waits for the kernels; the input checks ran on the device and come back with them.
            host = Device.Download(scalars);
        }
        ObjectiveScalars.ThrowOnBadInputs(host, advantages, oldLogprobs, tokens);
        return ObjectiveScalars.Decode(host);
    }

    public void GrpoObjectiveToDevice(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy, Tensor<float>? dEntropy, Tensor<float> scalars)
    {
        Guard.OnDevice(scalars, Device, nameof(scalars));
        Guard.Shape(scalars, nameof(scalars), ObjectiveScalars.Count);
        lock (_objectiveGate)
        {
            QueueObjective(logprobs, oldLogprobs, refLogprobs, advantages, mask, options, dLogprobs, entropy, dEntropy,
                View(scalars, nameof(scalars)).BaseView);
        }
    }

    /// <summary>Checks the arguments and queues the objective's kernels, its scalars into <paramref name="scalars"/>; returns T. Call under the gate.</summary>
    private int QueueObjective(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy, Tensor<float>? dEntropy, ArrayView<float> scalars)
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
        // Queued kernels that still read the scratch keep their order on the stream; growing it frees the old buffer, which waits for them.
        var scratch = (_objectiveScratch ??= new ReusableDeviceBuffer(Device)).Get(statsLength + termsLength);
        var rowStats = scratch.SubView(0, statsLength);                                  // (N, RowPrepareColumns)
        var rowTerms = scratch.SubView(statsLength, termsLength);                        // (N, RowTermColumns)
        if (p.MasksByEntropy != 0)
        {
            // TRL's entropy-mask threshold into the scalars, where the objective's kernels read it: nothing comes back to the host.
            var threshold = Device.Kernel(typeof(EntropyQuantileKernels), nameof(EntropyQuantileKernels.Threshold), a =>
                a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, double, ArrayView<float>>(EntropyQuantileKernels.Threshold));
            threshold(new KernelConfig(1, Device.RowGroupSize), entropyView, maskView, p.Tokens, n * p.Tokens,
                GrpoObjectiveValidation.EntropyQuantileOf(options), scalars);
        }
        Objective(p, n, logp, old, reference, View(advantages, nameof(advantages)).BaseView, maskView,
            dLogprobView, rowStats, rowTerms, scalars, entropyView, dEntropyView, checkOld: oldLogprobs is not null, sumEntropy: entropy is not null);
        return p.Tokens;
    }

    /// <summary>Queues the four objective kernels (after the entropy threshold's, when masking); call under the gate.</summary>
    private void Objective(ObjectiveParameters p, int n, ArrayView<float> logp, ArrayView<float> old,
        ArrayView<float> reference, ArrayView<float> advantages, ArrayView<float> maskView, ArrayView<float> dLogprobs,
        ArrayView<float> rowStats, ArrayView<float> rowTerms, ArrayView<float> scalars,
        ArrayView<float> entropyView, ArrayView<float> dEntropyView, bool checkOld, bool sumEntropy)
    {
        var rows = new KernelConfig(n, Device.RowGroupSize);
        var single = new KernelConfig(1, Device.RowGroupSize);

        var rowPrepare = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.RowPrepare), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, int, int, ArrayView<float>>(ObjectiveKernels.RowPrepare));
        rowPrepare(rows, logp, old, maskView, p, rowStats, entropyView, advantages, checkOld ? 1 : 0, sumEntropy ? 1 : 0, scalars);

        var totals = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.Totals), a =>
            a.LoadStreamKernel<ArrayView<float>, int, ArrayView<float>, int>(ObjectiveKernels.Totals));
        totals(single, rowStats, n, scalars, p.MasksByEntropy);

        var tokenTerms = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.TokenTerms), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>>(ObjectiveKernels.TokenTerms));
        tokenTerms(rows, logp, old, reference, advantages, maskView, rowStats, scalars, p, dLogprobs, rowTerms, entropyView, dEntropyView);

        var finish = Device.Kernel(typeof(ObjectiveKernels), nameof(ObjectiveKernels.Finish), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ObjectiveParameters, ArrayView<float>, int>(ObjectiveKernels.Finish));
        finish(single, rowStats, rowTerms, p, scalars, sumEntropy ? 1 : 0);
    }
}

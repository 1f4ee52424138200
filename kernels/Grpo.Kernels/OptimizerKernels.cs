using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>The per-step scalars of <see cref="OptimizerKernels.AdamW"/>, computed on the host in double.</summary>
/// <param name="Beta1">β1.</param>
/// <param name="Beta2">β2.</param>
/// <param name="Epsilon">ε.</param>
/// <param name="DecayFactor">1 − lr·wd.</param>
/// <param name="StepSize">lr / (1 − β1^t).</param>
/// <param name="BiasCorrection2Sqrt">√(1 − β2^t).</param>
public readonly record struct AdamWKernelScalars(
    float Beta1, float Beta2, float Epsilon, float DecayFactor, float StepSize, float BiasCorrection2Sqrt);

/// <summary>AdamW, scaling, the sum of squares for gradient clipping and the update gate on the ILGPU backend.</summary>
public static class OptimizerKernels
{
    /// <summary>
    /// Slots of an update gate (<see cref="UpdateGate"/>): the factor AdamW multiplies each gradient by (the clip), 1 when
    /// the update applies and 0 when it must change nothing, the global gradient norm, and the update's loss Σ share·loss.
    /// </summary>
    public const int GateScale = 0, GateApply = 1, GateNorm = 2, GateLoss = 3, GateCount = 4;

    /// <summary>
    /// Launched as one thread: decides on the device whether the update applies and by what factor the gradients are
    /// clipped, exactly as the host would from the values it no longer reads back: the global squared norm is the block
    /// sums added in order in double (<see cref="SumOfSquaresBlocks"/>), the norm its square root rounded to float; the
    /// loss is Σ share_k · loss_k in float, in order, over the objective calls with a share; the update applies when the
    /// previous update of the step did, no call reported a bad input, and the loss and the squared norm are finite; the
    /// factor is maxNorm / (norm + 1e-6) in double, rounded to float, when norm &gt; maxNorm, and 1 otherwise.
    /// </summary>
    /// <param name="i">The one thread.</param>
    /// <param name="partials">(blocks) the gradient's block sums of squares.</param>
    /// <param name="objectiveScalars">(M, ObjectiveKernels.ScalarCount) the scalars of the update's objective calls.</param>
    /// <param name="shares">(M) each call's share of the loss; 0: the call did not run, its row is not read.</param>
    /// <param name="maxNorm">The clipping norm; +∞ for none.</param>
    /// <param name="previousGate">(GateCount) the step's previous gate; read when <paramref name="hasPrevious"/> is 1.</param>
    /// <param name="hasPrevious">1 when an earlier update of the step exists.</param>
    /// <param name="gate">(GateCount) output.</param>
    public static void UpdateGate(Index1D i, ArrayView<float> partials, ArrayView<float> objectiveScalars, ArrayView<float> shares,
        float maxNorm, ArrayView<float> previousGate, int hasPrevious, ArrayView<float> gate)
    {
        double squared = 0;
        for (long b = 0; b < partials.Length; b++) squared += partials[b];
        float norm = (float)XMath.Sqrt(squared);
        float loss = 0;
        bool badInput = false;
        for (long k = 0; k < shares.Length; k++)
        {
            float share = shares[k];
            if (share == 0f) continue;
            long at = k * ObjectiveKernels.ScalarCount;
            loss += share * objectiveScalars[at + ObjectiveKernels.ResultLoss];
            badInput |= ObjectiveKernels.ReportsBadInput(objectiveScalars, at);
        }
        bool previousApplied = hasPrevious == 0 || previousGate[GateApply] != 0f;
        bool apply = previousApplied && !badInput && !XMath.IsNaN(loss) && !XMath.IsInfinity(loss)
            && !XMath.IsNaN(squared) && !XMath.IsInfinity(squared);
        gate[GateScale] = norm > maxNorm ? (float)(maxNorm / ((double)norm + 1e-6)) : 1f;
        gate[GateApply] = apply ? 1f : 0f;
        gate[GateNorm] = norm;
        gate[GateLoss] = loss;
    }

    /// <summary>
    /// One group per block of <paramref name="blockSize"/> elements: the block's fp32 sum of squares
    /// in a fixed reduction order, written to <paramref name="partials"/>[block].
    /// </summary>
    /// <param name="values">(P) the values.</param>
    /// <param name="blockSize">Elements per block.</param>
    /// <param name="partials">(blocks) output block sums.</param>
    public static void SumOfSquaresBlocks(ArrayView<float> values, int blockSize, ArrayView<float> partials)
    {
        int block = Grid.IdxX, t = Group.IdxX, stride = Group.DimX;
        long begin = (long)block * blockSize;
        long end = XMath.Min(begin + blockSize, values.Length);
        float sum = 0;
        for (long i = begin + t; i < end; i += stride)
        {
            float x = values[i];
            sum += x * x;
        }
        sum = GroupReduce.Sum(sum);
        if (t == 0) partials[block] = sum;
    }

    /// <summary>values[i] *= scale.</summary>
    /// <param name="i">The element index.</param>
    /// <param name="values">(P) values, scaled in place.</param>
    /// <param name="scale">The factor.</param>
    public static void Scale(Index1D i, ArrayView<float> values, float scale) => values[i] = values[i] * scale;

    /// <summary>One AdamW step for element i, in PyTorch's order (decay, moments, bias-corrected update).</summary>
    /// <param name="i">The element index.</param>
    /// <param name="parameters">(P) parameters, updated in place.</param>
    /// <param name="gradients">(P) gradients.</param>
    /// <param name="firstMoment">(P) m, updated in place.</param>
    /// <param name="secondMoment">(P) v, updated in place.</param>
    /// <param name="s">The step's scalars.</param>
    /// <param name="gate">(GateCount) from <see cref="UpdateGate"/>: nothing changes when its apply slot is 0, and each
    /// gradient is multiplied by its factor (one rounding, as clipping the gradients in place would); read when <paramref name="gated"/> is 1.</param>
    /// <param name="gated">1 to obey <paramref name="gate"/>, 0 to update unconditionally with the gradients as they are.</param>
    public static void AdamW(Index1D i, ArrayView<float> parameters, ArrayView<float> gradients,
        ArrayView<float> firstMoment, ArrayView<float> secondMoment, AdamWKernelScalars s, ArrayView<float> gate, int gated)
    {
        if (gated != 0 && gate[GateApply] == 0f) return;
        float g = gated != 0 ? gradients[i] * gate[GateScale] : gradients[i];
        float m0 = firstMoment[i];
        float m = m0 + (1 - s.Beta1) * (g - m0);
        float v = s.Beta2 * secondMoment[i] + (1 - s.Beta2) * g * g;
        firstMoment[i] = m;
        secondMoment[i] = v;
        float denom = XMath.Sqrt(v) / s.BiasCorrection2Sqrt + s.Epsilon;
        parameters[i] = parameters[i] * s.DecayFactor - s.StepSize * (m / denom);
    }
}

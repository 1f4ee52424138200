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

/// <summary>AdamW, scaling and the sum of squares for gradient clipping on the ILGPU backend.</summary>
public static class OptimizerKernels
{
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
    public static void AdamW(Index1D i, ArrayView<float> parameters, ArrayView<float> gradients,
        ArrayView<float> firstMoment, ArrayView<float> secondMoment, AdamWKernelScalars s)
    {
        float g = gradients[i];
        float m0 = firstMoment[i];
        float m = m0 + (1 - s.Beta1) * (g - m0);
        float v = s.Beta2 * secondMoment[i] + (1 - s.Beta2) * g * g;
        firstMoment[i] = m;
        secondMoment[i] = v;
        float denom = XMath.Sqrt(v) / s.BiasCorrection2Sqrt + s.Epsilon;
        parameters[i] = parameters[i] * s.DecayFactor - s.StepSize * (m / denom);
    }
}

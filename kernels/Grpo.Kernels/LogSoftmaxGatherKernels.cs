using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>Per-chunk scalars of the fused log-softmax-gather row kernels.</summary>
public readonly struct GatherRowArgs
{
    /// <summary>Vocabulary size V (the row length of the logits chunk).</summary>
    public readonly int Vocabulary;

    /// <summary>The first token row of this chunk, used to index the (M) per-token tensors.</summary>
    public readonly int FirstRow;

    /// <summary>1 / temperature (the backward's chain-rule factor).</summary>
    public readonly float InverseTemperature;

    /// <summary>1 when the forward should write the entropy.</summary>
    public readonly int WriteEntropy;

    /// <summary>1 when the backward adds the entropy's gradient (the loss depends on the entropies).</summary>
    public readonly int EntropyGradient;

    /// <summary>Creates the arguments.</summary>
    public GatherRowArgs(int vocabulary, int firstRow, float inverseTemperature, bool writeEntropy, bool entropyGradient = false)
    {
        Vocabulary = vocabulary;
        FirstRow = firstRow;
        InverseTemperature = inverseTemperature;
        WriteEntropy = writeEntropy ? 1 : 0;
        EntropyGradient = entropyGradient ? 1 : 0;
    }
}

/// <summary>
/// Row kernels of the fused log-softmax-gather. The logits chunk z = hidden · lmHeadᵀ / T comes from
/// <see cref="MatmulKernels.Matmul"/>; these run one group per token row (launch
/// <c>KernelConfig(chunkRows, RowGroupSize)</c>) and reduce through <see cref="GroupReduce"/>.
/// </summary>
public static class LogSoftmaxGatherKernels
{
    /// <summary>
    /// Per row r of the chunk (token FirstRow + r): lse = log Σ exp z, logprob = z[target] − lse and,
    /// when asked, entropy = lse − Σ softmax(z)·z.
    /// </summary>
    /// <param name="p">Chunk scalars.</param>
    /// <param name="logits">(chunk, V) z = h·Wᵀ/T of this chunk's tokens.</param>
    /// <param name="targets">(M) target ids of all tokens.</param>
    /// <param name="logprobs">(M) output, written for this chunk's tokens.</param>
    /// <param name="logSumExp">(M) output, written for this chunk's tokens.</param>
    /// <param name="entropy">(M) output when <see cref="GatherRowArgs.WriteEntropy"/> is 1, untouched otherwise.</param>
    public static void RowStatistics(GatherRowArgs p, ArrayView<float> logits, ArrayView<int> targets,
        ArrayView<float> logprobs, ArrayView<float> logSumExp, ArrayView<float> entropy)
    {
        int r = Grid.IdxX, v = p.Vocabulary;
        long rowStart = (long)r * v;
        float max = float.NegativeInfinity;
        for (int j = Group.IdxX; j < v; j += Group.DimX) max = XMath.Max(max, logits[rowStart + j]);
        max = GroupReduce.Max(max);

        // Sums of e = exp(z − max) and of e·(z − max): the entropy is shift-invariant.
        float sum = 0, weighted = 0;
        for (int j = Group.IdxX; j < v; j += Group.DimX)
        {
            float shifted = logits[rowStart + j] - max;
            float e = KernelMath.Exp(shifted);
            sum += e;
            weighted += e * shifted;
        }
        sum = GroupReduce.Sum(sum);
        weighted = GroupReduce.Sum(weighted);
        if (Group.IdxX == 0)
        {
            int token = p.FirstRow + r;
            float logSum = KernelMath.Log(sum);
            logSumExp[token] = max + logSum;
            logprobs[token] = logits[rowStart + targets[token]] - max - logSum;
            if (p.WriteEntropy != 0) entropy[token] = logSum - weighted / sum;
        }
    }

    /// <summary>
    /// Turns the logits chunk into (1/T)·dz in place: (g/T)(1[j = target] − p_j), p_j = exp(z_j − lse), with
    /// g = dLogprobs of the row's token; with <see cref="GatherRowArgs.EntropyGradient"/> also
    /// (g_H/T)·(−p_j (log p_j + H)), the entropy's gradient, with g_H = dEntropy and H = entropy of the row's token.
    /// </summary>
    /// <param name="p">Chunk scalars.</param>
    /// <param name="logits">(chunk, V) z of this chunk's tokens in, (1/T)·dz out.</param>
    /// <param name="targets">(M) target ids of all tokens.</param>
    /// <param name="logSumExp">(M) the forward's log-sum-exp.</param>
    /// <param name="dLogprobs">(M) gradient of the loss with respect to the log-probabilities.</param>
    /// <param name="entropy">(M) the forward's entropies; read only with <see cref="GatherRowArgs.EntropyGradient"/>.</param>
    /// <param name="dEntropy">(M) gradient of the loss with respect to the entropies; read only with <see cref="GatherRowArgs.EntropyGradient"/>.</param>
    public static void SoftmaxGradient(GatherRowArgs p, ArrayView<float> logits, ArrayView<int> targets,
        ArrayView<float> logSumExp, ArrayView<float> dLogprobs, ArrayView<float> entropy, ArrayView<float> dEntropy)
    {
        int r = Grid.IdxX, v = p.Vocabulary, token = p.FirstRow + r;
        long rowStart = (long)r * v;
        float scale = dLogprobs[token] * p.InverseTemperature, lse = logSumExp[token];
        float entropyScale = p.EntropyGradient != 0 ? dEntropy[token] * p.InverseTemperature : 0f;
        float h = p.EntropyGradient != 0 ? entropy[token] : 0f;
        int target = targets[token];
        for (int j = Group.IdxX; j < v; j += Group.DimX)
        {
            float logProbability = logits[rowStart + j] - lse;
            float dz = -KernelMath.Exp(logProbability) * (scale + entropyScale * (logProbability + h));
            logits[rowStart + j] = j == target ? dz + scale : dz;
        }
    }
}

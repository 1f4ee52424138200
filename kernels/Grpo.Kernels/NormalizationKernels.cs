using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>Scalars of the normalisation kernels.</summary>
public readonly struct NormArgs
{
    /// <summary>Rows M.</summary>
    public readonly int Rows;

    /// <summary>Channels C (the row length).</summary>
    public readonly int Channels;

    /// <summary>Rows per block of the weight-gradient partial sums (the backward's group count is ⌈M / BlockRows⌉).</summary>
    public readonly int BlockRows;

    /// <summary>Added to the variance or the mean square.</summary>
    public readonly float Epsilon;

    /// <summary>1 when a forward normalises input + addend (and writes that sum), 0 when it normalises input.</summary>
    public readonly int AddsAddend;

    /// <summary>Creates the arguments.</summary>
    public NormArgs(int rows, int channels, int blockRows, float epsilon, bool addsAddend = false)
    {
        Rows = rows;
        Channels = channels;
        BlockRows = blockRows;
        Epsilon = epsilon;
        AddsAddend = addsAddend ? 1 : 0;
    }
}

/// <summary>
/// LayerNorm and RMSNorm over the last dimension. The forwards run one group per row (launch
/// <c>KernelConfig(M, RowGroupSize)</c>) and reduce through <see cref="GroupReduce"/>. The backwards
/// run one group per fixed block of rows (<c>KernelConfig(blocks, RowGroupSize)</c>): the group walks
/// its rows in order, writes dInput, and each thread keeps the block's partial weight (and bias)
/// gradient for the channels it owns in the (blocks, C) partials; <see cref="AddBlockSums"/> then adds
/// the partials of each channel in block order. No atomics: every result is deterministic.
/// </summary>
public static class NormalizationKernels
{
    /// <summary>
    /// LayerNorm of row Grid.IdxX: mean, biased variance (two passes), rstd = 1/sqrt(var + eps),
    /// output = (x − mean)·rstd·weight + bias; x is the input row, or input + addend (written to sum) when
    /// <see cref="NormArgs.AddsAddend"/> is set.
    /// </summary>
    /// <param name="p">Sizes, epsilon and whether to add the addend.</param>
    /// <param name="input">(M, C) rows.</param>
    /// <param name="addend">(M, C) added to the input first when <see cref="NormArgs.AddsAddend"/> is set (else unread).</param>
    /// <param name="sum">(M, C) input + addend, overwritten when <see cref="NormArgs.AddsAddend"/> is set (else untouched); it may be input or addend itself.</param>
    /// <param name="weight">(C) scale.</param>
    /// <param name="bias">(C) shift.</param>
    /// <param name="output">(M, C) output, overwritten.</param>
    /// <param name="mean">(M) output, overwritten.</param>
    /// <param name="rstd">(M) output, overwritten.</param>
    public static void LayerNormForward(NormArgs p, ArrayView<float> input, ArrayView<float> addend, ArrayView<float> sum,
        ArrayView<float> weight, ArrayView<float> bias, ArrayView<float> output, ArrayView<float> mean, ArrayView<float> rstd)
    {
        int row = Grid.IdxX, c = p.Channels, t = Group.IdxX, threads = Group.DimX;
        long start = (long)row * c;
        float total = 0;
        for (int j = t; j < c; j += threads) total += AddOnce(p, input, addend, sum, start + j);
        float rowMean = GroupReduce.Sum(total) / c;
        var x = p.AddsAddend != 0 ? sum : input; // each thread reads back only the elements it wrote
        float squares = 0;
        for (int j = t; j < c; j += threads)
        {
            float centred = x[start + j] - rowMean;
            squares += centred * centred;
        }
        float r = 1f / XMath.Sqrt(GroupReduce.Sum(squares) / c + p.Epsilon);
        for (int j = t; j < c; j += threads)
            output[start + j] = (x[start + j] - rowMean) * r * weight[j] + bias[j];
        if (t == 0)
        {
            mean[row] = rowMean;
            rstd[row] = r;
        }
    }

    /// <summary>
    /// RMSNorm of row Grid.IdxX (Hugging Face's LlamaRMSNorm): rstd = 1/sqrt(mean(x²) + eps),
    /// output = (x·rstd)·weight; x is the input row, or input + addend (written to sum) when
    /// <see cref="NormArgs.AddsAddend"/> is set.
    /// </summary>
    /// <param name="p">Sizes, epsilon and whether to add the addend.</param>
    /// <param name="input">(M, C) rows.</param>
    /// <param name="addend">(M, C) added to the input first when <see cref="NormArgs.AddsAddend"/> is set (else unread).</param>
    /// <param name="sum">(M, C) input + addend, overwritten when <see cref="NormArgs.AddsAddend"/> is set (else untouched); it may be input or addend itself.</param>
    /// <param name="weight">(C) scale.</param>
    /// <param name="output">(M, C) output, overwritten.</param>
    /// <param name="rstd">(M) output, overwritten.</param>
    public static void RmsNormForward(NormArgs p, ArrayView<float> input, ArrayView<float> addend, ArrayView<float> sum,
        ArrayView<float> weight, ArrayView<float> output, ArrayView<float> rstd)
    {
        int row = Grid.IdxX, c = p.Channels, t = Group.IdxX, threads = Group.DimX;
        long start = (long)row * c;
        float squares = 0;
        for (int j = t; j < c; j += threads)
        {
            float value = AddOnce(p, input, addend, sum, start + j);
            squares += value * value;
        }
        float r = RmsInverse(GroupReduce.Sum(squares), c, p.Epsilon);
        var x = p.AddsAddend != 0 ? sum : input; // each thread reads back only the elements it wrote
        for (int j = t; j < c; j += threads)
            output[start + j] = RmsScaled(x[start + j], r, weight[j]);
        if (t == 0) rstd[row] = r;
    }

    /// <summary>
    /// rstd = 1/sqrt(Σx²/C + eps) from a group's Σx² (<see cref="GroupReduce.Sum(float)"/> of each thread's squares over the elements
    /// j = t, t + threads, …). Every kernel that RMS-normalises a row calls this and <see cref="RmsScaled"/>, so a fused kernel
    /// gives <see cref="RmsNormForward"/>'s bits.
    /// </summary>
    public static float RmsInverse(float sumOfSquares, int channels, float epsilon) => 1f / XMath.Sqrt(sumOfSquares / channels + epsilon);

    /// <summary>(x · rstd) · weight: LlamaRMSNorm's order.</summary>
    public static float RmsScaled(float x, float rstd, float weight) => x * rstd * weight;

    /// <summary>input[at], or input[at] + addend[at] stored to sum[at] (the residual add, the same fp32 sum as an Add kernel).</summary>
    private static float AddOnce(NormArgs p, ArrayView<float> input, ArrayView<float> addend, ArrayView<float> sum, long at)
    {
        float value = input[at];
        if (p.AddsAddend == 0) return value;
        value += addend[at];
        sum[at] = value;
        return value;
    }

    /// <summary>
    /// LayerNorm backward over the rows of block Grid.IdxX. Per row, with norm = (x − mean)·rstd and
    /// dnorm = weight ⊙ dy: dInput += rstd·(dnorm − mean(dnorm) − norm·mean(dnorm ⊙ norm)). The block's
    /// Σ dy ⊙ norm and Σ dy are written (not accumulated) to partials[block] and partials[blocks + block].
    /// </summary>
    /// <param name="p">Sizes.</param>
    /// <param name="dOutput">(M, C) gradient with respect to the output.</param>
    /// <param name="input">(M, C) the forward's input.</param>
    /// <param name="weight">(C) the forward's scale.</param>
    /// <param name="mean">(M) the forward's mean.</param>
    /// <param name="rstd">(M) the forward's rstd.</param>
    /// <param name="dInput">(M, C) accumulated (+=).</param>
    /// <param name="partials">(2, blocks, C) output: weight then bias partial sums per block.</param>
    public static void LayerNormBackwardBlock(NormArgs p, ArrayView<float> dOutput, ArrayView<float> input,
        ArrayView<float> weight, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dInput, ArrayView<float> partials)
    {
        int block = Grid.IdxX, c = p.Channels, t = Group.IdxX, threads = Group.DimX;
        int first = block * p.BlockRows, end = XMath.Min(p.Rows, first + p.BlockRows);
        long blocks = Grid.DimX;
        long weightPartial = (long)block * c, biasPartial = (blocks + block) * c;
        for (int row = first; row < end; row++)
        {
            long start = (long)row * c;
            float rowMean = mean[row], r = rstd[row];
            float dnormSum = 0, dnormNormSum = 0;
            for (int j = t; j < c; j += threads)
            {
                float dnorm = weight[j] * dOutput[start + j];
                dnormSum += dnorm;
                dnormNormSum += dnorm * ((input[start + j] - rowMean) * r);
            }
            float dnormMean = GroupReduce.Sum(dnormSum) / c;
            float dnormNormMean = GroupReduce.Sum(dnormNormSum) / c;
            for (int j = t; j < c; j += threads)
            {
                float dy = dOutput[start + j];
                float norm = (input[start + j] - rowMean) * r;
                float dnorm = weight[j] * dy;
                dInput[start + j] += (dnorm - norm * dnormNormMean - dnormMean) * r;
                // Only this thread ever touches channel j of this block: the first row writes, later rows add.
                float dw = dy * norm;
                if (row == first)
                {
                    partials[weightPartial + j] = dw;
                    partials[biasPartial + j] = dy;
                }
                else
                {
                    partials[weightPartial + j] += dw;
                    partials[biasPartial + j] += dy;
                }
            }
        }
    }

    /// <summary>
    /// RMSNorm backward over the rows of block Grid.IdxX. Per row, with norm = x·rstd and
    /// dnorm = weight ⊙ dy: dInput += rstd·(dnorm − norm·mean(dnorm ⊙ norm)). The block's Σ dy ⊙ norm
    /// is written (not accumulated) to partials[block].
    /// </summary>
    /// <param name="p">Sizes.</param>
    /// <param name="dOutput">(M, C) gradient with respect to the output.</param>
    /// <param name="input">(M, C) the forward's input.</param>
    /// <param name="weight">(C) the forward's scale.</param>
    /// <param name="rstd">(M) the forward's rstd.</param>
    /// <param name="dInput">(M, C) accumulated (+=).</param>
    /// <param name="partials">(blocks, C) output: weight partial sums per block.</param>
    public static void RmsNormBackwardBlock(NormArgs p, ArrayView<float> dOutput, ArrayView<float> input,
        ArrayView<float> weight, ArrayView<float> rstd, ArrayView<float> dInput, ArrayView<float> partials)
    {
        int block = Grid.IdxX, c = p.Channels, t = Group.IdxX, threads = Group.DimX;
        int first = block * p.BlockRows, end = XMath.Min(p.Rows, first + p.BlockRows);
        long weightPartial = (long)block * c;
        for (int row = first; row < end; row++)
        {
            long start = (long)row * c;
            float r = rstd[row];
            float dnormNormSum = 0;
            for (int j = t; j < c; j += threads)
                dnormNormSum += weight[j] * dOutput[start + j] * (input[start + j] * r);
            float dnormNormMean = GroupReduce.Sum(dnormNormSum) / c;
            for (int j = t; j < c; j += threads)
            {
                float dy = dOutput[start + j];
                float norm = input[start + j] * r;
                dInput[start + j] += (weight[j] * dy - norm * dnormNormMean) * r;
                float dw = dy * norm;
                if (row == first) partials[weightPartial + j] = dw;
                else partials[weightPartial + j] += dw;
            }
        }
    }

    /// <summary>target[j] += Σ_b partials[b·C + j], the blocks added in order (one thread per channel j).</summary>
    /// <param name="j">The channel.</param>
    /// <param name="partials">(blocks, C) partial sums.</param>
    /// <param name="blocks">Number of blocks.</param>
    /// <param name="channels">C.</param>
    /// <param name="target">(C) accumulated (+=).</param>
    public static void AddBlockSums(Index1D j, ArrayView<float> partials, int blocks, int channels, ArrayView<float> target)
    {
        float sum = 0;
        for (int b = 0; b < blocks; b++) sum += partials[(long)b * channels + j];
        target[j] += sum;
    }
}

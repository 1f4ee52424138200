using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// LayerNorm over the last dimension (GPT-2): output = (x − mean) · rstd · weight + bias with
    /// rstd = 1 / sqrt(var + epsilon), var the biased (divide by C) variance, as torch.nn.LayerNorm.
    /// Outputs are overwritten; mean and rstd are kept for the backward.
    /// </summary>
    /// <param name="output">(M, C) normalised rows.</param>
    /// <param name="mean">(M) per-row mean.</param>
    /// <param name="rstd">(M) per-row reciprocal standard deviation.</param>
    /// <param name="input">(M, C) rows to normalise.</param>
    /// <param name="weight">(C) scale.</param>
    /// <param name="bias">(C) shift.</param>
    /// <param name="epsilon">Added to the variance; positive and finite (config's layer_norm_epsilon).</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or lives on another device.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The epsilon is not positive and finite.</exception>
    void LayerNormForward(Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float> weight, Tensor<float> bias, float epsilon);

    /// <summary>
    /// The residual add that ends one half of a block fused with the norm that starts the next:
    /// sum = input + addend, then <see cref="LayerNormForward"/> of sum. The same bits as <see cref="Add"/> followed by
    /// <see cref="LayerNormForward"/> on sum, in one pass over the rows (one kernel launch instead of two on a GPU).
    /// </summary>
    /// <param name="sum">(M, C) input + addend, overwritten; it may be exactly input or addend (the in-place residual update).</param>
    /// <param name="output">(M, C) normalised rows; its own memory.</param>
    /// <param name="mean">(M) per-row mean of sum.</param>
    /// <param name="rstd">(M) per-row reciprocal standard deviation of sum.</param>
    /// <param name="input">(M, C) the residual stream.</param>
    /// <param name="addend">(M, C) what the block half adds to it.</param>
    /// <param name="weight">(C) scale.</param>
    /// <param name="bias">(C) shift.</param>
    /// <param name="epsilon">Added to the variance; positive and finite (config's layer_norm_epsilon).</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape, lives on another device or overlaps another; the message names it.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The epsilon is not positive and finite.</exception>
    void AddLayerNormForward(Tensor<float> sum, Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float> addend, Tensor<float> weight, Tensor<float> bias, float epsilon);

    /// <summary>
    /// Backward of <see cref="LayerNormForward"/>; ACCUMULATES into dInput, dWeight and dBias.
    /// dWeight and dBias sum over rows in a fixed order: deterministic for any thread count.
    /// The gradients must not share memory with dOutput or the forward's tensors.
    /// </summary>
    /// <param name="dInput">(M, C) gradient with respect to the input.</param>
    /// <param name="dWeight">(C) gradient with respect to the scale.</param>
    /// <param name="dBias">(C) gradient with respect to the shift.</param>
    /// <param name="dOutput">(M, C) gradient of the loss with respect to the output.</param>
    /// <param name="input">(M, C) the forward's input.</param>
    /// <param name="weight">(C) the forward's scale.</param>
    /// <param name="mean">(M) the forward's mean.</param>
    /// <param name="rstd">(M) the forward's rstd.</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or lives on another device.</exception>
    void LayerNormBackward(Tensor<float> dInput, Tensor<float> dWeight, Tensor<float> dBias,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> mean, Tensor<float> rstd);

    /// <summary>
    /// RMSNorm over the last dimension (Llama, Qwen2; Hugging Face's LlamaRMSNorm):
    /// output = x · rstd · weight with rstd = 1 / sqrt(mean(x²) + epsilon). Outputs are overwritten.
    /// </summary>
    /// <param name="output">(M, C) normalised rows.</param>
    /// <param name="rstd">(M) per-row reciprocal root mean square, kept for the backward.</param>
    /// <param name="input">(M, C) rows to normalise.</param>
    /// <param name="weight">(C) scale.</param>
    /// <param name="epsilon">Added to the mean square; positive and finite (config's rms_norm_eps).</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or lives on another device.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The epsilon is not positive and finite.</exception>
    void RmsNormForward(Tensor<float> output, Tensor<float> rstd, Tensor<float> input, Tensor<float> weight, float epsilon);

    /// <summary>
    /// The residual add that ends one half of a block fused with the norm that starts the next:
    /// sum = input + addend, then <see cref="RmsNormForward"/> of sum. The same bits as <see cref="Add"/> followed by
    /// <see cref="RmsNormForward"/> on sum, in one pass over the rows (one kernel launch instead of two on a GPU).
    /// </summary>
    /// <param name="sum">(M, C) input + addend, overwritten; it may be exactly input or addend (the in-place residual update).</param>
    /// <param name="output">(M, C) normalised rows; its own memory.</param>
    /// <param name="rstd">(M) per-row reciprocal root mean square of sum.</param>
    /// <param name="input">(M, C) the residual stream.</param>
    /// <param name="addend">(M, C) what the block half adds to it.</param>
    /// <param name="weight">(C) scale.</param>
    /// <param name="epsilon">Added to the mean square; positive and finite (config's rms_norm_eps).</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape, lives on another device or overlaps another; the message names it.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The epsilon is not positive and finite.</exception>
    void AddRmsNormForward(Tensor<float> sum, Tensor<float> output, Tensor<float> rstd, Tensor<float> input, Tensor<float> addend,
        Tensor<float> weight, float epsilon);

    /// <summary>
    /// Backward of <see cref="RmsNormForward"/>; ACCUMULATES into dInput and dWeight (rows summed
    /// in a fixed order: deterministic). The gradients must not share memory with dOutput or the forward's tensors.
    /// </summary>
    /// <param name="dInput">(M, C) gradient with respect to the input.</param>
    /// <param name="dWeight">(C) gradient with respect to the scale.</param>
    /// <param name="dOutput">(M, C) gradient of the loss with respect to the output.</param>
    /// <param name="input">(M, C) the forward's input.</param>
    /// <param name="weight">(C) the forward's scale.</param>
    /// <param name="rstd">(M) the forward's rstd.</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or lives on another device.</exception>
    void RmsNormBackward(Tensor<float> dInput, Tensor<float> dWeight,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> rstd);
}

/// <summary>
/// Argument checks both backends run before a normalisation, so they reject the same inputs with the
/// same messages; and the fixed row blocks over which both backends sum dWeight and dBias.
/// </summary>
internal static class NormalizationValidation
{
    /// <summary>Fewest rows in one block of the weight-gradient sums (fewer would only add partials to add up).</summary>
    public const int MinBlockRows = 8;

    /// <summary>Most row blocks of the weight-gradient sums: bounds the (blocks, C) partial sums.</summary>
    public const int MaxBlocks = 512;

    /// <summary>
    /// Rows per block of the weight-gradient sums: a function of M alone, never of the thread count,
    /// so each block's partial (C) sum and the in-order sum of the partials are the same bits on any machine.
    /// </summary>
    public static int BlockRows(int m) => Math.Max(MinBlockRows, (m + MaxBlocks - 1) / MaxBlocks);

    /// <summary>Number of row blocks for M rows.</summary>
    public static int Blocks(int m)
    {
        int rows = BlockRows(m);
        return (m + rows - 1) / rows;
    }

    /// <summary>Checks the shapes and epsilon of the LayerNorm forward; returns (M, C).</summary>
    public static (int M, int C) LayerNormForward(Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float> weight, Tensor<float> bias, float epsilon)
    {
        var (m, c) = Rows(input);
        Guard.Shape(weight, nameof(weight), c);
        Guard.Shape(bias, nameof(bias), c);
        Guard.Shape(output, nameof(output), m, c);
        Guard.Shape(mean, nameof(mean), m);
        Guard.Shape(rstd, nameof(rstd), m);
        Epsilon(epsilon, "the config's layer_norm_epsilon (1e-5 for GPT-2)");
        return (m, c);
    }

    /// <summary>
    /// The checks of <see cref="IGrpoOperations.AddLayerNormForward"/>: what the residual add needs (addend and sum have input's
    /// (M, C) shape; sum is exactly input or addend or shares no memory with them; output shares memory with none of the three),
    /// then the norm's own checks on sum; returns (M, C).
    /// </summary>
    public static (int M, int C) AddLayerNormForward(Tensor<float> sum, Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float> addend, Tensor<float> weight, Tensor<float> bias, float epsilon)
    {
        ResidualAdd(sum, output, input, addend);
        return LayerNormForward(output, mean, rstd, sum, weight, bias, epsilon);
    }

    /// <summary>The checks of <see cref="IGrpoOperations.AddRmsNormForward"/>: the residual add's, then the norm's on sum; returns (M, C).</summary>
    public static (int M, int C) AddRmsNormForward(Tensor<float> sum, Tensor<float> output, Tensor<float> rstd, Tensor<float> input,
        Tensor<float> addend, Tensor<float> weight, float epsilon)
    {
        ResidualAdd(sum, output, input, addend);
        return RmsNormForward(output, rstd, sum, weight, epsilon);
    }

    private static void ResidualAdd(Tensor<float> sum, Tensor<float> output, Tensor<float> input, Tensor<float> addend)
    {
        var (m, c) = Rows(input);
        Guard.Shape(addend, nameof(addend), m, c);
        Guard.Shape(sum, nameof(sum), m, c);
        Aliasing.SameOrNoOverlap(sum, nameof(sum), input, nameof(input));
        Aliasing.SameOrNoOverlap(sum, nameof(sum), addend, nameof(addend));
        Aliasing.NoOverlap(output, nameof(output), sum, nameof(sum));
        Aliasing.NoOverlap(output, nameof(output), input, nameof(input));
        Aliasing.NoOverlap(output, nameof(output), addend, nameof(addend));
    }

    /// <summary>Checks the shapes of the LayerNorm backward; returns (M, C).</summary>
    public static (int M, int C) LayerNormBackward(Tensor<float> dInput, Tensor<float> dWeight, Tensor<float> dBias,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> mean, Tensor<float> rstd)
    {
        var (m, c) = Rows(input);
        Guard.Shape(weight, nameof(weight), c);
        Guard.Shape(mean, nameof(mean), m);
        Guard.Shape(rstd, nameof(rstd), m);
        Guard.Shape(dOutput, nameof(dOutput), m, c);
        Guard.Shape(dInput, nameof(dInput), m, c);
        Guard.Shape(dWeight, nameof(dWeight), c);
        Guard.Shape(dBias, nameof(dBias), c);
        return (m, c);
    }

    /// <summary>Checks the shapes and epsilon of the RMSNorm forward; returns (M, C).</summary>
    public static (int M, int C) RmsNormForward(Tensor<float> output, Tensor<float> rstd, Tensor<float> input,
        Tensor<float> weight, float epsilon)
    {
        var (m, c) = Rows(input);
        Guard.Shape(weight, nameof(weight), c);
        Guard.Shape(output, nameof(output), m, c);
        Guard.Shape(rstd, nameof(rstd), m);
        Epsilon(epsilon, "the config's rms_norm_eps (1e-6 for Qwen2 and Llama)");
        return (m, c);
    }

    /// <summary>Checks the shapes of the RMSNorm backward; returns (M, C).</summary>
    public static (int M, int C) RmsNormBackward(Tensor<float> dInput, Tensor<float> dWeight,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> rstd)
    {
        var (m, c) = Rows(input);
        Guard.Shape(weight, nameof(weight), c);
        Guard.Shape(rstd, nameof(rstd), m);
        Guard.Shape(dOutput, nameof(dOutput), m, c);
        Guard.Shape(dInput, nameof(dInput), m, c);
        Guard.Shape(dWeight, nameof(dWeight), c);
        return (m, c);
    }

    private static (int M, int C) Rows(Tensor<float> input)
    {
        Guard.Rank(input, nameof(input), 2,
            "(rows, channels); view a (N, T, C) activation as (N·T, C) with Reshape");
        return (input.Shape[0], input.Shape[1]);
    }

    /// <summary>
    /// Throws unless epsilon is positive and finite; <paramref name="source"/> says where a user finds the right value, and
    /// <paramref name="argumentName"/> is the argument that carries it ("epsilon", or e.g. "headNorms" for a member).
    /// </summary>
    public static void Epsilon(float epsilon, string source, string argumentName = "epsilon")
    {
        if (!(epsilon > 0) || !float.IsFinite(epsilon))
            throw new ArgumentOutOfRangeException(argumentName, epsilon,
                $"'{(argumentName == "epsilon" ? "epsilon" : argumentName + ".Epsilon")}' must be positive and finite but was {epsilon}; " +
                $"it keeps rstd finite on a constant row: use {source}.");
    }
}

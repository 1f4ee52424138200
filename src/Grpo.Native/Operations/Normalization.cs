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
    void LayerNormForward(Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float> weight, Tensor<float> bias, float epsilon);

    /// <summary>
    /// Backward of <see cref="LayerNormForward"/>; ACCUMULATES into dInput, dWeight and dBias.
    /// dWeight and dBias sum over rows in a fixed order: deterministic for any thread count.
    /// </summary>
    /// <param name="dInput">(M, C) gradient with respect to the input.</param>
    /// <param name="dWeight">(C) gradient with respect to the scale.</param>
    /// <param name="dBias">(C) gradient with respect to the shift.</param>
    /// <param name="dOutput">(M, C) gradient of the loss with respect to the output.</param>
    /// <param name="input">(M, C) the forward's input.</param>
    /// <param name="weight">(C) the forward's scale.</param>
    /// <param name="mean">(M) the forward's mean.</param>
    /// <param name="rstd">(M) the forward's rstd.</param>
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
    void RmsNormForward(Tensor<float> output, Tensor<float> rstd, Tensor<float> input, Tensor<float> weight, float epsilon);

    /// <summary>
    /// Backward of <see cref="RmsNormForward"/>; ACCUMULATES into dInput and dWeight (rows summed
    /// in a fixed order: deterministic).
    /// </summary>
    /// <param name="dInput">(M, C) gradient with respect to the input.</param>
    /// <param name="dWeight">(C) gradient with respect to the scale.</param>
    /// <param name="dOutput">(M, C) gradient of the loss with respect to the output.</param>
    /// <param name="input">(M, C) the forward's input.</param>
    /// <param name="weight">(C) the forward's scale.</param>
    /// <param name="rstd">(M) the forward's rstd.</param>
    void RmsNormBackward(Tensor<float> dInput, Tensor<float> dWeight,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> rstd);
}

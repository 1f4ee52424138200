using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// A fully connected layer in PyTorch's nn.Linear layout: output = input · weightᵀ (+ bias).
    /// Every linear layer of every model family uses this layout (GPT-2's Conv1D weights are
    /// transposed once when a checkpoint is loaded). Output is overwritten.
    /// </summary>
    /// <param name="output">(M, N) output rows.</param>
    /// <param name="input">(M, K) input rows.</param>
    /// <param name="weight">(N, K) weight, one row per output feature.</param>
    /// <param name="bias">(N) optional bias added to every row.</param>
    void LinearForward(Tensor<float> output, Tensor<float> input, Tensor<float> weight, Tensor<float>? bias);

    /// <summary>
    /// Backward of <see cref="LinearForward"/>; ACCUMULATES (+=) into the gradients (llm.c convention):
    /// dInput += dOutput · weight, dWeight += dOutputᵀ · input, dBias += Σ_rows dOutput.
    /// Deterministic: the same bits for any thread count.
    /// </summary>
    /// <param name="dInput">(M, K) gradient with respect to the input, or null when it is not needed (the first layer).</param>
    /// <param name="dWeight">(N, K) gradient with respect to the weight.</param>
    /// <param name="dBias">(N) gradient with respect to the bias, or null when the layer has none.</param>
    /// <param name="dOutput">(M, N) gradient of the loss with respect to the output.</param>
    /// <param name="input">(M, K) the input the forward saw.</param>
    /// <param name="weight">(N, K) the weight the forward saw.</param>
    void LinearBackward(Tensor<float>? dInput, Tensor<float> dWeight, Tensor<float>? dBias,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight);
}

using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// GELU, tanh approximation (GPT-2's gelu_new): y = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
    /// Any shape; output overwritten (it may be the input tensor itself).
    /// </summary>
    /// <param name="output">(…) same shape as the input.</param>
    /// <param name="input">(…) pre-activations.</param>
    void GeluForward(Tensor<float> output, Tensor<float> input);

    /// <summary>Backward of <see cref="GeluForward"/>: dInput += dOutput · gelu'(input).</summary>
    /// <param name="dInput">(…) gradient accumulated (+=) with respect to the input.</param>
    /// <param name="dOutput">(…) gradient with respect to the output.</param>
    /// <param name="input">(…) the forward's input.</param>
    void GeluBackward(Tensor<float> dInput, Tensor<float> dOutput, Tensor<float> input);

    /// <summary>
    /// The SwiGLU gate of Llama's MLP: output = silu(gate) · up with silu(x) = x / (1 + e^−x).
    /// Any shape (all three the same); output overwritten.
    /// </summary>
    /// <param name="output">(…) gated activations.</param>
    /// <param name="gate">(…) gate_proj output.</param>
    /// <param name="up">(…) up_proj output.</param>
    void SwiGluForward(Tensor<float> output, Tensor<float> gate, Tensor<float> up);

    /// <summary>Backward of <see cref="SwiGluForward"/>: dGate += dOutput · up · silu'(gate), dUp += dOutput · silu(gate).</summary>
    /// <param name="dGate">(…) gradient accumulated (+=) with respect to the gate.</param>
    /// <param name="dUp">(…) gradient accumulated (+=) with respect to up.</param>
    /// <param name="dOutput">(…) gradient with respect to the output.</param>
    /// <param name="gate">(…) the forward's gate.</param>
    /// <param name="up">(…) the forward's up.</param>
    void SwiGluBackward(Tensor<float> dGate, Tensor<float> dUp, Tensor<float> dOutput, Tensor<float> gate, Tensor<float> up);

    /// <summary>
    /// Element-wise output = a + b (the residual connection). Any shape, all three the same;
    /// output may be a or b itself.
    /// </summary>
    /// <param name="output">(…) the sum.</param>
    /// <param name="a">(…) first addend.</param>
    /// <param name="b">(…) second addend.</param>
    void Add(Tensor<float> output, Tensor<float> a, Tensor<float> b);

    /// <summary>
    /// Rotary position embedding applied IN PLACE to every head of every row, Hugging Face's
    /// rotate-half convention: for i &lt; D/2, with angle = fp32(position · fp32(θ^(−2i/D)))
    /// (rounded exactly as Hugging Face computes it in float32),
    /// (x_i, x_{i+D/2}) ← (x_i cos − x_{i+D/2} sin, x_{i+D/2} cos + x_i sin).
    /// With <paramref name="inverse"/> the rotation is by −angle: the backward (the rotation is
    /// orthogonal, so the gradient of the input is the inverse rotation of the output's gradient).
    /// </summary>
    /// <param name="values">(M, heads, D) queries or keys (or their gradients), rotated in place; D even.</param>
    /// <param name="positions">(M) position of each row, ≥ 0.</param>
    /// <param name="theta">The base θ (config's rope_theta); positive and finite.</param>
    /// <param name="inverse">Rotate by −angle (backward).</param>
    void Rope(Tensor<float> values, Tensor<int> positions, float theta, bool inverse);
}

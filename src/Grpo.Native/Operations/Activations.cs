using Grpo.Native.Checkpoints;
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
    /// <exception cref="ArgumentException">The shapes differ or a tensor lives on another device.</exception>
    void GeluForward(Tensor<float> output, Tensor<float> input);

    /// <summary>Backward of <see cref="GeluForward"/>: dInput += dOutput · gelu'(input).</summary>
    /// <param name="dInput">(…) gradient accumulated (+=) with respect to the input.</param>
    /// <param name="dOutput">(…) gradient with respect to the output.</param>
    /// <param name="input">(…) the forward's input.</param>
    /// <exception cref="ArgumentException">The shapes differ or a tensor lives on another device.</exception>
    void GeluBackward(Tensor<float> dInput, Tensor<float> dOutput, Tensor<float> input);

    /// <summary>
    /// The SwiGLU gate of Llama's MLP on the output of one fused gate_proj|up_proj projection (vLLM's silu_and_mul):
    /// each row of <paramref name="gateUp"/> holds the I gate values, then the I up values, and
    /// output[r, j] = silu(gateUp[r, j]) · gateUp[r, I + j] with silu(x) = x / (1 + e^−x). Output overwritten.
    /// </summary>
    /// <param name="output">(M, I) gated activations; must not overlap <paramref name="gateUp"/>.</param>
    /// <param name="gateUp">(M, 2I) per row: gate_proj's I outputs, then up_proj's I outputs.</param>
    /// <exception cref="ArgumentException">
    /// A tensor is not rank 2, gateUp's column count is odd or not twice the output's, the row counts differ, the output
    /// overlaps gateUp, or a tensor lives on another device.
    /// </exception>
    void SwiGluForward(Tensor<float> output, Tensor<float> gateUp);

    /// <summary>
    /// Backward of <see cref="SwiGluForward"/>: with g = gateUp[r, j] and u = gateUp[r, I + j],
    /// dGateUp[r, j] += dOutput[r, j] · u · silu'(g) and dGateUp[r, I + j] += dOutput[r, j] · silu(g).
    /// </summary>
    /// <param name="dGateUp">(M, 2I) gradient accumulated (+=) with respect to gateUp; must not overlap the other two.</param>
    /// <param name="dOutput">(M, I) gradient with respect to the output.</param>
    /// <param name="gateUp">(M, 2I) the forward's gate|up rows.</param>
    /// <exception cref="ArgumentException">
    /// A tensor is not rank 2, a column count is odd or does not fit the others, the row counts differ, dGateUp overlaps
    /// an input, or a tensor lives on another device.
    /// </exception>
    void SwiGluBackward(Tensor<float> dGateUp, Tensor<float> dOutput, Tensor<float> gateUp);

    /// <summary>
    /// Element-wise output = a + b (the residual connection). Any shape, all three the same;
    /// output may be a or b itself.
    /// </summary>
    /// <param name="output">(…) the sum.</param>
    /// <param name="a">(…) first addend.</param>
    /// <param name="b">(…) second addend.</param>
    /// <exception cref="ArgumentException">The shapes differ or a tensor lives on another device.</exception>
    void Add(Tensor<float> output, Tensor<float> a, Tensor<float> b);

    /// <summary>
    /// Rotary position embedding applied IN PLACE to every head of every row of the queries and (when given) the keys,
    /// one kernel launch for both, Hugging Face's rotate-half convention: for i &lt; D/2, with angle = fp32(position · inv_freq_i) and
    /// inv_freq_i = fp32(θ^(−2i/D)) (rounded exactly as Hugging Face computes it in float32), rescaled
    /// as Llama 3.x does when <paramref name="scaling"/> is given,
    /// (x_i, x_{i+D/2}) ← (x_i cos − x_{i+D/2} sin, x_{i+D/2} cos + x_i sin).
    /// With <paramref name="inverse"/> the rotation is by −angle: the backward (the rotation is
    /// orthogonal, so the gradient of the input is the inverse rotation of the output's gradient).
    /// </summary>
    /// <remarks>
    /// The roundings, step by step as LlamaRotaryEmbedding does them in float32 (fp32(·) rounds to
    /// the nearest float): e_i = fp32(2i / D); p_i = fp32(θ^e_i), the correctly rounded power;
    /// inv_freq_i = fp32(1 / p_i); with a scaling, inv_freq_i is then rescaled by transformers'
    /// <c>_compute_llama3_parameters</c> in float32 (see <see cref="RopeScaling"/>; each of its tensor
    /// operations is one fp32 rounding); angle = fp32(fp32(position) · inv_freq_i). cos and sin of that
    /// float angle are then rounded to float (computed on the host in double, so they are correctly
    /// rounded even for angles in the thousands of radians, where fast GPU sine/cosine are not), and
    /// the rotation is two fp32 products and a sum per element. Both backends keep a table of
    /// (cos, sin) for positions 0 … the largest seen so far, per (θ, D, scaling): D floats per position.
    /// </remarks>
    /// <param name="query">(M, H, D) queries (or their gradients), rotated in place; D even.</param>
    /// <param name="key">
    /// (M, KVH, D) keys (or their gradients), rotated in place in the same launch, or null to rotate the queries alone;
    /// same rows and D as <paramref name="query"/>, and must not overlap it.
    /// </param>
    /// <param name="positions">(M) position of each row, 0 ≤ position ≤ 1,048,576 (downloaded to the host to be checked).</param>
    /// <param name="theta">The base θ (config's rope_theta); positive and finite.</param>
    /// <param name="inverse">Rotate by −angle (backward).</param>
    /// <param name="scaling">The config's rope_scaling (Llama 3.x's), or null for plain RoPE.</param>
    /// <exception cref="ArgumentException">
    /// A tensor has the wrong shape (or an odd D), the key's rows or D differ from the query's, the key overlaps the query,
    /// or a tensor lives on another device.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// θ is not positive and finite, a position is negative or too large, or a field of the scaling is invalid.
    /// </exception>
    void Rope(Tensor<float> query, Tensor<float>? key, Tensor<int> positions, float theta, bool inverse, RopeScaling? scaling = null);
}

/// <summary>Argument checks both backends run before the activations, the residual add and RoPE, so they reject the same inputs with the same messages.</summary>
internal static class ActivationsValidation
{
    /// <summary>The largest position <see cref="IGrpoOperations.Rope"/> accepts: the (cos, sin) table grows with it.</summary>
    public const int MaxRopePosition = 1 << 20;

    /// <summary>Checks that <paramref name="output"/> has the shape of <paramref name="input"/>; returns the element count.</summary>
    public static int GeluForward(Tensor<float> output, Tensor<float> input)
    {
        SameShape(output, nameof(output), input, nameof(input));
        return Elements(input, nameof(input));
    }

    /// <summary>Checks that the gradients have the shape of the input; returns the element count.</summary>
    public static int GeluBackward(Tensor<float> dInput, Tensor<float> dOutput, Tensor<float> input)
    {
        SameShape(dOutput, nameof(dOutput), input, nameof(input));
        SameShape(dInput, nameof(dInput), input, nameof(input));
        return Elements(input, nameof(input));
    }

    /// <summary>Checks the (M, I) output against the (M, 2I) gate|up rows; returns (M, I) with M·2I ≤ int.MaxValue.</summary>
    public static (int M, int I) SwiGluForward(Tensor<float> output, Tensor<float> gateUp)
    {
        var (m, i) = GateUpRows(gateUp, nameof(gateUp));
        GateUpHalf(output, nameof(output), m, i, gateUp, nameof(gateUp));
        Aliasing.NoOverlap(output, nameof(output), gateUp, nameof(gateUp));
        return (m, i);
    }

    /// <summary>Checks the (M, 2I) gradient and the (M, I) output gradient against the gate|up rows; returns (M, I).</summary>
    public static (int M, int I) SwiGluBackward(Tensor<float> dGateUp, Tensor<float> dOutput, Tensor<float> gateUp)
    {
        var (m, i) = GateUpRows(gateUp, nameof(gateUp));
        GateUpHalf(dOutput, nameof(dOutput), m, i, gateUp, nameof(gateUp));
        Guard.Rank(dGateUp, nameof(dGateUp), 2, "(rows, 2 × intermediate) like 'gateUp'");
        if (!dGateUp.Shape.Equals(gateUp.Shape))
            throw new ArgumentException(
                $"'{nameof(dGateUp)}' has shape {dGateUp.Shape} but '{nameof(gateUp)}' has shape {gateUp.Shape}; " +
                "the gradient of the gate|up rows has their shape.", nameof(dGateUp));
        Aliasing.NoOverlap(dGateUp, nameof(dGateUp), gateUp, nameof(gateUp));
        Aliasing.NoOverlap(dGateUp, nameof(dGateUp), dOutput, nameof(dOutput));
        return (m, i);
    }

    /// <summary>Checks that the gate|up tensor is (M, 2I) with an even column count and at most int.MaxValue elements; returns (M, I).</summary>
    private static (int M, int I) GateUpRows(Tensor<float> gateUp, string name)
    {
        Guard.Rank(gateUp, name, 2, "(rows, 2 × intermediate): each row the gate values, then the up values");
        int m = gateUp.Shape[0], columns = gateUp.Shape[1];
        if (columns % 2 != 0)
            throw new ArgumentException(
                $"'{name}' has shape {gateUp.Shape}: its {columns} columns are odd, but each row must hold the I gate values " +
                "and then the I up values (gate_proj's and up_proj's outputs side by side).", name);
        Elements(gateUp, name);
        return (m, columns / 2);
    }

    /// <summary>Checks that a tensor beside the gate|up rows is (M, I): the same rows, half the columns.</summary>
    private static void GateUpHalf(Tensor<float> tensor, string name, int m, int i, Tensor<float> gateUp, string gateUpName)
    {
        Guard.Rank(tensor, name, 2, $"(rows, intermediate) beside '{gateUpName}'");
        if (tensor.Shape[0] != m)
            throw new ArgumentException(
                $"'{name}' has shape {tensor.Shape} but '{gateUpName}' has shape {gateUp.Shape}: the row counts differ; " +
                "pass one row per row of the gate|up tensor.", name);
        if (tensor.Shape[1] != i)
            throw new ArgumentException(
                $"'{name}' has shape {tensor.Shape} but '{gateUpName}' has shape {gateUp.Shape}: it must have half its columns, " +
                $"({m}, {i}), one per (gate, up) pair.", name);
    }

    /// <summary>Checks that b and the output have the shape of a; returns the element count.</summary>
    public static int Add(Tensor<float> output, Tensor<float> a, Tensor<float> b)
    {
        SameShape(b, nameof(b), a, nameof(a));
        SameShape(output, nameof(output), a, nameof(a));
        return Elements(a, nameof(a));
    }

    /// <summary>
    /// Checks the shapes, θ and scaling of <see cref="IGrpoOperations.Rope"/>; returns (M, H, KVH, D), KVH = 0 without a key,
    /// with M·(H + KVH)·D ≤ int.MaxValue.
    /// </summary>
    public static (int M, int Heads, int KeyHeads, int D) Rope(Tensor<float> query, Tensor<float>? key, Tensor<int> positions, float theta,
        RopeScaling? scaling)
    {
        Guard.Rank(query, nameof(query), 3, "(rows, heads, head dimension)");
        int m = query.Shape[0], heads = query.Shape[1], d = query.Shape[2];
        EvenHeadDimension(d, nameof(query), query.Shape);
        int keyHeads = 0;
        if (key is not null)
        {
            Guard.Rank(key, nameof(key), 3, "(rows, key-value heads, head dimension)");
            if (key.Shape[0] != m || key.Shape[2] != d)
                throw new ArgumentException(
                    $"'{nameof(key)}' has shape {key.Shape} but '{nameof(query)}' has shape {query.Shape}; the keys must have the " +
                    $"queries' rows and head dimension: ({m}, key-value heads, {d}).", nameof(key));
            Aliasing.NoOverlap(key, nameof(key), query, nameof(query));
            keyHeads = key.Shape[1];
        }
        if ((long)m * (heads + keyHeads) * d > int.MaxValue)
            throw new ArgumentException(
                $"'{nameof(query)}' {query.Shape} and '{nameof(key)}' {key?.Shape} hold more than {int.MaxValue} elements together; split the rows.",
                nameof(query));
        Guard.Rank(positions, nameof(positions), 1, "(rows) of positions");
        if (positions.Shape[0] != m)
            throw new ArgumentException(
                $"'{nameof(positions)}' has shape {positions.Shape} but '{nameof(query)}' has {m} rows ({query.Shape}); " +
                "pass one position per row.", nameof(positions));
        RopeAngles(d, nameof(query), query.Shape, theta, scaling, null);
        return (m, heads, keyHeads, d);
    }

    /// <summary>
    /// Checks what the rotation angles depend on: an even head dimension, a positive finite θ and a valid scaling. With
    /// <paramref name="ropeName"/>, θ and scaling are reported as members of that argument (a <see cref="RotaryEmbedding"/>).
    /// </summary>
    public static void RopeAngles(int d, string tensorName, TensorShape tensorShape, float theta, RopeScaling? scaling, string? ropeName)
    {
        EvenHeadDimension(d, tensorName, tensorShape);
        string thetaName = ropeName is null ? "theta" : $"{ropeName}.Theta", scalingName = ropeName is null ? "scaling" : $"{ropeName}.Scaling";
        if (!(theta > 0) || !float.IsFinite(theta))
            throw new ArgumentOutOfRangeException(ropeName ?? "theta", theta,
                $"'{thetaName}' must be positive and finite but was {theta}; pass the model's rope_theta (10000 for Llama 2, 500000 for Llama 3).");
        if (scaling?.FindProblem() is var (field, reason))
            throw new ArgumentOutOfRangeException(ropeName ?? "scaling", scaling, $"'{scalingName}': rope_scaling.{field} {reason}.");
    }

    /// <summary>Throws unless the head dimension is even: RoPE rotates pairs (x_i, x_(i+D/2)).</summary>
    private static void EvenHeadDimension(int d, string tensorName, TensorShape tensorShape)
    {
        if (d % 2 != 0)
            throw new ArgumentException(
                $"'{tensorName}' has shape {tensorShape}: its head dimension {d} is odd, but RoPE rotates pairs " +
                $"(x_i, x_(i+D/2)) and needs an even head dimension.", tensorName);
    }

    /// <summary>
    /// Throws unless every downloaded position is in [0, <see cref="MaxRopePosition"/>], naming the
    /// first bad row and its value. Returns the largest position.
    /// </summary>
    public static int RopePositions(ReadOnlySpan<int> positions)
    {
        const string name = "positions";
        int largest = 0;
        for (int r = 0; r < positions.Length; r++)
        {
            int p = positions[r];
            if (p < 0 || p > MaxRopePosition)
                throw new ArgumentOutOfRangeException(name, p,
                    $"'{name}'[{r}] is {p} but positions must be in [0, {MaxRopePosition}]: the index of the token within its sequence.");
            largest = Math.Max(largest, p);
        }
        return largest;
    }

    private static void SameShape(Tensor<float> tensor, string argumentName, Tensor<float> reference, string referenceName)
    {
        ArgumentNullException.ThrowIfNull(tensor, argumentName);
        ArgumentNullException.ThrowIfNull(reference, referenceName);
        if (!tensor.Shape.Equals(reference.Shape))
            throw new ArgumentException(
                $"'{argumentName}' has shape {tensor.Shape} but '{referenceName}' has shape {reference.Shape}; " +
                "element-wise operations need every tensor to have the same shape.", argumentName);
    }

    private static int Elements(Tensor<float> tensor, string argumentName) =>
        tensor.Length <= int.MaxValue ? (int)tensor.Length
            : throw new ArgumentException(
                $"'{argumentName}' has {tensor.Length} elements; element-wise operations handle at most {int.MaxValue}: split the call.", argumentName);
}

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

    /// <summary>
    /// Copies the columns of <paramref name="source"/> into three outputs, in order: the first A columns to
    /// <paramref name="first"/>, the next B to <paramref name="second"/>, the last C to <paramref name="third"/>. It turns the
    /// output of one fused Q/K/V projection into the row-major Q, K and V the attention takes. With a bias, each value gets
    /// its source column's bias added on the way (one fp32 addition, the one <see cref="LinearForward"/> makes when it adds a
    /// bias), so the projection's GEMM runs without one and no launch broadcasts it.
    /// </summary>
    /// <param name="source">(M, A + B + C) the fused output.</param>
    /// <param name="first">(M, A) output, overwritten.</param>
    /// <param name="second">(M, B) output, overwritten.</param>
    /// <param name="third">(M, C) output, overwritten.</param>
    /// <param name="bias">(A + B + C) optional bias of the source's columns.</param>
    /// <exception cref="ArgumentException">The shapes do not fit together or an output overlaps another tensor; the message names it.</exception>
    void SplitColumns(Tensor<float> source, Tensor<float> first, Tensor<float> second, Tensor<float> third, Tensor<float>? bias = null);

    /// <summary>
    /// The inverse of <see cref="SplitColumns"/>: writes <paramref name="first"/>'s A columns, then <paramref name="second"/>'s B,
    /// then <paramref name="third"/>'s C into each row of <paramref name="destination"/>. It turns the gradients of Q, K and V
    /// into the gradient of the fused projection's output, so its backward is one GEMM per product too.
    /// </summary>
    /// <param name="destination">(M, A + B + C) output, overwritten.</param>
    /// <param name="first">(M, A).</param>
    /// <param name="second">(M, B).</param>
    /// <param name="third">(M, C).</param>
    /// <exception cref="ArgumentException">The shapes do not fit together or the output overlaps an input; the message names it.</exception>
    void JoinColumns(Tensor<float> destination, Tensor<float> first, Tensor<float> second, Tensor<float> third);
}

/// <summary>The sizes of one linear layer call: M rows, K input features, N output features.</summary>
/// <param name="M">Rows (tokens).</param>
/// <param name="K">Input features.</param>
/// <param name="N">Output features.</param>
internal readonly record struct LinearShape(int M, int K, int N);

/// <summary>Argument checks both backends run before a linear layer, so they reject the same inputs with the same messages.</summary>
internal static class LinearValidation
{
    /// <summary>Checks the shapes of the forward; returns (M, K, N).</summary>
    public static LinearShape Forward(Tensor<float> output, Tensor<float> input, Tensor<float> weight, Tensor<float>? bias)
    {
        var shape = Common(input, weight, bias, nameof(bias));
        Guard.Shape(output, nameof(output), shape.M, shape.N);
        Aliasing.NoOverlap(output, nameof(output), input, nameof(input));
        Aliasing.NoOverlap(output, nameof(output), weight, nameof(weight));
        Aliasing.NoOverlap(output, nameof(output), bias, nameof(bias));
        return shape;
    }

    /// <summary>
    /// Checks the shapes of <see cref="IGrpoOperations.SplitColumns"/> (and its optional bias) and <see cref="IGrpoOperations.JoinColumns"/>,
    /// whose fused tensor is named <paramref name="fusedName"/>; returns (M, A, B, C).
    /// </summary>
    public static (int M, int A, int B, int C) FusedColumns(Tensor<float> fused, string fusedName, Tensor<float> first, Tensor<float> second,
        Tensor<float> third, Tensor<float>? bias = null)
    {
        Guard.Rank(fused, fusedName, 2, "(M, A + B + C) rows of a fused projection");
        Guard.Rank(first, nameof(first), 2, "(M, A)");
        Guard.Rank(second, nameof(second), 2, "(M, B)");
        Guard.Rank(third, nameof(third), 2, "(M, C)");
        int m = fused.Shape[0], a = first.Shape[1], b = second.Shape[1], c = third.Shape[1];
        Guard.Shape(fused, fusedName, m, a + b + c);
        Guard.Shape(first, nameof(first), m, a);
        Guard.Shape(second, nameof(second), m, b);
        Guard.Shape(third, nameof(third), m, c);
        Aliasing.NoOverlap(first, nameof(first), fused, fusedName);
        Aliasing.NoOverlap(second, nameof(second), fused, fusedName);
        Aliasing.NoOverlap(third, nameof(third), fused, fusedName);
        Aliasing.NoOverlap(first, nameof(first), second, nameof(second));
        Aliasing.NoOverlap(second, nameof(second), third, nameof(third));
        Aliasing.NoOverlap(first, nameof(first), third, nameof(third));
        if (bias is not null)
        {
            Guard.Shape(bias, nameof(bias), a + b + c);
            Aliasing.NoOverlap(first, nameof(first), bias, nameof(bias));
            Aliasing.NoOverlap(second, nameof(second), bias, nameof(bias));
            Aliasing.NoOverlap(third, nameof(third), bias, nameof(bias));
        }
        return (m, a, b, c);
    }

    /// <summary>Checks the shapes of the backward; returns (M, K, N).</summary>
    public static LinearShape Backward(Tensor<float>? dInput, Tensor<float> dWeight, Tensor<float>? dBias,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight)
    {
        var shape = Common(input, weight, dBias, nameof(dBias));
        Guard.Shape(dOutput, nameof(dOutput), shape.M, shape.N);
        Guard.Shape(dWeight, nameof(dWeight), shape.N, shape.K);
        if (dInput is not null) Guard.Shape(dInput, nameof(dInput), shape.M, shape.K);
        var gradients = new[] { (dInput, nameof(dInput)), (dWeight, nameof(dWeight)), (dBias, nameof(dBias)) };
        for (int i = 0; i < gradients.Length; i++)
        {
            var (gradient, name) = gradients[i];
            Aliasing.NoOverlap(gradient, name, dOutput, nameof(dOutput));
            Aliasing.NoOverlap(gradient, name, input, nameof(input));
            Aliasing.NoOverlap(gradient, name, weight, nameof(weight));
            for (int j = i + 1; j < gradients.Length; j++) Aliasing.NoOverlap(gradient, name, gradients[j].Item1, gradients[j].Item2);
        }
        return shape;
    }

    private static LinearShape Common(Tensor<float> input, Tensor<float> weight, Tensor<float>? bias, string biasName)
    {
        Guard.Rank(input, nameof(input), 2, "(rows, input features); reshape (B, T, K) activations to (B·T, K)");
        Guard.Rank(weight, nameof(weight), 2, "(output features, input features) in nn.Linear layout");
        int m = input.Shape[0], k = input.Shape[1], n = weight.Shape[0];
        if (weight.Shape[1] != k)
            throw new ArgumentException(
                $"'weight' has shape {weight.Shape} but 'input' has {k} columns; the weight must be ({n}, {k}) in nn.Linear " +
                "layout (output features, input features): transpose a (in, out) Conv1D weight when loading it.",
                nameof(weight));
        if (bias is not null && !(bias.Shape.Rank == 1 && bias.Shape[0] == n))
            throw new ArgumentException(
                $"'{biasName}' has shape {bias.Shape} but the weight has {n} output features; it must be [{n}], one value per output feature.",
                biasName);
        return new LinearShape(m, k, n);
    }
}

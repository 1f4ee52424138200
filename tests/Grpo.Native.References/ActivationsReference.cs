namespace Grpo.Native.References;

/// <summary>
/// GELU (tanh approximation), SwiGLU, the residual add and rotary position embedding, in double,
/// straight from their definitions. Derivatives are the textbook ones, written out by hand.
/// </summary>
public static class ActivationsReference
{
    private static readonly double GeluScale = Math.Sqrt(2 / Math.PI);
    private const double GeluCubic = 0.044715;

    /// <summary>gelu(x) = 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))), GPT-2's gelu_new.</summary>
    public static double Gelu(double x) => 0.5 * x * (1 + Math.Tanh(GeluScale * (x + GeluCubic * x * x * x)));

    /// <summary>gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 − tanh² u) √(2/π)(1 + 3·0.044715 x²).</summary>
    public static double GeluDerivative(double x)
    {
        double t = Math.Tanh(GeluScale * (x + GeluCubic * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GeluScale * (1 + 3 * GeluCubic * x * x);
    }

    /// <summary>σ(x) = 1 / (1 + e^−x).</summary>
    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>silu(x) = x σ(x).</summary>
    public static double Silu(double x) => x * Sigmoid(x);

    /// <summary>silu'(x) = σ(x) (1 + x (1 − σ(x))).</summary>
    public static double SiluDerivative(double x)
    {
        double s = Sigmoid(x);
        return s * (1 + x * (1 - s));
    }

    /// <summary>Element-wise gelu.</summary>
    public static double[] GeluForward(double[] input) => Array.ConvertAll(input, Gelu);

    /// <summary>dOutput · gelu'(input), element-wise (not accumulated).</summary>
    public static double[] GeluBackward(double[] dOutput, double[] input)
    {
        var result = new double[input.Length];
        for (int i = 0; i < input.Length; i++) result[i] = dOutput[i] * GeluDerivative(input[i]);
        return result;
    }

    /// <summary>
    /// SwiGLU on fused gate|up rows (vLLM's silu_and_mul): <paramref name="gateUp"/> is (M, 2I), each row the I gate values
    /// then the I up values; returns the (M, I) output[r, j] = silu(gateUp[r, j]) · gateUp[r, I + j].
    /// </summary>
    public static double[] SwiGluForward(double[] gateUp, int width)
    {
        int rows = Rows(gateUp, width);
        var result = new double[rows * width];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < width; j++)
                result[r * width + j] = Silu(gateUp[2 * r * width + j]) * gateUp[2 * r * width + width + j];
        return result;
    }

    /// <summary>
    /// The (M, 2I) gradient of <see cref="SwiGluForward"/>'s gate|up rows (not accumulated): with g = gateUp[r, j] and
    /// u = gateUp[r, I + j], d gateUp[r, j] = dO[r, j] · u · silu'(g) and d gateUp[r, I + j] = dO[r, j] · silu(g).
    /// </summary>
    public static double[] SwiGluBackward(double[] dOutput, double[] gateUp, int width)
    {
        int rows = Rows(gateUp, width);
        if (dOutput.Length != rows * width)
            throw new ArgumentException($"dOutput has {dOutput.Length} values, not the {rows} × {width} of the output.", nameof(dOutput));
        var dGateUp = new double[gateUp.Length];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < width; j++)
            {
                int gate = 2 * r * width + j, up = gate + width;
                double dO = dOutput[r * width + j];
                dGateUp[gate] = dO * gateUp[up] * SiluDerivative(gateUp[gate]);
                dGateUp[up] = dO * Silu(gateUp[gate]);
            }
        return dGateUp;
    }

    private static int Rows(double[] gateUp, int width) =>
        width > 0 && gateUp.Length % (2 * width) == 0 ? gateUp.Length / (2 * width)
            : throw new ArgumentException($"gateUp has {gateUp.Length} values, not whole rows of 2 × {width}.", nameof(gateUp));

    /// <summary>a + b, element-wise.</summary>
    public static double[] Add(double[] a, double[] b)
    {
        var result = new double[a.Length];
        for (int i = 0; i < a.Length; i++) result[i] = a[i] + b[i];
        return result;
    }

    /// <summary>
    /// The RoPE angle of pair i at a position, rounded as Hugging Face's LlamaRotaryEmbedding does in
    /// float32 — that rounding is part of the definition: e = fp32(2i/D) (an fp32 division),
    /// inv_freq = fp32(1 / fp32(θ^e)) (the power computed in double and rounded to float, then an fp32
    /// reciprocal), angle = fp32(fp32(position) · inv_freq). Returned as a double; everything after it
    /// (cos, sin, the rotation) is done in double.
    /// </summary>
    public static double RopeAngle(int position, int pair, int d, float theta)
    {
        float exponent = (float)(2 * pair) / (float)d;
        float power = (float)Math.Pow(theta, exponent);
        float inverseFrequency = 1f / power;
        float angle = (float)position * inverseFrequency;
        return angle;
    }

    /// <summary>
    /// Rotate-half RoPE of values (M, heads, D) with one position per row: for i &lt; D/2,
    /// (x_i, x_{i+D/2}) ← (x_i cos − x_{i+D/2} sin, x_{i+D/2} cos + x_i sin), by −angle when
    /// <paramref name="inverse"/>. Returns a new array.
    /// </summary>
    public static double[] Rope(double[] values, int[] positions, int m, int heads, int d, float theta, bool inverse)
    {
        var result = (double[])values.Clone();
        int half = d / 2;
        for (int r = 0; r < m; r++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < half; i++)
                {
                    double angle = RopeAngle(positions[r], i, d, theta);
                    if (inverse) angle = -angle;
                    double cos = Math.Cos(angle), sin = Math.Sin(angle);
                    int at = (r * heads + h) * d + i;
                    double x = values[at], y = values[at + half];
                    result[at] = x * cos - y * sin;
                    result[at + half] = y * cos + x * sin;
                }
        return result;
    }
}

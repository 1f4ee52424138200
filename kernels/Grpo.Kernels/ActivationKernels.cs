using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>Scalars of <see cref="ActivationKernels.Rope"/>.</summary>
public readonly struct RopeArgs
{
    /// <summary>Query heads per row, H.</summary>
    public readonly int Heads;

    /// <summary>Key heads per row, KVH; 0 when only the queries are rotated.</summary>
    public readonly int KeyHeads;

    /// <summary>Half the head dimension, D/2: the number of rotated pairs per head.</summary>
    public readonly int Half;

    /// <summary>The queries' pairs, M·H·D/2: pair indices from here on are the keys'.</summary>
    public readonly int QueryPairs;

    /// <summary>1 to rotate by +angle, −1 to rotate by −angle (the backward).</summary>
    public readonly float SinSign;

    /// <summary>Creates the arguments for <paramref name="rows"/> rows.</summary>
    public RopeArgs(int rows, int heads, int keyHeads, int half, float sinSign)
    {
        Heads = heads;
        KeyHeads = keyHeads;
        Half = half;
        QueryPairs = rows * heads * half;
        SinSign = sinSign;
    }
}

/// <summary>
/// GELU (tanh approximation), SwiGLU, the residual add and RoPE on the ILGPU backend. Every kernel
/// is element-wise (auto-grouped, one thread per element or per rotated pair), so each result is
/// computed by one thread from its own inputs: deterministic, no reductions.
/// </summary>
public static class ActivationKernels
{
    /// <summary>√(2/π), GELU's tanh-approximation scale.</summary>
    private const float GeluScale = 0.7978845608028654f;

    /// <summary>The cubic coefficient of GELU's tanh approximation.</summary>
    private const float GeluCubic = 0.044715f;

    /// <summary>gelu(x) = x σ(2u) = 0.5x(1 + tanh u) with u = √(2/π)(x + 0.044715x³).</summary>
    /// <param name="i">The element index.</param>
    /// <param name="input">(n) pre-activations.</param>
    /// <param name="output">(n) activations, overwritten (may be the input).</param>
    public static void GeluForward(Index1D i, ArrayView<float> input, ArrayView<float> output)
    {
        float x = input[i];
        output[i] = x * Sigmoid(GeluTwiceU(x), out _);
    }

    /// <summary>dInput += dOutput · gelu'(x), gelu'(x) = σ(2u) + 2x σ(2u)(1 − σ(2u)) √(2/π)(1 + 3·0.044715x²).</summary>
    /// <param name="i">The element index.</param>
    /// <param name="dInput">(n) gradient, accumulated.</param>
    /// <param name="dOutput">(n) upstream gradient.</param>
    /// <param name="input">(n) the forward's input.</param>
    public static void GeluBackward(Index1D i, ArrayView<float> dInput, ArrayView<float> dOutput, ArrayView<float> input)
    {
        float x = input[i];
        float s = Sigmoid(GeluTwiceU(x), out float slope);
        // x² capped at 1e4 so it cannot overflow: beyond |x| = 100 the slope is exactly 0 anyway.
        float du = 2 * GeluScale * (1 + 3 * GeluCubic * XMath.Min(x * x, 1e4f));
        dInput[i] = dInput[i] + dOutput[i] * (s + x * slope * du);
    }

    /// <summary>
    /// output[r, j] = silu(g) · u with g = gateUp[r, j], u = gateUp[r, I + j] (each gate|up row holds the I gate values, then
    /// the I up values), silu(g) = g σ(g). Element i = r·I + j.
    /// </summary>
    /// <param name="i">The output element index.</param>
    /// <param name="gateUp">(M, 2I) the fused gate_proj|up_proj output.</param>
    /// <param name="output">(M, I) gated activations, overwritten.</param>
    /// <param name="width">I, the intermediate size.</param>
    public static void SwiGluForward(Index1D i, ArrayView<float> gateUp, ArrayView<float> output, int width)
    {
        int at = i, row = at / width, gateAt = at + row * width; // 2·r·I + j
        float g = gateUp[gateAt];
        output[at] = g * Sigmoid(g, out _) * gateUp[gateAt + width];
    }

    /// <summary>
    /// With g = gateUp[r, j], u = gateUp[r, I + j]: dGateUp[r, j] += dO · u · (σ + g σ(1 − σ)),
    /// dGateUp[r, I + j] += dO · g σ(g). Element i = r·I + j.
    /// </summary>
    /// <param name="i">The output element index.</param>
    /// <param name="gateUp">(M, 2I) the forward's gate|up rows.</param>
    /// <param name="dOutput">(M, I) upstream gradient.</param>
    /// <param name="dGateUp">(M, 2I) gradient of the gate|up rows, accumulated.</param>
    /// <param name="width">I, the intermediate size.</param>
    public static void SwiGluBackward(Index1D i, ArrayView<float> gateUp, ArrayView<float> dOutput, ArrayView<float> dGateUp, int width)
    {
        int at = i, row = at / width, gateAt = at + row * width, upAt = gateAt + width; // 2·r·I + j, 2·r·I + I + j
        float g = gateUp[gateAt], dO = dOutput[at];
        float s = Sigmoid(g, out float slope);
        dGateUp[gateAt] = dGateUp[gateAt] + dO * gateUp[upAt] * (s + g * slope);
        dGateUp[upAt] = dGateUp[upAt] + dO * (g * s);
    }

    /// <summary>output = a + b; output may be a or b.</summary>
    /// <param name="i">The element index.</param>
    /// <param name="a">(n) first addend.</param>
    /// <param name="b">(n) second addend.</param>
    /// <param name="output">(n) the sum.</param>
    public static void Add(Index1D i, ArrayView<float> a, ArrayView<float> b, ArrayView<float> output) => output[i] = a[i] + b[i];

    /// <summary>
    /// Rotates one pair of the queries or, past the queries' <see cref="RopeArgs.QueryPairs"/>, of the keys, in place by the
    /// angle of its row's position: pair i = (r·heads + h)·D/2 + j (j &lt; D/2) of its tensor,
    /// (x, y) ← (x cos − y sin, y cos + x sin), sin negated for the inverse. cos and sin come from the host-computed
    /// table, so no device trigonometry is involved.
    /// </summary>
    /// <param name="i">The pair index over both tensors: M·H·D/2 query pairs, then M·KVH·D/2 key pairs.</param>
    /// <param name="query">(M, H, D) rotated in place.</param>
    /// <param name="key">(M, KVH, D) rotated in place; not read when KVH = 0.</param>
    /// <param name="positions">(M) validated positions, each below the table's length.</param>
    /// <param name="table">(P, D) per position: cos of the D/2 angles, then their sin.</param>
    /// <param name="p">Heads, key heads, D/2, the query pair count and the direction.</param>
    public static void Rope(Index1D i, ArrayView<float> query, ArrayView<float> key, ArrayView<int> positions, ArrayView<float> table,
        RopeArgs p)
    {
        int pair = i;
        if (pair < p.QueryPairs) RotatePair(query, pair, p.Heads, positions, table, p);
        else RotatePair(key, pair - p.QueryPairs, p.KeyHeads, positions, table, p);
    }

    /// <summary>Rotates pair <paramref name="pair"/> of a (M, heads, D) tensor; see <see cref="Rope"/>.</summary>
    private static void RotatePair(ArrayView<float> values, int pair, int heads, ArrayView<int> positions, ArrayView<float> table, RopeArgs p)
    {
        int half = p.Half, d = 2 * half;
        int rowHead = pair / half, j = pair - rowHead * half;
        int row = rowHead / heads;
        long t = (long)positions[row] * d + j;
        float c = table[t], s = table[t + half] * p.SinSign;
        long at = (long)rowHead * d + j;
        values[at] = Rotate(values[at], values[at + half], c, s, out float y);
        values[at + half] = y;
    }

    /// <summary>
    /// One RoPE rotation: returns x cos − y sin and sets <paramref name="yRotated"/> = y cos + x sin. Every kernel that rotates
    /// calls this, so a fused kernel gives the bits of <see cref="Rope"/>.
    /// </summary>
    public static float Rotate(float x, float y, float c, float s, out float yRotated)
    {
        yRotated = y * c + x * s;
        return x * c - y * s;
    }

    /// <summary>2u = 2√(2/π)(x + 0.044715x³): σ(2u) = (1 + tanh u)/2.</summary>
    private static float GeluTwiceU(float x) => 2 * GeluScale * (x + GeluCubic * x * x * x);

    /// <summary>
    /// σ(z) and σ(z)(1 − σ(z)) from a = e^−|z| ∈ (0, 1], which never overflows: σ = 1/(1+a) for z ≥ 0,
    /// a/(1+a) below, σ(1 − σ) = a/(1+a)². No cancellation, no NaN for any finite z.
    /// </summary>
    private static float Sigmoid(float z, out float slope)
    {
        float a = KernelMath.Exp(-XMath.Abs(z));
        float r = 1 / (1 + a);
        slope = a * r * r;
        return z >= 0 ? r : a * r;
    }
}

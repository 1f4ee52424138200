using Grpo.Native.Checkpoints;

namespace Grpo.Native.Operations;

/// <summary>
/// The cos and sin of the RoPE angles for positions [0, <see cref="Positions"/>) at one (θ, D, scaling),
/// rounded exactly as Hugging Face's LlamaRotaryEmbedding rounds them in float32 (see
/// <see cref="IGrpoOperations.Rope"/>). Both backends read it (the ILGPU one uploads it), so they
/// rotate by the same floats; cos and sin are taken in double, so they are right to the last bit even
/// for angles of thousands of radians. Immutable: a call that needs a larger position grows a copy.
/// </summary>
internal sealed class RopeTable
{
    /// <summary>Smallest table built, so that short sequences do not regrow it token by token.</summary>
    private const int MinimumPositions = 512;

    private RopeTable(float theta, int d, RopeScaling? scaling, int positions, float[] values)
    {
        Theta = theta;
        D = d;
        Scaling = scaling;
        Positions = positions;
        Values = values;
    }

    /// <summary>The base θ.</summary>
    public float Theta { get; }

    /// <summary>The head dimension D (even).</summary>
    public int D { get; }

    /// <summary>The frequency scaling (Llama 3.x's), or null for plain RoPE.</summary>
    public RopeScaling? Scaling { get; }

    /// <summary>Positions covered: [0, Positions).</summary>
    public int Positions { get; }

    /// <summary>(Positions, D): row p holds cos(angle_p,i) for i &lt; D/2, then sin(angle_p,i).</summary>
    public float[] Values { get; }

    /// <summary>
    /// Returns <paramref name="existing"/> when it covers <paramref name="largestPosition"/>, otherwise a table
    /// that does (at least twice as long, so that growing sequences rebuild it O(log P) times), keeping the old rows.
    /// </summary>
    public static RopeTable Covering(RopeTable? existing, float theta, int d, RopeScaling? scaling, int largestPosition)
    {
        if (existing is not null && largestPosition < existing.Positions) return existing;
        int old = existing?.Positions ?? 0;
        long wanted = Math.Max(Math.Max(largestPosition + 1L, 2L * old), MinimumPositions);
        int positions = (int)Math.Min(wanted, ActivationsValidation.MaxRopePosition + 1L);
        var values = new float[(long)positions * d];
        existing?.Values.CopyTo(values, 0);
        float[] inverseFrequencies = InverseFrequencies(theta, d, scaling);
        int half = d / 2;
        for (int p = old; p < positions; p++)
        {
            var row = values.AsSpan(p * d, d);
            for (int i = 0; i < half; i++)
            {
                // fp32 product, as freqs = inv_freq @ position_ids (a K = 1 matmul: one product each). The
                // llama3 type's attention scaling is 1, so cos and sin are not scaled afterwards.
                float angle = (float)p * inverseFrequencies[i];
                row[i] = (float)Math.Cos(angle);
                row[half + i] = (float)Math.Sin(angle);
            }
        }
        return new RopeTable(theta, d, scaling, positions, values);
    }

    /// <summary>
    /// inv_freq_i = fp32(1 / fp32(θ^fp32(2i / D))) for i &lt; D/2, torch's
    /// <c>1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))</c> in float32; then, with a
    /// <paramref name="scaling"/>, Llama 3.x's rescaling of them (<see cref="ScaleAsLlama3"/>).
    /// </summary>
    public static float[] InverseFrequencies(float theta, int d, RopeScaling? scaling = null)
    {
        var result = new float[d / 2];
        for (int i = 0; i < result.Length; i++)
        {
            float exponent = (float)(2 * i) / d;                  // fp32 division
            float power = (float)Math.Pow(theta, exponent);      // the correctly rounded fp32 power
            result[i] = 1f / power;                              // fp32 reciprocal
        }
        if (scaling is not null) ScaleAsLlama3(result, scaling);
        return result;
    }

    /// <summary>
    /// transformers' <c>_compute_llama3_parameters</c> (modeling_rope_utils.py) on the float32 inv_freq,
    /// rounded step by step as torch rounds it on the CPU, where LlamaRotaryEmbedding computes inv_freq
    /// when the model is built. Three torch rules decide the roundings:
    /// <list type="bullet">
    /// <item>a Python number meeting a float32 tensor is rounded to float32 first (type promotion keeps
    /// the tensor's dtype), so factor, low_freq_factor and 2π are used as floats, and the thresholds
    /// original / low_freq_factor, original / high_freq_factor and high − low_freq_factor are computed
    /// in Python's double and then rounded to float;</item>
    /// <item><c>number / tensor</c> is <c>Tensor.__rtruediv__</c>, which is <c>tensor.reciprocal() * number</c>:
    /// two fp32 roundings (wavelen = fp32(fp32(1 / inv_freq) · fp32(2π)), and the same for original / wavelen);</item>
    /// <item><c>tensor / number</c> on the CPU is one fp32 division (CUDA multiplies by fp32(1 / number)
    /// instead, which differs by at most an ulp unless the number is a power of two, as Llama 3.x's
    /// factors 8 and 32 are).</item>
    /// </list>
    /// Each remaining tensor operation is one fp32 rounding, in Python's left-to-right order.
    /// </summary>
    private static void ScaleAsLlama3(float[] inverseFrequencies, RopeScaling scaling)
    {
        float factor = (float)scaling.Factor;
        float low = (float)scaling.LowFrequencyFactor;
        float original = scaling.OriginalMaxPositions; // an int to float32: exact below 2^24
        float lowFrequencyWavelength = (float)(scaling.OriginalMaxPositions / scaling.LowFrequencyFactor);
        float highFrequencyWavelength = (float)(scaling.OriginalMaxPositions / scaling.HighFrequencyFactor);
        float span = (float)(scaling.HighFrequencyFactor - scaling.LowFrequencyFactor);
        float twoPi = (float)(2 * Math.PI);
        for (int i = 0; i < inverseFrequencies.Length; i++)
        {
            float frequency = inverseFrequencies[i];
            float wavelength = 1f / frequency * twoPi;                    // 2π / inv_freq
            if (wavelength < highFrequencyWavelength) continue;           // high frequency: unchanged
            if (wavelength > lowFrequencyWavelength)
            {
                inverseFrequencies[i] = frequency / factor;               // low frequency: divided
                continue;
            }
            float smooth = (1f / wavelength * original - low) / span;     // (original / wavelen − low) / (high − low)
            inverseFrequencies[i] = (1f - smooth) * frequency / factor + smooth * frequency;
        }
    }
}

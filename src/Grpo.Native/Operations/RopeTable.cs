namespace Grpo.Native.Operations;

/// <summary>
/// The cos and sin of the RoPE angles for positions [0, <see cref="Positions"/>) at one (θ, D),
/// rounded exactly as Hugging Face's LlamaRotaryEmbedding rounds them in float32 (see
/// <see cref="IGrpoOperations.Rope"/>). Both backends read it (the ILGPU one uploads it), so they
/// rotate by the same floats; cos and sin are taken in double, so they are right to the last bit even
/// for angles of thousands of radians. Immutable: a call that needs a larger position grows a copy.
/// </summary>
internal sealed class RopeTable
{
    /// <summary>Smallest table built, so that short sequences do not regrow it token by token.</summary>
    private const int MinimumPositions = 512;

    private RopeTable(float theta, int d, int positions, float[] values)
    {
        Theta = theta;
        D = d;
        Positions = positions;
        Values = values;
    }

    /// <summary>The base θ.</summary>
    public float Theta { get; }

    /// <summary>The head dimension D (even).</summary>
    public int D { get; }

    /// <summary>Positions covered: [0, Positions).</summary>
    public int Positions { get; }

    /// <summary>(Positions, D): row p holds cos(angle_p,i) for i &lt; D/2, then sin(angle_p,i).</summary>
    public float[] Values { get; }

    /// <summary>
    /// Returns <paramref name="existing"/> when it covers <paramref name="largestPosition"/>, otherwise a table
    /// that does (at least twice as long, so that growing sequences rebuild it O(log P) times), keeping the old rows.
    /// </summary>
    public static RopeTable Covering(RopeTable? existing, float theta, int d, int largestPosition)
    {
        if (existing is not null && largestPosition < existing.Positions) return existing;
        int old = existing?.Positions ?? 0;
        long wanted = Math.Max(Math.Max(largestPosition + 1L, 2L * old), MinimumPositions);
        int positions = (int)Math.Min(wanted, ActivationsValidation.MaxRopePosition + 1L);
        var values = new float[(long)positions * d];
        existing?.Values.CopyTo(values, 0);
        float[] inverseFrequencies = InverseFrequencies(theta, d);
        int half = d / 2;
        for (int p = old; p < positions; p++)
        {
            var row = values.AsSpan(p * d, d);
            for (int i = 0; i < half; i++)
            {
                float angle = (float)p * inverseFrequencies[i]; // fp32 product, as freqs = inv_freq @ position_ids
                row[i] = (float)Math.Cos(angle);
                row[half + i] = (float)Math.Sin(angle);
            }
        }
        return new RopeTable(theta, d, positions, values);
    }

    /// <summary>
    /// inv_freq_i = fp32(1 / fp32(θ^fp32(2i / D))) for i &lt; D/2, torch's
    /// <c>1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))</c> in float32.
    /// </summary>
    public static float[] InverseFrequencies(float theta, int d)
    {
        var result = new float[d / 2];
        for (int i = 0; i < result.Length; i++)
        {
            float exponent = (float)(2 * i) / d;                  // fp32 division
            float power = (float)Math.Pow(theta, exponent);      // the correctly rounded fp32 power
            result[i] = 1f / power;                              // fp32 reciprocal
        }
        return result;
    }
}

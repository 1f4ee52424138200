namespace Grpo.Native.Checkpoints;

/// <summary>
/// RoPE frequency scaling read from config.json's <c>rope_scaling</c> (transformers 5 writes it as
/// <c>rope_parameters</c>). Only Llama 3.x's <c>"llama3"</c> type is implemented, as transformers'
/// <c>_compute_llama3_parameters</c> (modeling_rope_utils.py) computes it: with the unscaled
/// inv_freq_i = θ^(−2i/D) and wavelen_i = 2π / inv_freq_i,
/// <list type="bullet">
/// <item>wavelen_i &lt; original / high_freq_factor (high frequencies): inv_freq_i unchanged;</item>
/// <item>wavelen_i &gt; original / low_freq_factor (low frequencies): inv_freq_i / factor;</item>
/// <item>otherwise, with smooth = (original / wavelen_i − low_freq_factor) / (high_freq_factor − low_freq_factor):
/// (1 − smooth) · inv_freq_i / factor + smooth · inv_freq_i.</item>
/// </list>
/// The attention scaling (the factor cos and sin are multiplied by) is 1 for this type. Every other
/// type (linear, dynamic, yarn, longrope, ...) is refused when config.json is read.
/// </summary>
public sealed record RopeScaling
{
    /// <summary>The one scaling type implemented: Llama 3.x's.</summary>
    public const string Llama3 = "llama3";

    /// <summary><c>rope_type</c> (older configs: <c>type</c>); only <see cref="Llama3"/>.</summary>
    public string Type { get; init; } = Llama3;

    /// <summary><c>factor</c>: low frequencies are divided by it (8 for Llama 3.1, 32 for Llama 3.2).</summary>
    public required double Factor { get; init; }

    /// <summary><c>low_freq_factor</c>: wavelengths above original / low_freq_factor are divided by <see cref="Factor"/> (1 for Llama 3.x).</summary>
    public required double LowFrequencyFactor { get; init; }

    /// <summary><c>high_freq_factor</c>: wavelengths below original / high_freq_factor are kept (4 for Llama 3.x).</summary>
    public required double HighFrequencyFactor { get; init; }

    /// <summary><c>original_max_position_embeddings</c>: the pre-training context (8192 for Llama 3.x).</summary>
    public required int OriginalMaxPositions { get; init; }

    /// <summary>
    /// The JSON field (under <c>rope_scaling.</c>) that is invalid and why, or null when every field is valid:
    /// a llama3 type; factor, low_freq_factor and high_freq_factor positive and finite also once rounded to
    /// float32 (where Hugging Face uses them); high_freq_factor &gt; low_freq_factor; original_max_position_embeddings &gt; 0.
    /// </summary>
    internal (string Field, string Reason)? FindProblem()
    {
        if (Type != Llama3)
            return ("rope_type", $"is '{Type}' but only '{Llama3}' RoPE scaling is implemented");
        if (!PositiveInFloat32(Factor))
            return ("factor", $"is {Factor}; it must be a positive finite number (8 for Llama 3.1)");
        if (!PositiveInFloat32(LowFrequencyFactor))
            return ("low_freq_factor", $"is {LowFrequencyFactor}; it must be a positive finite number (1 for Llama 3.x)");
        if (!PositiveInFloat32(HighFrequencyFactor))
            return ("high_freq_factor", $"is {HighFrequencyFactor}; it must be a positive finite number (4 for Llama 3.x)");
        if (!(HighFrequencyFactor > LowFrequencyFactor) || !PositiveInFloat32(HighFrequencyFactor - LowFrequencyFactor))
            return ("high_freq_factor", $"is {HighFrequencyFactor}, not above low_freq_factor {LowFrequencyFactor}; " +
                "the smoothing divides by their difference, which must be positive");
        if (OriginalMaxPositions <= 0)
            return ("original_max_position_embeddings", $"is {OriginalMaxPositions}; it must be positive (8192 for Llama 3.x)");
        return null;
    }

    private static bool PositiveInFloat32(double value) => double.IsFinite(value) && (float)value > 0 && float.IsFinite((float)value);
}

using Grpo.Native.Checkpoints;
using Grpo.Native.Operations;

namespace Grpo.Cli;

/// <summary>
/// A model folder's generation_config.json as the defaults of <c>grpo sample</c> and <c>grpo eval</c>: its stop tokens
/// and sampling settings, each overridden by an explicit flag; a repetition_penalty the sampler does not apply is
/// reported on standard error.
/// </summary>
internal static class GenerationDefaults
{
    /// <summary>The folder's generation config (empty when it has none); a repetition_penalty ≠ 1 gets a one-line notice on <paramref name="error"/>.</summary>
    public static GenerationConfig Load(string modelFolder, TextWriter error)
    {
        var config = GenerationConfig.Load(modelFolder) ?? new GenerationConfig();
        if (config.HasIgnoredRepetitionPenalty)
            error.WriteLine($"note: {GenerationConfig.FileName} sets repetition_penalty {config.RepetitionPenalty}, which is ignored: the sampler " +
                            "does not apply it (it would make the sampler's log-probs disagree with the trainer's).");
        return config;
    }

    /// <summary>The config's sampling settings with each flag that was given in its place.</summary>
    public static SamplingOptions Sampling(GenerationConfig config, float? temperature, int? topK, float? topP, float minP = 0f)
    {
        var defaults = config.SamplingDefaults();
        var sampling = new SamplingOptions
        {
            Temperature = temperature ?? defaults.Temperature, TopK = topK ?? defaults.TopK, TopP = topP ?? defaults.TopP, MinP = minP,
        };
        sampling.Validate();
        return sampling;
    }
}

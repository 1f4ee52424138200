namespace Grpo.Native.Training;

/// <summary>
/// DAPO's dynamic sampling: groups whose scored rewards are all equal give no learning signal (their advantages are
/// all 0), so they are dropped and further batches of prompts are generated until the step has
/// <see cref="GrpoTrainerOptions.PromptsPerStep"/> informative groups, or <see cref="MaxGenerationBatches"/> batches were
/// generated; then the step trains on the informative groups there are (on the last batch if none was), and surplus
/// groups are dropped. Metrics <c>dynamic_sampling/generation_batches</c> and <c>dynamic_sampling/dropped_groups</c>.
/// </summary>
public sealed record DynamicSamplingOptions
{
    /// <summary>Most batches of prompts generated for one step (the first included). Default 4, at least 1.</summary>
    public int MaxGenerationBatches { get; init; } = 4;

    /// <summary>Throws when <see cref="MaxGenerationBatches"/> is below 1.</summary>
    public void Validate()
    {
        if (MaxGenerationBatches < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxGenerationBatches), MaxGenerationBatches,
                $"'{nameof(MaxGenerationBatches)}' is {MaxGenerationBatches}: generate at least 1 batch per step (4 is usual).");
    }
}

/// <summary>One batch of prompts for a step, each with the other columns of its dataset row (or none).</summary>
/// <param name="Prompts">Exactly <see cref="GrpoTrainerOptions.PromptsPerStep"/> token-id lists.</param>
/// <param name="Columns">One dictionary per prompt, or null.</param>
public sealed record PromptBatch(IReadOnlyList<int[]> Prompts, IReadOnlyList<IReadOnlyDictionary<string, object?>>? Columns = null);

/// <summary>Which groups give a learning signal, by the rule the advantages use.</summary>
internal static class InformativeGroups
{
    /// <summary>
    /// Per group of G completions: true when it has at least two scored completions whose weighted rewards are not all
    /// equal. A completion's weighted reward is Σ_f w_f·score_f over the functions that scored it (NaN when none did),
    /// exactly as ComputeAdvantages forms it, so a group kept here is one whose advantages are not all 0.
    /// </summary>
    /// <param name="scores">(N, F) row-major scores; NaN = no score.</param>
    /// <param name="weights">(F) the reward functions' weights.</param>
    /// <param name="groupSize">G: completions per group (consecutive).</param>
    public static bool[] Find(float[] scores, IReadOnlyList<float> weights, int groupSize)
    {
        int f = weights.Count, n = scores.Length / f;
        var informative = new bool[n / groupSize];
        for (int g = 0; g < informative.Length; g++)
        {
            float? first = null;
            int scored = 0;
            bool differs = false;
            for (int i = g * groupSize; i < (g + 1) * groupSize; i++)
            {
                float sum = 0;
                bool any = false;
                for (int j = 0; j < f; j++)
                {
                    float s = scores[i * f + j];
                    if (float.IsNaN(s)) continue;
                    sum += weights[j] * s;
                    any = true;
                }
                if (!any) continue;
                scored++;
                if (first is null) first = sum;
                else if (sum != first) differs = true;
            }
            informative[g] = scored >= 2 && differs;
        }
        return informative;
    }
}

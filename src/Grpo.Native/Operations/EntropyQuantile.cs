namespace Grpo.Native.Operations;

/// <summary>
/// TRL's <c>get_high_entropy_mask</c> threshold, on the host (the managed backend's; the ILGPU backend's twin is
/// EntropyQuantileKernels.Threshold): the q-quantile of the entropies of the loss tokens (mask = 1), with torch.quantile's
/// default linear interpolation.
/// </summary>
internal static class EntropyQuantile
{
    /// <summary>
    /// The threshold a token's entropy must reach (≥) to keep its policy term. Computed in double and
    /// rounded up to the next float, so that for a float entropy e, e ≥ the returned float exactly when
    /// e ≥ the double quantile. With no loss token it is +∞: TRL's mask is then all false.
    /// </summary>
    /// <param name="entropy">(N·T) per-token entropies; only loss tokens are read, and they must be finite.</param>
    /// <param name="mask">(N·T) 1 for a loss token.</param>
    /// <param name="tokensPerCompletion">T, to name a bad entropy's row and column.</param>
    /// <param name="q">The quantile, 1 − top_entropy_quantile, in [0, 1].</param>
    public static float Threshold(ReadOnlySpan<float> entropy, ReadOnlySpan<float> mask, int tokensPerCompletion, double q)
    {
        var values = new List<double>();
        for (int k = 0; k < entropy.Length; k++)
        {
            if (mask[k] != 1f) continue;
            if (!float.IsFinite(entropy[k]))
                throw GrpoObjectiveValidation.NonFiniteEntropy(k / tokensPerCompletion, k % tokensPerCompletion, entropy[k]);
            values.Add(entropy[k]);
        }
        if (values.Count == 0) return float.PositiveInfinity;
        values.Sort();
        // torch.quantile(x, q, interpolation="linear"): position q·(n − 1) between the sorted neighbours.
        double position = q * (values.Count - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, values.Count - 1);
        double threshold = values[below] + (position - below) * (values[above] - values[below]);
        float rounded = (float)threshold;
        return rounded < threshold ? MathF.BitIncrement(rounded) : rounded;
    }
}

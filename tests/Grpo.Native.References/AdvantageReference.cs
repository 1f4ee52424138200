namespace Grpo.Native.References;

/// <summary>What <see cref="AdvantageReference.Compute"/> returns.</summary>
public sealed record AdvantageReferenceResult(
    double[] Rewards, double[] Advantages, double[] GroupMean, double[] GroupStd,
    int ZeroStdGroups, int MissingRewards, double FracRewardZeroStd, double BatchMean, double BatchStd);

/// <summary>
/// GRPO advantages in double precision, written straight from the definition (TRL's, with NaN =
/// "no score"). Naive on purpose.
/// </summary>
public static class AdvantageReference
{
    public const double StdEpsilon = 1e-4;

    /// <param name="rewardsPerFunction">(N, F) row-major.</param>
    /// <param name="weights">(F).</param>
    /// <param name="groupSize">G.</param>
    /// <param name="scaling">"group", "batch" or "none".</param>
    public static AdvantageReferenceResult Compute(double[] rewardsPerFunction, double[] weights, int groupSize, string scaling)
    {
        int f = weights.Length;
        int n = rewardsPerFunction.Length / f;
        int groups = n / groupSize;

        // r_i: weighted sum of the scores that exist; NaN if there are none.
        var rewards = new double[n];
        int missing = 0;
        for (int i = 0; i < n; i++)
        {
            double sum = 0;
            int scored = 0;
            for (int j = 0; j < f; j++)
            {
                double x = rewardsPerFunction[i * f + j];
                if (double.IsNaN(x)) continue;
                sum += weights[j] * x;
                scored++;
            }
            rewards[i] = scored == 0 ? double.NaN : sum;
            if (scored == 0) missing++;
        }

        var groupMean = new double[groups];
        var groupStd = new double[groups];
        var flat = new bool[groups];
        for (int g = 0; g < groups; g++)
        {
            var valid = new List<double>();
            for (int k = 0; k < groupSize; k++)
                if (!double.IsNaN(rewards[g * groupSize + k])) valid.Add(rewards[g * groupSize + k]);
            groupMean[g] = valid.Count == 0 ? double.NaN : valid.Average();
            flat[g] = valid.Count < 2 || valid.All(v => v == valid[0]);
            groupStd[g] = flat[g] ? 0 : UnbiasedStd(valid);
        }

        var scoredRewards = rewards.Where(v => !double.IsNaN(v)).ToList();
        double batchMean = scoredRewards.Count == 0 ? double.NaN : scoredRewards.Average();
        double batchStd = scoredRewards.Count < 2 || scoredRewards.All(v => v == scoredRewards[0]) ? 0 : UnbiasedStd(scoredRewards);

        var advantages = new double[n];
        for (int i = 0; i < n; i++)
        {
            int g = i / groupSize;
            if (flat[g] || double.IsNaN(rewards[i])) continue; // advantage 0
            double centred = rewards[i] - groupMean[g];
            advantages[i] = scaling switch
            {
                "group" => centred / (groupStd[g] + StdEpsilon),
                "batch" => centred / (batchStd + StdEpsilon),
                "none" => centred,
                _ => throw new ArgumentOutOfRangeException(nameof(scaling), scaling, "group, batch or none"),
            };
        }

        int zeroStdGroups = flat.Count(z => z);
        return new AdvantageReferenceResult(rewards, advantages, groupMean, groupStd, zeroStdGroups, missing,
            (double)zeroStdGroups / groups, batchMean, batchStd);
    }

    private static double UnbiasedStd(List<double> values)
    {
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
    }
}

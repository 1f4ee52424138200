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

    /// <summary>
    /// TRL's <c>multi_objective_aggregation="normalize_then_sum"</c> in double:
    /// <code>
    /// grouped = rewards_per_func.view(-1, G, F)
    /// mean_k = torch.nanmean(grouped, dim=1, keepdim=True); std_k = nanstd(grouped, dim=1, keepdim=True)
    /// reward_k = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, F)
    /// rewards = (reward_k * reward_weights).nansum(dim=1)
    /// advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
    /// </code>
    /// nanstd is unbiased over the non-NaN values, so one score gives NaN (0 · ∞), dropped by nansum like a missing score.
    /// The library's conventions on top (documented): a completion no function scored is left out of the batch statistics
    /// with advantage 0 (TRL's nansum would make its reward 0), and when the batch's rewards are all equal every advantage is
    /// exactly 0. Returns the summed rewards (NaN for unscored), the advantages and the batch std.
    /// </summary>
    public static (double[] Rewards, double[] Advantages, double BatchStd) NormalizeThenSum(
        double[] rewardsPerFunction, double[] weights, int groupSize)
    {
        int f = weights.Length, n = rewardsPerFunction.Length / f;
        var rewards = new double[n];
        var anyScore = new bool[n];
        for (int g = 0; g < n / groupSize; g++)
            for (int j = 0; j < f; j++)
            {
                var values = Enumerable.Range(g * groupSize, groupSize).Select(i => rewardsPerFunction[i * f + j]).ToArray();
                var present = values.Where(v => !double.IsNaN(v)).ToList();
                double mean = present.Count == 0 ? double.NaN : present.Average();
                double std = present.Count < 2 ? double.NaN : UnbiasedStd(present);
                for (int k = 0; k < groupSize; k++)
                {
                    int i = g * groupSize + k;
                    if (double.IsNaN(values[k])) continue;
                    anyScore[i] = true;
                    double z = (values[k] - mean) / (std + StdEpsilon);
                    if (!double.IsNaN(z)) rewards[i] += weights[j] * z; // nansum
                }
            }
        for (int i = 0; i < n; i++) if (!anyScore[i]) rewards[i] = double.NaN;
        var scored = rewards.Where(v => !double.IsNaN(v)).ToList();
        double batchMean = scored.Average();
        double batchStd = scored.Count < 2 ? 0 : UnbiasedStd(scored);
        bool flat = scored.All(v => v == scored[0]);
        var advantages = rewards.Select(r => double.IsNaN(r) || flat ? 0 : (r - batchMean) / (batchStd + StdEpsilon)).ToArray();
        return (rewards, advantages, flat ? 0 : batchStd);
    }

    private static double UnbiasedStd(List<double> values)
    {
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

/// <summary>TRL's <c>multi_objective_aggregation</c>: how several reward functions become one advantage.</summary>
public enum MultiObjectiveAggregation
{
    /// <summary>
    /// TRL's default: r_i = Σ_f w_f·reward_{i,f} (NaN scores left out), then the group-relative advantage of r by
    /// <see cref="RewardScaling"/> (<see cref="IGrpoOperations.ComputeAdvantages"/>).
    /// </summary>
    SumThenNormalize,

    /// <summary>
    /// TRL's <c>normalize_then_sum</c> (GDPO): each function's scores are normalised within their group first,
    /// z_{i,f} = (reward_{i,f} − mean_{g,f}) / (std_{g,f} + 1e-4) over the group's scored values (unbiased std), then
    /// r_i = Σ_f w_f·z_{i,f} (a missing z left out), and the advantage is r normalised over the whole batch:
    /// A_i = (r_i − mean(r)) / (std(r) + 1e-4). <see cref="RewardScaling"/> is not used, as in TRL.
    /// </summary>
    NormalizeThenSum,
}

/// <summary>Advantages under a <see cref="MultiObjectiveAggregation"/>, composed from <see cref="IGrpoOperations.ComputeAdvantages"/>.</summary>
public static class RewardAggregation
{
    /// <summary>
    /// As <see cref="IGrpoOperations.ComputeAdvantages"/>, for either aggregation. <see cref="MultiObjectiveAggregation.NormalizeThenSum"/>
    /// runs that operation once per function (groups of G, <see cref="RewardScaling.Group"/>: exactly TRL's per-group
    /// z-score, 0 for a zero-std group or a lone score, which TRL's nansum drops likewise), sums the weighted z-scores on the
    /// host (an (N, F) copy), and runs it once more over the batch as one group of N. A completion no function scored stays
    /// unscored (advantage 0, out of the batch statistics), as everywhere in this library (TRL's nansum would count it as 0).
    /// Then <paramref name="rewards"/> holds r (the weighted sum of z-scores), and every entry of <paramref name="groupMean"/> and
    /// <paramref name="groupStd"/> the batch's mean and std of r, the one std the advantages were divided by (so
    /// <c>reward_std</c> and <c>frac_reward_zero_std</c>, computed from them, follow TRL's branch).
    /// </summary>
    public static AdvantageStatistics ComputeAdvantages(
        Device device, Tensor<float> rewardsPerFunction, ReadOnlySpan<float> weights, int groupSize, RewardScaling scaling,
        MultiObjectiveAggregation aggregation, Tensor<float> rewards, Tensor<float> advantages, Tensor<float> groupMean, Tensor<float> groupStd)
    {
        ArgumentNullException.ThrowIfNull(device);
        var ops = device.Operations;
        if (aggregation == MultiObjectiveAggregation.SumThenNormalize)
            return ops.ComputeAdvantages(rewardsPerFunction, weights, groupSize, scaling, rewards, advantages, groupMean, groupStd);
        if (aggregation != MultiObjectiveAggregation.NormalizeThenSum)
            throw new ArgumentOutOfRangeException(nameof(aggregation), aggregation, $"'{nameof(aggregation)}' must be SumThenNormalize or NormalizeThenSum.");

        Guard.Rank(rewardsPerFunction, nameof(rewardsPerFunction), 2, "(completions, reward functions)");
        int n = rewardsPerFunction.Shape[0], f = rewardsPerFunction.Shape[1];
        if (weights.Length != f)
            throw new ArgumentException($"'{nameof(weights)}' has {weights.Length} entries but there are {f} reward functions; give one weight per function.", nameof(weights));
        if (groupSize < 2 || n % groupSize != 0)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize,
                $"'{nameof(groupSize)}' must be at least 2 and divide the {n} completions.");
        float[] scores = rewardsPerFunction.ToArray();   // (N, F)
        var summed = new float[n];                       // (N) Σ_f w_f z_{i,f}
        var scored = new bool[n];                        // (N) any function scored completion i
        using (var column = device.Allocate<float>(n, 1))            // (N, 1)
        using (var columnRewards = device.Allocate<float>(n))        // (N)
        using (var z = device.Allocate<float>(n))                    // (N) this function's z-scores
        using (var columnMean = device.Allocate<float>(n / groupSize))  // (B)
        using (var columnStd = device.Allocate<float>(n / groupSize))   // (B)
        {
            var sums = new double[n];
            for (int j = 0; j < f; j++)
            {
                var values = new float[n];
                for (int i = 0; i < n; i++)
                {
                    values[i] = scores[i * f + j];
                    if (!float.IsNaN(values[i])) scored[i] = true;
                }
                column.CopyFrom(values);
                ops.ComputeAdvantages(column, [1f], groupSize, RewardScaling.Group, columnRewards, z, columnMean, columnStd);
                float[] zf = z.ToArray();
                for (int i = 0; i < n; i++) sums[i] += (double)weights[j] * zf[i]; // an unscored value's z is 0: left out
            }
            for (int i = 0; i < n; i++) summed[i] = scored[i] ? (float)sums[i] : float.NaN;
        }

        using var batchRewards = device.FromArray<float>(summed, n, 1);   // (N, 1)
        using var batchMean = device.Allocate<float>(1);                   // (1)
        using var batchStd = device.Allocate<float>(1);                    // (1)
        var stats = ops.ComputeAdvantages(batchRewards, [1f], n, RewardScaling.Group, rewards, advantages, batchMean, batchStd);
        float mean = batchMean.ToArray()[0], std = batchStd.ToArray()[0];
        groupMean.CopyFrom(Enumerable.Repeat(mean, (int)groupMean.Length).ToArray());
        groupStd.CopyFrom(Enumerable.Repeat(std, (int)groupStd.Length).ToArray());
        int groups = (int)groupStd.Length;
        bool zeroStd = Math.Abs(std) <= 1e-8f; // torch.isclose(std, 0): the one batch std decides for every completion
        return new AdvantageStatistics(zeroStd ? 1f : 0f, zeroStd ? groups : 0, stats.MissingRewards, mean, std);
    }
}

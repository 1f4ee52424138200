using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

/// <summary>How <see cref="IGrpoOperations.ComputeAdvantages"/> scales the centred rewards (TRL's <c>scale_rewards</c>).</summary>
public enum RewardScaling
{
    /// <summary>Divide by the group's unbiased standard deviation plus 1e-4 (the original GRPO).</summary>
    Group,

    /// <summary>Divide by the unbiased standard deviation of every scored reward in the batch plus 1e-4; the group mean is still subtracted.</summary>
    Batch,

    /// <summary>No division: the advantage is the reward minus the group mean (Dr. GRPO).</summary>
    None,
}

/// <summary>
/// Host-side statistics of one <see cref="IGrpoOperations.ComputeAdvantages"/> call, for logging.
/// </summary>
/// <param name="FracRewardZeroStd">
/// <see cref="ZeroStdGroups"/> divided by the number of groups (TRL's <c>frac_reward_zero_std</c>):
/// the fraction of prompts that give no learning signal.
/// </param>
/// <param name="ZeroStdGroups">
/// Groups whose scored rewards are all equal, or that have fewer than two scored rewards; every
/// completion in them gets advantage 0 exactly.
/// </param>
/// <param name="MissingRewards">Completions for which every reward function returned NaN (no score); their advantage is 0.</param>
/// <param name="BatchMean">Mean of the scored rewards of the whole batch; NaN when no completion was scored.</param>
/// <param name="BatchStd">
/// Unbiased standard deviation of the scored rewards of the whole batch (the divisor, plus 1e-4, of
/// <see cref="RewardScaling.Batch"/>); 0 when fewer than two are scored or all are equal.
/// </param>
public sealed record AdvantageStatistics(
    float FracRewardZeroStd, int ZeroStdGroups, int MissingRewards, float BatchMean, float BatchStd);

public partial interface IGrpoOperations
{
    /// <summary>
    /// GRPO's group-relative advantages. With N completions in groups of G consecutive ones (the G
    /// samples of one prompt) and F reward functions:
    /// <list type="number">
    /// <item>r_i = Σ_f w_f · reward_{i,f}, where a NaN reward means "this function gave no score" and is
    /// left out of the sum (TRL's nansum). When every function gave NaN, r_i is NaN: completion i is
    /// unscored, is left out of its group's statistics and gets advantage 0.</item>
    /// <item>Per group, over its scored rewards: the mean, and the unbiased standard deviation
    /// (two-pass: mean first, then centred squares).</item>
    /// <item>A_i = r_i − mean_group, divided by (std_group + 1e-4) for <see cref="RewardScaling.Group"/>,
    /// by (batch std + 1e-4) for <see cref="RewardScaling.Batch"/>, not at all for <see cref="RewardScaling.None"/>.</item>
    /// <item>A group whose scored rewards are all equal (==), or that has fewer than two, gets std 0
    /// and A = 0 exactly for every member, without relying on floating-point cancellation.</item>
    /// </list>
    /// Reads the scalar statistics back to the host, so on an asynchronous device this call waits
    /// for the device (it synchronises). The ILGPU backend also copies the small (N, F) input to the
    /// host to check it for infinities, so both backends refuse the same inputs.
    /// </summary>
    /// <param name="rewardsPerFunction">(N, F) raw score of each reward function for each completion; NaN = no score, ±∞ is refused.</param>
    /// <param name="weights">(F) weight of each reward function; finite.</param>
    /// <param name="groupSize">G, completions per prompt: at least 2, and N must be a multiple of it.</param>
    /// <param name="scaling">How the centred rewards are scaled.</param>
    /// <param name="rewards">(N) output: the weighted rewards r_i (NaN for an unscored completion). Overwritten.</param>
    /// <param name="advantages">(N) output: the advantages A_i. Overwritten.</param>
    /// <param name="groupMean">(N/G) output: each group's mean scored reward; NaN for a group with no scored completion. Overwritten.</param>
    /// <param name="groupStd">(N/G) output: each group's unbiased reward std; 0 for a zero-std group. Overwritten.</param>
    /// <returns>Batch statistics for logging, read back to the host.</returns>
    /// <exception cref="ArgumentException">A shape, the group size, a weight or a reward is not acceptable; the message names it.</exception>
    AdvantageStatistics ComputeAdvantages(
        Tensor<float> rewardsPerFunction, ReadOnlySpan<float> weights, int groupSize, RewardScaling scaling,
        Tensor<float> rewards, Tensor<float> advantages, Tensor<float> groupMean, Tensor<float> groupStd);
}

/// <summary>Argument checks for <see cref="IGrpoOperations.ComputeAdvantages"/>, shared by both backends.</summary>
internal static class AdvantageValidation
{
    /// <summary>Added to the standard deviation before dividing, as in TRL.</summary>
    public const float StdEpsilon = 1e-4f;

    /// <summary>Checks everything but the reward values; returns (N, F, number of groups).</summary>
    public static (int N, int F, int Groups) Validate(
        Device device, Tensor<float> rewardsPerFunction, ReadOnlySpan<float> weights, int groupSize, RewardScaling scaling,
        Tensor<float> rewards, Tensor<float> advantages, Tensor<float> groupMean, Tensor<float> groupStd)
    {
        Guard.OnDevice(rewardsPerFunction, device, nameof(rewardsPerFunction));
        Guard.Rank(rewardsPerFunction, nameof(rewardsPerFunction), 2, "(completions, reward functions)");
        int n = rewardsPerFunction.Shape[0], f = rewardsPerFunction.Shape[1];
        if (weights.Length != f)
            throw new ArgumentException(
                $"'{nameof(weights)}' has {weights.Length} elements but '{nameof(rewardsPerFunction)}' has {f} reward functions; pass one weight per function.",
                nameof(weights));
        for (int j = 0; j < f; j++)
            Guard.Finite(weights[j], nameof(weights), $"weight {j} is {weights[j]}; give every reward function a finite weight.");
        if (groupSize < 2)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize,
                $"'{nameof(groupSize)}' must be at least 2: a group of one completion has no baseline to compare against.");
        if (n % groupSize != 0)
            throw new ArgumentException(
                $"'{nameof(rewardsPerFunction)}' has {n} completions, which is not a multiple of '{nameof(groupSize)}' = {groupSize}; pass whole groups of consecutive completions.",
                nameof(groupSize));
        if (!Enum.IsDefined(scaling))
            throw new ArgumentOutOfRangeException(nameof(scaling), scaling, $"'{nameof(scaling)}' must be Group, Batch or None.");
        int groups = n / groupSize;
        Guard.OnDevice(rewards, device, nameof(rewards));
        Guard.Shape(rewards, nameof(rewards), n);
        Guard.OnDevice(advantages, device, nameof(advantages));
        Guard.Shape(advantages, nameof(advantages), n);
        Guard.OnDevice(groupMean, device, nameof(groupMean));
        Guard.Shape(groupMean, nameof(groupMean), groups);
        Guard.OnDevice(groupStd, device, nameof(groupStd));
        Guard.Shape(groupStd, nameof(groupStd), groups);
        return (n, f, groups);
    }

    /// <summary>
    /// Refuses infinite rewards (NaN is allowed: it means "no score"). Both backends call it on a host
    /// copy of the (N, F) input before anything is written.
    /// </summary>
    public static void RewardsAreFiniteOrMissing(ReadOnlySpan<float> rewardsPerFunction /* (N, F) */, int f)
    {
        for (int k = 0; k < rewardsPerFunction.Length; k++)
        {
            if (float.IsInfinity(rewardsPerFunction[k]))
                throw new ArgumentException(
                    $"'{nameof(rewardsPerFunction)}' holds {rewardsPerFunction[k]} for completion {k / f}, reward function {k % f}; " +
                    "a reward must be finite, or NaN when the function gives no score.",
                    nameof(rewardsPerFunction));
        }
    }

    /// <summary>The statistics record from the counts the backends gathered.</summary>
    public static AdvantageStatistics Statistics(int groups, int zeroStdGroups, int missing, float batchMean, float batchStd) =>
        new((float)zeroStdGroups / groups, zeroStdGroups, missing, batchMean, batchStd);
}

using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>The sizes the advantage kernels share.</summary>
/// <param name="Completions">N, completions in the batch.</param>
/// <param name="Functions">F, reward functions.</param>
/// <param name="GroupSize">G, completions per prompt.</param>
public readonly record struct AdvantageSizes(int Completions, int Functions, int GroupSize);

/// <summary>
/// GRPO's group-relative advantages on the ILGPU backend. Groups are small (G ≈ 8), so one thread
/// handles one whole group; the batch statistics are one group-wide reduction.
/// </summary>
public static class AdvantageKernels
{
    /// <summary>
    /// Slots of the statistics buffer that <see cref="BatchStatistics"/> writes; <see cref="StatFirstInfinite"/> is the flat
    /// (N, F) index of the first infinite raw reward, +∞ when there is none (the host raises the error from it).
    /// </summary>
    public const int StatMean = 0, StatStd = 1, StatZeroStdGroups = 2, StatMissing = 3, StatFirstInfinite = 4, StatCount = 5;

    /// <summary>
    /// One thread per group: weighted rewards (nansum; NaN when every function gave NaN), the
    /// group's mean and unbiased std over its scored rewards (two-pass), and the centred rewards
    /// r − mean, or exactly 0 for unscored completions and for groups whose scored rewards are all
    /// equal or fewer than two (those groups get std 0 and a 1 in <paramref name="zeroStd"/>).
    /// </summary>
    /// <param name="group">The group index.</param>
    /// <param name="rewardsPerFunction">(N, F) raw rewards.</param>
    /// <param name="weights">(F) reward function weights.</param>
    /// <param name="sizes">N, F and G.</param>
    /// <param name="rewards">(N) output weighted rewards.</param>
    /// <param name="centred">(N) output centred rewards (the unscaled advantages).</param>
    /// <param name="groupMean">(N/G) output group means (NaN for a group with no scored reward).</param>
    /// <param name="groupStd">(N/G) output group standard deviations.</param>
    /// <param name="zeroStd">(N/G) output: 1 for a group that gives no signal, else 0.</param>
    public static void GroupStatistics(
        Index1D group, ArrayView<float> rewardsPerFunction, ArrayView<float> weights, AdvantageSizes sizes,
        ArrayView<float> rewards, ArrayView<float> centred, ArrayView<float> groupMean, ArrayView<float> groupStd,
        ArrayView<int> zeroStd)
    {
        int g = group, size = sizes.GroupSize, f = sizes.Functions, begin = g * size;
        int count = 0;
        float sum = 0, first = 0;
        bool allEqual = true;
        for (int i = begin; i < begin + size; i++)
        {
            float r = 0;
            bool scored = false;
            for (int j = 0; j < f; j++)
            {
                float x = rewardsPerFunction[i * f + j];
                if (XMath.IsNaN(x)) continue;
                r += weights[j] * x;
                scored = true;
            }
            if (!scored)
            {
                rewards[i] = float.NaN;
                continue;
            }
            rewards[i] = r;
            if (count == 0) first = r;
            else allEqual &= r == first;
            count++;
            sum += r;
        }

        float mean = count == 0 ? float.NaN : sum / count;
        bool degenerate = count < 2 || allEqual;
        float squares = 0;
        if (!degenerate)
        {
            for (int i = begin; i < begin + size; i++)
            {
                float r = rewards[i];
                if (XMath.IsNaN(r)) continue;
                squares += (r - mean) * (r - mean);
            }
        }
        groupMean[g] = mean;
        groupStd[g] = degenerate ? 0f : XMath.Sqrt(squares / (count - 1));
        zeroStd[g] = degenerate ? 1 : 0;
        for (int i = begin; i < begin + size; i++)
        {
            float r = rewards[i];
            centred[i] = degenerate || XMath.IsNaN(r) ? 0f : r - mean;
        }
    }

    /// <summary>
    /// Launched as one group: mean and unbiased std (two-pass) of the scored rewards of the whole
    /// batch, the number of zero-std groups and of unscored completions, in a fixed reduction order.
    /// Writes <paramref name="stats"/>[<see cref="StatMean"/> .. <see cref="StatMissing"/>].
    /// </summary>
    /// <param name="rewards">(N) weighted rewards, NaN = unscored.</param>
    /// <param name="zeroStd">(N/G) 1 for a zero-std group.</param>
    /// <param name="rewardsPerFunction">(N, F) raw rewards, searched for an infinite one (NaN means unscored and is allowed).</param>
    /// <param name="stats">(StatCount) output.</param>
    public static void BatchStatistics(ArrayView<float> rewards, ArrayView<int> zeroStd, ArrayView<float> rewardsPerFunction, ArrayView<float> stats)
    {
        int t = Group.IdxX, stride = Group.DimX, n = (int)rewards.Length;
        // Counts travel as floats through the float reduction: exact below 2^24.
        float count = 0, sum = 0, missing = 0, max = float.NegativeInfinity, negMin = float.NegativeInfinity;
        for (int i = t; i < n; i += stride)
        {
            float r = rewards[i];
            if (XMath.IsNaN(r))
            {
                missing += 1;
                continue;
            }
            count += 1;
            sum += r;
            max = XMath.Max(max, r);
            negMin = XMath.Max(negMin, -r);
        }
        float zero = 0;
        for (int g = t; g < zeroStd.Length; g += stride) zero += zeroStd[g];
        float negFirstInfinite = float.NegativeInfinity; // flat indices travel as floats: exact below 2^24
        for (int k = t; k < rewardsPerFunction.Length; k += stride)
            if (XMath.IsInfinity(rewardsPerFunction[k])) negFirstInfinite = XMath.Max(negFirstInfinite, -k);

        count = GroupReduce.Sum(count);
        sum = GroupReduce.Sum(sum);
        missing = GroupReduce.Sum(missing);
        zero = GroupReduce.Sum(zero);
        max = GroupReduce.Max(max);
        negMin = GroupReduce.Max(negMin);
        negFirstInfinite = GroupReduce.Max(negFirstInfinite);

        float mean = count == 0 ? float.NaN : sum / count;
        bool degenerate = count < 2 || max == -negMin;
        float squares = 0;
        if (!degenerate)
        {
            for (int i = t; i < n; i += stride)
            {
                float r = rewards[i];
                if (!XMath.IsNaN(r)) squares += (r - mean) * (r - mean);
            }
        }
        // Every thread takes part: the reduction holds barriers.
        squares = GroupReduce.Sum(squares);
        if (t == 0)
        {
            stats[StatMean] = mean;
            stats[StatStd] = degenerate ? 0f : XMath.Sqrt(squares / (count - 1));
            stats[StatZeroStdGroups] = zero;
            stats[StatMissing] = missing;
            stats[StatFirstInfinite] = -negFirstInfinite;
        }
    }

    /// <summary>
    /// Divides each centred reward by its scale plus 1e-4: the group std (<paramref name="batchScale"/> = 0)
    /// or the batch std (<paramref name="batchScale"/> = 1). Zeros stay exactly zero.
    /// </summary>
    /// <param name="i">The completion index.</param>
    /// <param name="advantages">(N) centred rewards in, advantages out.</param>
    /// <param name="groupStd">(N/G) group standard deviations.</param>
    /// <param name="stats">(StatCount) the batch statistics.</param>
    /// <param name="groupSize">G.</param>
    /// <param name="batchScale">1 to divide by the batch std, 0 for the group std.</param>
    /// <param name="epsilon">Added to the std (1e-4).</param>
    public static void Scale(
        Index1D i, ArrayView<float> advantages, ArrayView<float> groupStd, ArrayView<float> stats,
        int groupSize, int batchScale, float epsilon)
    {
        float std = batchScale != 0 ? stats[StatStd] : groupStd[i / groupSize];
        advantages[i] = advantages[i] / (std + epsilon);
    }
}

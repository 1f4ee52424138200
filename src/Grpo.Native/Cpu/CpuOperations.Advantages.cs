using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    // One pass over N·F floats: even at N = 4096 this is microseconds, less than the cost of
    // starting threads, so it runs on the calling thread (and is trivially thread-count independent).
    public AdvantageStatistics ComputeAdvantages(
        Tensor<float> rewardsPerFunction, ReadOnlySpan<float> weights, int groupSize, RewardScaling scaling,
        Tensor<float> rewards, Tensor<float> advantages, Tensor<float> groupMean, Tensor<float> groupStd)
    {
        var (n, f, groups) = AdvantageValidation.Validate(
            Device, rewardsPerFunction, weights, groupSize, scaling, rewards, advantages, groupMean, groupStd);
        CpuBuffer<float> input = Data(rewardsPerFunction, nameof(rewardsPerFunction)); // (N, F)
        AdvantageValidation.RewardsAreFiniteOrMissing(input, f);
        CpuBuffer<float> r = Data(rewards, nameof(rewards));             // (N)
        CpuBuffer<float> a = Data(advantages, nameof(advantages));       // (N)
        CpuBuffer<float> mean = Data(groupMean, nameof(groupMean));      // (N/G)
        CpuBuffer<float> std = Data(groupStd, nameof(groupStd));         // (N/G)

        int missing = 0;
        for (int i = 0; i < n; i++)
        {
            r[i] = WeightedReward(input.AsSpan(i * f, f), weights);
            if (float.IsNaN(r[i])) missing++;
        }

        int zeroStdGroups = 0;
        for (int g = 0; g < groups; g++)
        {
            var members = r.AsSpan(g * groupSize, groupSize); // (G)
            var (m, s, degenerate) = Moments(members);
            mean[g] = m;
            std[g] = s;
            if (degenerate) zeroStdGroups++;
            for (int k = 0; k < groupSize; k++)
            {
                float v = members[k];
                // Exact zeros for unscored completions and flat groups: no reliance on v − m cancelling.
                a[g * groupSize + k] = degenerate || float.IsNaN(v) ? 0f : v - m;
            }
        }

        var (batchMean, batchStd, _) = Moments(r);
        if (scaling == RewardScaling.Group)
            for (int i = 0; i < n; i++) a[i] /= std[i / groupSize] + AdvantageValidation.StdEpsilon;
        else if (scaling == RewardScaling.Batch)
            for (int i = 0; i < n; i++) a[i] /= batchStd + AdvantageValidation.StdEpsilon;

        return AdvantageValidation.Statistics(groups, zeroStdGroups, missing, batchMean, batchStd);
    }

    /// <summary>Σ_f w_f · x_f over the scored (non-NaN) x_f; NaN when none is scored.</summary>
    private static float WeightedReward(ReadOnlySpan<float> scores /* (F) */, ReadOnlySpan<float> weights /* (F) */)
    {
        float sum = 0;
        bool scored = false;
        for (int j = 0; j < scores.Length; j++)
        {
            if (float.IsNaN(scores[j])) continue;
            sum += weights[j] * scores[j];
            scored = true;
        }
        return scored ? sum : float.NaN;
    }

    /// <summary>
    /// Mean and unbiased std of the non-NaN values, two-pass, accumulated in double. Degenerate
    /// (std exactly 0) when fewer than two values are scored or all scored values are equal.
    /// The mean is NaN when no value is scored.
    /// </summary>
    private static (float Mean, float Std, bool Degenerate) Moments(ReadOnlySpan<float> values /* (n) */)
    {
        int count = 0;
        double sum = 0;
        float first = float.NaN;
        bool allEqual = true;
        foreach (float v in values)
        {
            if (float.IsNaN(v)) continue;
            if (count == 0) first = v;
            else allEqual &= v == first;
            count++;
            sum += v;
        }
        if (count == 0) return (float.NaN, 0f, true);
        float mean = (float)(sum / count);
        if (count < 2 || allEqual) return (mean, 0f, true);
        double squares = 0;
        foreach (float v in values)
        {
            if (float.IsNaN(v)) continue;
            double d = v - (double)mean;
            squares += d * d;
        }
        return (mean, (float)Math.Sqrt(squares / (count - 1)), false);
    }
}

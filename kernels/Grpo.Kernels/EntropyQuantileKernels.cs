using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>
/// TRL's entropy-mask threshold (<c>get_high_entropy_mask</c>) on the device, so that entropy masking reads nothing back: the
/// q-quantile of the loss tokens' entropies with torch.quantile's linear interpolation, found by bisection over the floats'
/// ordered keys (<see cref="OrderedFloatKeys"/>) with exact integer counts, so it is deterministic and independent of the
/// group size. The managed backend computes the same threshold on the host (Grpo.Native's EntropyQuantile).
/// </summary>
public static class EntropyQuantileKernels
{
    /// <summary>
    /// Launched as one group over the (N·T) entropies. Writes <see cref="ObjectiveKernels.EntropyThreshold"/>: the double
    /// quantile rounded up to the next float (so a float entropy e keeps its policy term, e ≥ threshold, exactly when e is at or
    /// above the double quantile), +∞ when no loss token has a finite entropy. Non-finite entropies at loss tokens are left out
    /// and reported: their count (<see cref="ObjectiveKernels.TotalBadEntropy"/>) and the first one's row, column and value.
    /// Cost: 34 passes over the entropies (a count, 32 bisection steps over the 32-bit keys, the next order statistic).
    /// </summary>
    /// <param name="entropy">(N, T) per-token entropies.</param>
    /// <param name="mask">(N, T) 1 = loss token.</param>
    /// <param name="tokens">T.</param>
    /// <param name="count">N·T.</param>
    /// <param name="quantile">q = 1 − top_entropy_quantile, in [0, 1].</param>
    /// <param name="scalars">(ScalarCount) output slots <see cref="ObjectiveKernels.EntropyThreshold"/> .. <see cref="ObjectiveKernels.FirstBadEntropyValue"/>.</param>
    public static void Threshold(ArrayView<float> entropy, ArrayView<float> mask, int tokens, int count, double quantile, ArrayView<float> scalars)
    {
        int valid = 0, bad = 0, firstBad = int.MaxValue;
        for (int k = Group.IdxX; k < count; k += Group.DimX)
        {
            if (mask[k] != 1f) continue;
            if (IsFinite(entropy[k])) valid++;
            else
            {
                bad++;
                if (k < firstBad) firstBad = k;
            }
        }
        valid = GroupReduce.Sum(valid);
        bad = GroupReduce.Sum(bad);
        firstBad = GroupReduce.Min(firstBad);

        float threshold = float.PositiveInfinity; // no loss token: TRL's mask is all false
        if (valid > 0)
        {
            // torch.quantile(x, q, interpolation="linear"): position q·(n − 1) between the sorted neighbours.
            double position = quantile * (valid - 1);
            int below = (int)XMath.Floor(position);
            uint belowKey = KeyOfRank(entropy, mask, count, below);
            // The next order statistic: the same value while ties last, else the smallest key above it.
            int atOrBelow = 0;
            uint aboveKey = uint.MaxValue;
            for (int k = Group.IdxX; k < count; k += Group.DimX)
            {
                if (mask[k] != 1f || !IsFinite(entropy[k])) continue;
                uint key = OrderedFloatKeys.Of(entropy[k]);
                if (key <= belowKey) atOrBelow++;
                else if (key < aboveKey) aboveKey = key;
            }
            atOrBelow = GroupReduce.Sum(atOrBelow);
            aboveKey = (uint)GroupReduce.Min((int)(aboveKey ^ 0x80000000u)) ^ 0x80000000u; // unsigned minimum via the signed one
            if (below + 1 >= valid || below + 1 < atOrBelow) aboveKey = belowKey;
            double low = OrderedFloatKeys.ToFloat(belowKey), high = OrderedFloatKeys.ToFloat(aboveKey);
            double exact = low + (position - below) * (high - low);
            threshold = (float)exact;
            if (threshold < exact) threshold = NextUp(threshold);
        }
        if (Group.IdxX == 0)
        {
            scalars[ObjectiveKernels.EntropyThreshold] = threshold;
            scalars[ObjectiveKernels.TotalBadEntropy] = bad;
            scalars[ObjectiveKernels.FirstBadEntropyRow] = bad > 0 ? firstBad / tokens : float.PositiveInfinity;
            scalars[ObjectiveKernels.FirstBadEntropyColumn] = bad > 0 ? firstBad % tokens : float.PositiveInfinity;
            scalars[ObjectiveKernels.FirstBadEntropyValue] = bad > 0 ? entropy[firstBad] : 0f;
        }
    }

    /// <summary>
    /// The key of the value of rank <paramref name="rank"/> (0: the smallest) among the loss tokens' finite entropies: the
    /// smallest key with more than <paramref name="rank"/> keys at or below it, by bisection (32 steps). Every thread gets it.
    /// </summary>
    private static uint KeyOfRank(ArrayView<float> entropy, ArrayView<float> mask, int count, int rank)
    {
        uint lo = 0, hi = uint.MaxValue;
        while (lo < hi)
        {
            uint mid = lo + (hi - lo) / 2;
            int atOrBelow = 0;
            for (int k = Group.IdxX; k < count; k += Group.DimX)
                if (mask[k] == 1f && IsFinite(entropy[k]) && OrderedFloatKeys.Of(entropy[k]) <= mid) atOrBelow++;
            if (GroupReduce.Sum(atOrBelow) > rank) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }

    /// <summary>The next float above a finite <paramref name="value"/> (MathF.BitIncrement's result for finite values).</summary>
    private static float NextUp(float value)
    {
        if (value == 0f) return Interop.IntAsFloat(1u); // the smallest subnormal, from either zero
        uint bits = Interop.FloatAsInt(value);
        return Interop.IntAsFloat(value > 0f ? bits + 1 : bits - 1);
    }

    private static bool IsFinite(float value) => !XMath.IsNaN(value) && !XMath.IsInfinity(value);
}

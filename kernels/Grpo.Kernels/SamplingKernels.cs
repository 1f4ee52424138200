using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>
/// Everything one sampling launch needs, resolved on the host from the user's options so that the
/// kernel and the managed CPU backend read the same numbers: filters that cannot change the result
/// are already switched off here.
/// </summary>
public readonly struct SamplingParameters
{
    /// <summary>Creates the parameters; see each property for its meaning.</summary>
    public SamplingParameters(int vocab, int greedy, float inverseTemperature, int topK, float topP, int useMinP,
        float logMinP, ulong seed, int step, int firstRow = 0)
    {
        Vocab = vocab;
        Greedy = greedy;
        InverseTemperature = inverseTemperature;
        TopK = topK;
        TopP = topP;
        UseMinP = useMinP;
        LogMinP = logMinP;
        Seed = seed;
        Step = step;
        FirstRow = firstRow;
    }

    /// <summary>Columns per row (V).</summary>
    public int Vocab { get; }

    /// <summary>1 for temperature 0: argmax, no noise, no filters, log-probs at temperature 1.</summary>
    public int Greedy { get; }

    /// <summary>1/T rounded to float (1 when greedy); scaled logits are z = logit · this.</summary>
    public float InverseTemperature { get; }

    /// <summary>Keep the top-k scaled logits (ties at the boundary kept); 0 when off or k ≥ V.</summary>
    public int TopK { get; }

    /// <summary>Nucleus mass; 1 (or more) means off.</summary>
    public float TopP { get; }

    /// <summary>1 when min-p filtering is on.</summary>
    public int UseMinP { get; }

    /// <summary>ln(MinP) rounded to float: keep z ≥ z_max + this.</summary>
    public float LogMinP { get; }

    /// <summary>The user's seed for <see cref="CounterRng"/>.</summary>
    public ulong Seed { get; }

    /// <summary>The user's step for <see cref="CounterRng"/>.</summary>
    public int Step { get; }

    /// <summary>The global index of row 0 for <see cref="CounterRng"/>: a rank sampling rows F.. of a larger batch draws what one process would.</summary>
    public int FirstRow { get; }
}

/// <summary>
/// Batched token sampling: one group per row; the group finds the row maximum and the softmax
/// normaliser, the top-k and top-p thresholds by bisection over the float bit pattern (no sort),
/// and the Gumbel-max winner over the kept tokens. Argmax is order-independent (lowest index on
/// ties), so this kernel and the managed CPU backend pick the same token.
/// </summary>
public static class SamplingKernels
{
    /// <summary>
    /// Samples one token per row of <paramref name="logits"/> (R, V); launch with one group of a
    /// power-of-two size (at most <see cref="GroupReduce.MaxGroupSize"/>) per row. Logits must be
    /// finite: this kernel does not scan for NaN or infinity.
    /// </summary>
    /// <param name="logits">(R, V) raw logits, row-major.</param>
    /// <param name="tokens">(R) sampled token ids.</param>
    /// <param name="logprobs">(R) z_token − logsumexp(z) over the whole row.</param>
    /// <param name="p">The resolved options.</param>
    public static void SampleRows(ArrayView<float> logits, ArrayView<int> tokens, ArrayView<float> logprobs,
        SamplingParameters p)
    {
        int row = Grid.IdxX;
        int t = Group.IdxX;
        int stride = Group.DimX;
        int vocab = p.Vocab;
        long offset = (long)row * vocab;
        float inverseT = p.InverseTemperature;

        float zmax = float.NegativeInfinity;
        for (int j = t; j < vocab; j += stride) zmax = XMath.Max(zmax, logits[offset + j] * inverseT);
        zmax = GroupReduce.Max(zmax);

        // Normaliser over the FULL row (the returned log-prob is the trainer's, unfiltered), split as
        // ties + rest with ties = #{z = z_max}, so that log(ties + rest) keeps its relative accuracy
        // when the row is nearly one-hot and the log-prob is tiny.
        float rest = 0;
        int ties = 0;
        for (int j = t; j < vocab; j += stride)
        {
            float z = logits[offset + j] * inverseT;
            if (z < zmax) rest += KernelMath.Exp(z - zmax);
            else ties++;
        }
        rest = GroupReduce.Sum(rest);
        ties = GroupReduce.Sum(ties);

        // Kept set: z >= threshold. Every branch below is uniform across the group (parameters
        // and group-reduced values only), so all threads reach the same barriers.
        float threshold = float.NegativeInfinity;
        if (p.TopK > 0)
        {
            // Largest key whose count of z >= key is still >= k: the k-th largest z.
            uint lo = OrderedFloatKeys.Of(float.NegativeInfinity), hi = OrderedFloatKeys.Of(zmax);
            while (lo < hi)
            {
                uint mid = OrderedFloatKeys.UpperMidpoint(lo, hi);
                float candidate = OrderedFloatKeys.ToFloat(mid);
                int count = 0;
                for (int j = t; j < vocab; j += stride)
                    if (logits[offset + j] * inverseT >= candidate) count++;
                count = GroupReduce.Sum(count);
                if (count == p.TopK)
                {
                    // Exactly k at or above the candidate: the k-th largest is their minimum. Same
                    // answer as bisecting on, in about half the passes on random rows.
                    float least = float.PositiveInfinity;
                    for (int j = t; j < vocab; j += stride)
                    {
                        float z = logits[offset + j] * inverseT;
                        if (z >= candidate) least = XMath.Min(least, z);
                    }
                    lo = OrderedFloatKeys.Of(-GroupReduce.Max(-least));
                    break;
                }
                if (count > p.TopK) lo = mid;
                else hi = mid - 1;
            }
            threshold = OrderedFloatKeys.ToFloat(lo);
        }
        if (p.TopP < 1f)
        {
            // Largest z whose kept mass (z' >= z) is still >= TopP of the top-k mass. Bisection over
            // the bit pattern that snaps each bound to the nearest z on its side (the answer is a z),
            // which ends in a few passes on short or sparse rows instead of ~32.
            float target = p.TopP * KeptMass(logits, offset, vocab, inverseT, zmax, threshold).Mass;
            float lo = threshold, hi = zmax;
            while (OrderedFloatKeys.Of(lo) < OrderedFloatKeys.Of(hi))
            {
                var split = KeptMass(logits, offset, vocab, inverseT, zmax,
                    OrderedFloatKeys.ToFloat(OrderedFloatKeys.UpperMidpoint(OrderedFloatKeys.Of(lo), OrderedFloatKeys.Of(hi))));
                if (split.Mass >= target) lo = split.Least;
                else hi = split.Below;
            }
            threshold = lo;
        }
        if (p.UseMinP != 0) threshold = XMath.Max(threshold, zmax + p.LogMinP);

        // Gumbel-max over the kept set; each thread walks its columns upwards and keeps the first
        // best, the group keeps the lowest index among equal scores.
        ulong rowKey = CounterRng.RowKey(p.Seed, p.FirstRow + row, p.Step);
        float best = float.NegativeInfinity;
        int bestIndex = int.MaxValue;
        for (int j = t; j < vocab; j += stride)
        {
            float z = logits[offset + j] * inverseT;
            if (z < threshold) continue;
            float score = z;
            if (p.Greedy == 0)
                score -= KernelMath.Log(-KernelMath.Log(CounterRng.Uniform(rowKey, j)));
            if (score > best)
            {
                best = score;
                bestIndex = j;
            }
        }
        int token = GroupReduce.ArgMax(best, bestIndex);
        if (t == 0 && token >= vocab)
        {
            // No column was a candidate (NaN logits): token 0 keeps every id inside the table, which the
            // host relies on instead of reading ids back, and the NaN log-prob carries the fault into the loss.
            tokens[row] = 0;
            logprobs[row] = float.NaN;
        }
        else if (t == 0)
        {
            tokens[row] = token;
            // log(ties + rest) = log(ties) + log1p(rest / ties), log1p by Goldberg's exact-ratio trick.
            float r = rest / ties, onePlus = 1f + r;
            float logTotal = KernelMath.Log((float)ties) + (onePlus == 1f ? r : KernelMath.Log(onePlus) * r / (onePlus - 1f));
            logprobs[row] = (logits[offset + token] * inverseT - zmax) - logTotal;
        }
    }

    // Over the row, for a candidate threshold c: the un-normalised mass Σ exp(z − z_max) of z >= c,
    // the least z >= c and the greatest z < c, reduced over the group in one tree.
    private static MassSplit KeptMass(ArrayView<float> logits, long offset, int vocab, float inverseT, float zmax,
        float threshold)
    {
        float mass = 0, least = float.PositiveInfinity, below = float.NegativeInfinity;
        for (int j = Group.IdxX; j < vocab; j += Group.DimX)
        {
            float z = logits[offset + j] * inverseT;
            if (z >= threshold)
            {
                mass += KernelMath.Exp(z - zmax);
                least = XMath.Min(least, z);
            }
            else below = XMath.Max(below, z);
        }
        var masses = SharedMemory.Allocate<float>(GroupReduce.MaxGroupSize);
        var leasts = SharedMemory.Allocate<float>(GroupReduce.MaxGroupSize);
        var belows = SharedMemory.Allocate<float>(GroupReduce.MaxGroupSize);
        int t = Group.IdxX;
        masses[t] = mass;
        leasts[t] = least;
        belows[t] = below;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                masses[t] += masses[t + stride];
                leasts[t] = XMath.Min(leasts[t], leasts[t + stride]);
                belows[t] = XMath.Max(belows[t], belows[t + stride]);
            }
            Group.Barrier();
        }
        var result = new MassSplit(masses[0], leasts[0], belows[0]);
        Group.Barrier();
        return result;
    }

    private readonly struct MassSplit(float mass, float least, float below)
    {
        public float Mass { get; } = mass;
        public float Least { get; } = least;
        public float Below { get; } = below;
    }
}

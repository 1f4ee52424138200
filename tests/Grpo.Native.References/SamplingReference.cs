namespace Grpo.Native.References;

/// <summary>What the reference sampler decided for one row.</summary>
/// <param name="Token">The sampled token.</param>
/// <param name="LogProb">log softmax(z)[token] over the full vocabulary.</param>
/// <param name="Kept">(V) which tokens survive the filters.</param>
/// <param name="BestScore">The winning Gumbel score (z for greedy).</param>
/// <param name="RunnerUpScore">The second-best score over the kept set (−∞ when one token is kept).</param>
public sealed record SampledRow(int Token, double LogProb, bool[] Kept, double BestScore, double RunnerUpScore);

/// <summary>
/// Batched token sampling in double precision, written from the specification: sort-based top-k
/// and top-p, Gumbel-max over the kept set, and its own copy of the counter-based generator.
/// </summary>
public static class SamplingReference
{
    /// <summary>Samples every row of <paramref name="logits"/> (rows × vocab, row-major).</summary>
    public static SampledRow[] Sample(float[] logits, int rows, int vocab, double temperature, int topK,
        double topP, double minP, ulong seed, int step)
    {
        var result = new SampledRow[rows];
        for (int r = 0; r < rows; r++)
        {
            var x = new double[vocab];
            for (int j = 0; j < vocab; j++) x[j] = logits[r * vocab + j];
            result[r] = SampleRow(x, r, temperature, topK, topP, minP, seed, step);
        }
        return result;
    }

    private static SampledRow SampleRow(double[] x, int row, double temperature, int topK, double topP,
        double minP, ulong seed, int step)
    {
        int v = x.Length;
        bool greedy = temperature == 0;
        double t = greedy ? 1 : temperature;
        var z = new double[v];
        for (int j = 0; j < v; j++) z[j] = x[j] / t;

        var kept = new bool[v];
        if (greedy) Array.Fill(kept, true);
        else kept = KeptSet(z, topK, topP, minP);

        var scores = new double[v];
        for (int j = 0; j < v; j++)
        {
            if (!kept[j]) scores[j] = double.NegativeInfinity;
            else if (greedy) scores[j] = z[j];
            else scores[j] = z[j] - Math.Log(-Math.Log(Uniform(seed, row, step, j)));
        }
        int token = 0;
        for (int j = 1; j < v; j++) if (scores[j] > scores[token]) token = j;
        double runnerUp = double.NegativeInfinity;
        for (int j = 0; j < v; j++) if (j != token) runnerUp = Math.Max(runnerUp, scores[j]);
        return new SampledRow(token, LogSoftmaxAt(z, token), kept, scores[token], runnerUp);
    }

    /// <summary>log softmax(logits / T)[token] over the full row (T = 0 counts as 1, as in greedy decoding).</summary>
    public static double LogProb(ReadOnlySpan<float> logitsRow, double temperature, int token)
    {
        double t = temperature == 0 ? 1 : temperature;
        var z = new double[logitsRow.Length];
        for (int j = 0; j < z.Length; j++) z[j] = logitsRow[j] / t;
        return LogSoftmaxAt(z, token);
    }

    // z[token] − logsumexp(z), written as (z[token] − max) − log(ties + rest) with a series for
    // log1p: a nearly one-hot row has log-probs like −1e-23, which log(1 + rest) would round to 0.
    private static double LogSoftmaxAt(double[] z, int token)
    {
        double max = z.Max(), rest = 0;
        int ties = 0;
        foreach (double v in z)
        {
            if (v == max) ties++;
            else rest += Math.Exp(v - max);
        }
        double r = rest / ties;
        double log1p = r < 1e-4 ? r - r * r / 2 + r * r * r / 3 : Math.Log(1 + r);
        return (z[token] - max) - (Math.Log(ties) + log1p);
    }

    /// <summary>
    /// The kept set for scaled logits <paramref name="z"/>: top-k (ties at the k-th value kept),
    /// then top-p on the distribution renormalised over the top-k set (keep j iff the mass of
    /// strictly more probable tokens is below <paramref name="topP"/>), then min-p
    /// (keep p_j ≥ minP · p_max). 0, 1 and 0 turn the three filters off.
    /// </summary>
    public static bool[] KeptSet(double[] z, int topK, double topP, double minP)
    {
        int v = z.Length;
        var kept = new bool[v];
        Array.Fill(kept, true);
        var descending = Enumerable.Range(0, v).OrderByDescending(j => z[j]).ToArray();

        if (topK > 0 && topK < v)
        {
            double kth = z[descending[topK - 1]];
            for (int j = 0; j < v; j++) kept[j] = z[j] >= kth;
        }

        if (topP < 1)
        {
            double zmax = z[descending[0]];
            double mass = 0;
            for (int j = 0; j < v; j++) if (kept[j]) mass += Math.Exp(z[j] - zmax);
            // Walk groups of equal z from the top; a group is kept when the mass above it is < topP.
            double above = 0;
            int i = 0;
            while (i < v && kept[descending[i]])
            {
                int end = i;
                double groupMass = 0;
                while (end < v && z[descending[end]] == z[descending[i]])
                {
                    groupMass += Math.Exp(z[descending[end]] - zmax) / mass;
                    end++;
                }
                bool keepGroup = above < topP;
                for (int g = i; g < end; g++) kept[descending[g]] = keepGroup;
                above += groupMass;
                i = end;
            }
        }

        if (minP > 0)
        {
            double zmax = z[descending[0]];
            for (int j = 0; j < v; j++) if (Math.Exp(z[j] - zmax) < minP) kept[j] = false;
        }
        return kept;
    }

    /// <summary>
    /// The specification's uniform for (seed, row, step, column): three rounds of murmur3's fmix64,
    /// keyed by odd multiples of row + 1, step + 1 and column + 1, then 23 bits plus one half times 2^-23.
    /// </summary>
    public static double Uniform(ulong seed, int row, int step, int column)
    {
        ulong[] multipliers = [0x9E3779B97F4A7C15UL, 0xBF58476D1CE4E5B9UL, 0x94D049BB133111EBUL];
        long[] counters = [row, step, column];
        ulong h = seed;
        for (int round = 0; round < 3; round++)
        {
            h ^= unchecked(multipliers[round] * (ulong)(counters[round] + 1));
            h = Fmix64(h);
        }
        double bits23 = h / 2199023255552UL; // h >> 41, as an integer division by 2^41
        return (bits23 + 0.5) / 8388608.0;
    }

    private static ulong Fmix64(ulong k)
    {
        unchecked
        {
            k ^= k >> 33;
            k *= 0xff51afd7ed558ccdUL;
            k ^= k >> 33;
            k *= 0xc4ceb9fe1a85ec53UL;
            k ^= k >> 33;
            return k;
        }
    }
}

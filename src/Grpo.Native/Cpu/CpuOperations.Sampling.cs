using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <inheritdoc />
    public void SampleTokens(Tensor<float> logits /* (R, V) */, SamplingOptions options, ulong seed, int step,
        Tensor<int> tokens /* (R) */, Tensor<float> logprobs /* (R) */, int firstRow = 0)
    {
        var (rows, p) = SamplingValidation.Validate(logits, options, seed, step, tokens, logprobs, firstRow);
        CpuBuffer<float> x = Data(logits, nameof(logits)); // (R, V)
        CpuBuffer<int> outTokens = Data(tokens, nameof(tokens)); // (R)
        CpuBuffer<float> outLogprobs = Data(logprobs, nameof(logprobs)); // (R)
        int vocab = p.Vocab;
        int firstBadRow = int.MaxValue;

        // Each row is sampled start to finish by one thread, so the result cannot depend on the thread count.
        Parallel.For(0, rows, Device.Parallelism, () => SamplingScratch.ForThisThread(vocab), (row, _, scratch) =>
        {
            ReadOnlySpan<float> logitsRow = x.AsSpan(row * vocab, vocab); // (V)
            if (!SampleRow(logitsRow, row, p, scratch, out outTokens[row], out outLogprobs[row]))
                InterlockedMin(ref firstBadRow, row);
            return scratch;
        }, _ => { });

        if (firstBadRow != int.MaxValue)
        {
            ReadOnlySpan<float> bad = x.AsSpan(firstBadRow * vocab, vocab); // (V)
            int column = 0;
            while (column < vocab && float.IsFinite(bad[column] * p.InverseTemperature)) column++;
            throw new ArgumentException(
                $"'{nameof(logits)}' row {firstBadRow} has a non-finite value at column {column} ({bad[column]}, " +
                $"scaled by 1/T = {p.InverseTemperature}); logits must be finite: check the model output for NaN or overflow.",
                nameof(logits));
        }
    }

    // Larger than any float Gumbel value −ln(−ln u) (at most ln(2^24) ≈ 16.64, given how u is built), with margin for rounding.
    private const float GumbelCeiling = 17f;

    // Per-thread buffers, one row long, kept between calls so that sampling allocates nothing per call.
    private sealed class SamplingScratch(int vocab)
    {
        [ThreadStatic] private static SamplingScratch? _cached;

        public readonly float[] Scaled = new float[vocab]; // (V) z
        public readonly float[] Weights = new float[vocab]; // (V) exp(z − z_max)
        public readonly float[] Scores = new float[vocab]; // (V) Gumbel scores of the candidates
        public readonly int[] Candidates = new int[vocab]; // (V) their columns

        public static SamplingScratch ForThisThread(int vocab) =>
            _cached is { } cached && cached.Scaled.Length >= vocab ? cached : _cached = new SamplingScratch(vocab);
    }

    // Samples one row; false (and nothing written) when a scaled logit is not finite.
    private static bool SampleRow(ReadOnlySpan<float> logits /* (V) */, int row, in SamplingParameters p,
        SamplingScratch scratch, out int token, out float logprob)
    {
        int vocab = p.Vocab;
        ReadOnlySpan<float> z = logits; // (V)
        if (p.Greedy == 0)
        {
            var scaled = scratch.Scaled.AsSpan(0, vocab); // (V)
            TensorPrimitives.Multiply(logits, p.InverseTemperature, scaled);
            z = scaled;
        }
        token = 0;
        logprob = 0;
        // NaN propagates through MaxMagnitude and infinities dominate it: one pass checks the row.
        if (!float.IsFinite(TensorPrimitives.MaxMagnitude(z))) return false;

        float zmax = TensorPrimitives.Max(z);
        Span<float> w = scratch.Weights.AsSpan(0, vocab); // (V)
        TensorPrimitives.Subtract(z, zmax, w);
        TensorPrimitives.Exp(w, w);
        // The normaliser is over the FULL row (the returned log-prob is the trainer's, unfiltered),
        // split as ties + rest like the kernel does, to stay accurate for nearly one-hot rows.
        float logTotal = LogTies(CountAtLeast(z, zmax), Mass(z, w, zmax, below: true));

        if (p.Greedy != 0)
        {
            token = FirstEqual(z, zmax);
            logprob = (z[token] - zmax) - logTotal;
            return true;
        }

        float threshold = float.NegativeInfinity; // kept set: z >= threshold
        if (p.TopK > 0) threshold = KthLargest(z, p.TopK, zmax);
        if (p.TopP < 1f) threshold = NucleusThreshold(z, w, threshold, zmax, p.TopP);
        if (p.UseMinP != 0) threshold = MathF.Max(threshold, zmax + p.LogMinP);

        // Gumbel-max: score = z − ln(−ln u) over the kept set; the first maximum wins. The top token is
        // always kept, so its score bounds the winner's from below, and float Gumbel noise never exceeds
        // ln(2^24) ≈ 16.64: tokens below that bound minus GumbelCeiling cannot win, so they skip the hash
        // and both logs. The pruning is exact (same winner), and on peaked LLM rows it skips most tokens.
        ulong rowKey = CounterRng.RowKey(p.Seed, p.FirstRow + row, p.Step);
        int top = TensorPrimitives.IndexOfMax(z);
        float topScore = z[top] - MathF.Log(-MathF.Log(CounterRng.Uniform(rowKey, top)));
        float cut = MathF.Max(threshold, topScore - GumbelCeiling);
        int[] candidates = scratch.Candidates; // (n) column of each candidate, increasing
        float[] scores = scratch.Scores; // (n)
        int n = 0;
        for (int j = 0; j < vocab; j++)
        {
            if (z[j] < cut) continue;
            candidates[n] = j;
            scores[n++] = CounterRng.Uniform(rowKey, j);
        }
        var candidateScores = scores.AsSpan(0, n); // (n)
        TensorPrimitives.Log(candidateScores, candidateScores);
        TensorPrimitives.Negate(candidateScores, candidateScores);
        TensorPrimitives.Log(candidateScores, candidateScores);
        for (int i = 0; i < n; i++) candidateScores[i] = z[candidates[i]] - candidateScores[i];
        // Candidates are in column order, so the first maximum is the lowest column among equal scores.
        token = candidates[FirstEqual(candidateScores, TensorPrimitives.Max(candidateScores))];
        logprob = (z[token] - zmax) - logTotal;
        return true;
    }

    // The k-th largest z by bisection over the float bit pattern: the largest t with #{z >= t} >= k.
    // Stops early when exactly k values clear a candidate (the answer is then their minimum), as the kernel does.
    private static float KthLargest(ReadOnlySpan<float> z /* (V) */, int k, float zmax)
    {
        uint lo = OrderedFloatKeys.Of(float.NegativeInfinity), hi = OrderedFloatKeys.Of(zmax);
        while (lo < hi)
        {
            uint mid = OrderedFloatKeys.UpperMidpoint(lo, hi);
            float candidate = OrderedFloatKeys.ToFloat(mid);
            int count = CountAtLeast(z, candidate);
            if (count == k) return MinAtLeast(z, candidate);
            if (count > k) lo = mid;
            else hi = mid - 1;
        }
        return OrderedFloatKeys.ToFloat(lo);
    }

    // The largest z in [lowest, zmax] whose mass Σ_{z' >= z} w is still >= topP times the mass above
    // lowest: bisection over the bit pattern that snaps each bound to the nearest z on its side, as the kernel does.
    private static float NucleusThreshold(ReadOnlySpan<float> z /* (V) */, ReadOnlySpan<float> w /* (V) */,
        float lowest, float zmax, float topP)
    {
        float target = topP * Mass(z, w, lowest, below: false);
        float lo = lowest, hi = zmax;
        while (OrderedFloatKeys.Of(lo) < OrderedFloatKeys.Of(hi))
        {
            float candidate = OrderedFloatKeys.ToFloat(
                OrderedFloatKeys.UpperMidpoint(OrderedFloatKeys.Of(lo), OrderedFloatKeys.Of(hi)));
            var (mass, least, below) = Split(z, w, candidate);
            if (mass >= target) lo = least;
            else hi = below;
        }
        return lo;
    }

    // For a candidate threshold: Σ w over z >= candidate (in Mass's order), the least z >= candidate, the greatest z below it.
    private static (float Mass, float Least, float Below) Split(ReadOnlySpan<float> z /* (V) */,
        ReadOnlySpan<float> w /* (V) */, float candidate)
    {
        int j = 0;
        ref float zr = ref MemoryMarshal.GetReference(z);
        ref float wr = ref MemoryMarshal.GetReference(w);
        var t = Vector256.Create(candidate);
        var plusInfinity = Vector256.Create(float.PositiveInfinity);
        var minusInfinity = Vector256.Create(float.NegativeInfinity);
        var acc = Vector256<float>.Zero;
        var least = plusInfinity;
        var below = minusInfinity;
        for (; j <= z.Length - Vector256<float>.Count; j += Vector256<float>.Count)
        {
            var v = Vector256.LoadUnsafe(ref zr, (nuint)j);
            var atLeast = Vector256.GreaterThanOrEqual(v, t);
            acc += Vector256.LoadUnsafe(ref wr, (nuint)j) & atLeast;
            least = Vector256.Min(least, Vector256.ConditionalSelect(atLeast, v, plusInfinity));
            below = Vector256.Max(below, Vector256.ConditionalSelect(atLeast, minusInfinity, v));
        }
        float mass = Vector256.Sum(acc), leastValue = float.PositiveInfinity, belowValue = float.NegativeInfinity;
        for (int lane = 0; lane < Vector256<float>.Count; lane++)
        {
            leastValue = MathF.Min(leastValue, least[lane]);
            belowValue = MathF.Max(belowValue, below[lane]);
        }
        for (; j < z.Length; j++)
        {
            if (z[j] >= candidate)
            {
                mass += w[j];
                leastValue = MathF.Min(leastValue, z[j]);
            }
            else belowValue = MathF.Max(belowValue, z[j]);
        }
        return (mass, leastValue, belowValue);
    }

    // log(ties + rest) = log(ties) + log1p(rest / ties), log1p by Goldberg's exact-ratio trick (the kernel's twin).
    private static float LogTies(int ties, float rest)
    {
        float r = rest / ties, onePlus = 1f + r;
        return MathF.Log(ties) + (onePlus == 1f ? r : MathF.Log(onePlus) * r / (onePlus - 1f));
    }

    // min{z_j : z_j >= threshold}.
    private static float MinAtLeast(ReadOnlySpan<float> z /* (V) */, float threshold)
    {
        int j = 0;
        ref float zr = ref MemoryMarshal.GetReference(z);
        var t = Vector256.Create(threshold);
        var least = Vector256.Create(float.PositiveInfinity);
        for (; j <= z.Length - Vector256<float>.Count; j += Vector256<float>.Count)
        {
            var v = Vector256.LoadUnsafe(ref zr, (nuint)j);
            least = Vector256.Min(least, Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(v, t), v, Vector256.Create(float.PositiveInfinity)));
        }
        float result = float.PositiveInfinity;
        for (int lane = 0; lane < Vector256<float>.Count; lane++) result = MathF.Min(result, least[lane]);
        for (; j < z.Length; j++) if (z[j] >= threshold) result = MathF.Min(result, z[j]);
        return result;
    }

    // Number of z_j >= threshold.
    private static int CountAtLeast(ReadOnlySpan<float> z /* (V) */, float threshold)
    {
        int count = 0, j = 0;
        ref float zr = ref MemoryMarshal.GetReference(z);
        var t = Vector256.Create(threshold);
        for (; j <= z.Length - Vector256<float>.Count; j += Vector256<float>.Count)
        {
            var kept = Vector256.GreaterThanOrEqual(Vector256.LoadUnsafe(ref zr, (nuint)j), t);
            count += BitOperations.PopCount(kept.ExtractMostSignificantBits());
        }
        for (; j < z.Length; j++) if (z[j] >= threshold) count++;
        return count;
    }

    // Σ w_j over z_j >= threshold (or over z_j < threshold when below), in a fixed order (lanes,
    // then the tail) so the result is reproducible.
    private static float Mass(ReadOnlySpan<float> z /* (V) */, ReadOnlySpan<float> w /* (V) */, float threshold, bool below)
    {
        int j = 0;
        ref float zr = ref MemoryMarshal.GetReference(z);
        ref float wr = ref MemoryMarshal.GetReference(w);
        var t = Vector256.Create(threshold);
        var acc = Vector256<float>.Zero;
        for (; j <= z.Length - Vector256<float>.Count; j += Vector256<float>.Count)
        {
            var atLeast = Vector256.GreaterThanOrEqual(Vector256.LoadUnsafe(ref zr, (nuint)j), t);
            acc += Vector256.LoadUnsafe(ref wr, (nuint)j) & (below ? ~atLeast : atLeast);
        }
        float mass = Vector256.Sum(acc);
        for (; j < z.Length; j++) if ((z[j] >= threshold) != below) mass += w[j];
        return mass;
    }

    // The first j with values_j == target under IEEE equality (so −0 equals +0); target is in the span.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int FirstEqual(ReadOnlySpan<float> values /* (V) */, float target)
    {
        for (int j = 0; j < values.Length; j++) if (values[j] == target) return j;
        throw new InvalidOperationException("The maximum was not found in its own row.");
    }

    private static void InterlockedMin(ref int location, int value)
    {
        int current = Volatile.Read(ref location);
        while (value < current)
        {
            int seen = Interlocked.CompareExchange(ref location, value, current);
            if (seen == current) return;
            current = seen;
        }
    }
}

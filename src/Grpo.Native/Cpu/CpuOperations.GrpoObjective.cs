using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    public void GrpoObjectiveToDevice(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy, Tensor<float>? dEntropy, Tensor<float> scalars)
    {
        Guard.OnDevice(scalars, Device, nameof(scalars));
        Guard.Shape(scalars, nameof(scalars), ObjectiveScalars.Count);
        // Reading is free here, so the objective runs as GrpoObjective does (a bad input raises its error now) and its
        // result is written in the device layout.
        var result = GrpoObjective(logprobs, oldLogprobs, refLogprobs, advantages, mask, options, dLogprobs, entropy, dEntropy);
        ObjectiveScalars.Encode(result, Data(scalars, nameof(scalars)).AsSpan(0, ObjectiveScalars.Count));
    }

    public GrpoObjectiveResult GrpoObjective(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy = null, Tensor<float>? dEntropy = null)
    {
        var p = GrpoObjectiveValidation.Validate(Device, logprobs, oldLogprobs, refLogprobs, advantages, mask, options, dLogprobs, entropy, dEntropy);
        int n = p.Completions, t = p.Tokens;
        CpuBuffer<float> logp = Data(logprobs, nameof(logprobs));                                          // (N, T)
        // μ = 1: the old policy is the current one, detached, so ρ = exp(0) = 1 exactly.
        CpuBuffer<float> old = oldLogprobs is null ? logp : Data(oldLogprobs, nameof(oldLogprobs));       // (N, T)
        // β = 0: the reference is never read; any array of the right length stands in.
        CpuBuffer<float> reference = p.Beta > 0 ? Data(refLogprobs!, nameof(refLogprobs)) : logp;         // (N, T)
        CpuBuffer<float> adv = Data(advantages, nameof(advantages));                                      // (N)
        CpuBuffer<float> m = Data(mask, nameof(mask));                                                    // (N, T)
        CpuBuffer<float> grad = Data(dLogprobs, nameof(dLogprobs));                                       // (N, T)
        // No entropies given (no bonus, no mask, no metric): they are never read, nor dEntropy written.
        CpuBuffer<float> ent = entropy is not null ? Data(entropy, nameof(entropy)) : logp;               // (N, T)
        bool sumEntropy = entropy is not null;
        bool entropyBonus = p.EntropyCoefficient != 0;
        CpuBuffer<float> dEnt = entropyBonus ? Data(dEntropy!, nameof(dEntropy)) : grad;                  // (N, T)
        // TRL's entropy-mask threshold, found here on the host (reading is free); −∞ keeps every token.
        float threshold = p.MasksByEntropy != 0
            ? EntropyQuantile.Threshold(ent.AsSpan(0, n * t), m.AsSpan(0, n * t), t, GrpoObjectiveValidation.EntropyQuantileOf(options))
            : float.NegativeInfinity;

        // Pass 1, per row: token counts, mask check, GSPO's mean log-ratio. The batch token count
        // is needed before any gradient can be written (bnpo/dapo normalise by it).
        var rowTokens = new float[n];    // (N)
        var rowLogRatio = new float[n];  // (N)
        var rowBad = new int[n];         // (N)
        var rowKeptShare = new float[n]; // (N) share of the row's tokens the entropy mask keeps
        var rowEntropy = new double[n];  // (N) Σ m·entropy, for the entropy metric
        Parallel.For(0, n, Device.Parallelism, i =>
        {
            float tokens = 0, logRatio = 0, kept = 0;
            double entropySum = 0;
            int bad = 0;
            for (int c = i * t; c < (i + 1) * t; c++)
            {
                if (m[c] == 1f)
                {
                    tokens += 1f;
                    if (p.SequenceLevel != 0) logRatio += logp[c] - old[c];
                    kept += ObjectiveMath.EntropyMask(threshold, p.ReadsEntropy ? ent[c] : 0f);
                    if (sumEntropy) entropySum += ent[c];
                }
                else if (m[c] != 0f) bad++;
            }
            rowEntropy[i] = entropySum;
            rowTokens[i] = tokens;
            rowLogRatio[i] = logRatio / MathF.Max(tokens, 1f);
            rowBad[i] = bad;
            rowKeptShare[i] = kept / MathF.Max(tokens, 1f);
        });
        float totalTokens = 0;
        double totalEntropy = 0;
        long totalBad = 0;
        int firstBad = -1;
        for (int i = 0; i < n; i++)
        {
            totalTokens += rowTokens[i];
            totalEntropy += rowEntropy[i];
            totalBad += rowBad[i];
            if (rowBad[i] > 0 && firstBad < 0) firstBad = i;
        }
        if (totalBad > 0) throw GrpoObjectiveValidation.BadMask(totalBad, firstBad);

        // Pass 2, per row: ratios and KL exponentials vectorised over the row, then the variant's
        // per-token term (ObjectiveMath) token by token. Row sums in double, one row of
        // ObjectiveKernels' columns per completion; the batch sums below run in row order.
        const int columns = ObjectiveKernels.RowTermColumns;
        var rowSums = new double[n * columns];   // (N, RowTermColumns)
        bool policyExponential = ObjectiveMath.NeedsPolicyExponential(p);
        Parallel.For(0, n, Device.Parallelism, () => new float[2 * t], (i, _, scratch) =>
        {
            var rho = scratch.AsSpan(0, t);       // (T) ratios (token level)
            var expKl = scratch.AsSpan(t, t);     // (T) exp(ref − logp)
            var row = new Range(i * t, (i + 1) * t);
            ReadOnlySpan<float> logpRow = logp.AsSpan(row), maskRow = m.AsSpan(row);
            if (p.SequenceLevel == 0)
            {
                TensorPrimitives.Subtract(logpRow, old.AsSpan(row), rho);
                TensorPrimitives.Exp(rho, rho);
            }
            else rho.Fill(MathF.Exp(rowLogRatio[i]));
            ReadOnlySpan<float> refRow = reference.AsSpan(row);
            if (p.Beta > 0)
            {
                TensorPrimitives.Subtract(refRow, logpRow, expKl);
                TensorPrimitives.Exp(expKl, expKl);
            }

            float weight = ObjectiveMath.RowWeight(p.LossType, rowTokens[i], totalTokens, n, p.MaxCompletionLength);
            float advantage = adv[i];
            var gradRow = grad.AsSpan(row);
            var sums = rowSums.AsSpan(i * columns, columns);
            for (int c = 0; c < t; c++)
            {
                if (maskRow[c] != 1f)
                {
                    gradRow[c] = 0f;
                    if (entropyBonus) dEnt[i * t + c] = 0f;
                    continue;
                }
                // At sequence level dρ/dlogp_c = ρ m_c / |o_i|, and the row's |o_i| tokens each pass
                // c_i · dℓ/dρ, so token c gets c_i · dℓ/dρ · ρ: the token-level formula.
                float d = p.Beta > 0 ? refRow[c] - logpRow[c] : 0f;
                float gate = policyExponential ? MathF.Exp(ObjectiveMath.PolicyExponent(p, rho[c], advantage)) : 1f;
                var term = ObjectiveMath.Token(p, rho[c], advantage, logpRow[c], d, p.Beta > 0 ? expKl[c] : 1f, gate,
                    p.ReadsEntropy ? ent[i * t + c] : 0f, threshold, rowKeptShare[i]);
                gradRow[c] = weight * term.DLossDLogp;
                if (entropyBonus) dEnt[i * t + c] = weight * term.DLossDEntropy;
                sums[ObjectiveKernels.RowLoss] += term.Loss;
                sums[ObjectiveKernels.RowKl] += term.Kl;
                if (p.SequenceLevel == 0) AddFlags(sums, term.ClippedLow, term.ClippedHigh, term.DualClipped, term.CispoClipped);
            }
            if (p.SequenceLevel != 0)
            {
                // GSPO: one ratio per completion, so TRL's metrics count completions (even an empty one, whose ρ is 1).
                var flags = ObjectiveMath.SequenceFlags(p, MathF.Exp(rowLogRatio[i]), advantage);
                AddFlags(sums, flags.ClippedLow, flags.ClippedHigh, flags.DualClipped, flags.CispoClipped);
            }
            return scratch;
        }, _ => { });

        double totalLoss = 0;
        var totals = new double[columns];
        for (int i = 0; i < n; i++)
        {
            totalLoss += ObjectiveMath.RowWeight(p.LossType, rowTokens[i], totalTokens, n, p.MaxCompletionLength) * rowSums[i * columns + ObjectiveKernels.RowLoss];
            for (int column = 0; column < columns; column++) totals[column] += rowSums[i * columns + column];
        }
        // Token level: fractions of the tokens. Sequence level: the clip metrics are fractions of the completions
        // (TRL's masked_batch_mean takes a plain mean when the ratio has one column); the KL stays per token.
        double tokenDenominator = Math.Max(totalTokens, 1f);
        double denominator = p.SequenceLevel != 0 ? n : tokenDenominator;
        float Mean(int column) => (float)(totals[column] / denominator);
        return new GrpoObjectiveResult((float)totalLoss, Mean(ObjectiveKernels.RowLow), Mean(ObjectiveKernels.RowHigh),
            (float)((totals[ObjectiveKernels.RowLow] + totals[ObjectiveKernels.RowHigh]) / denominator),
            (float)(totals[ObjectiveKernels.RowKl] / tokenDenominator), Mean(ObjectiveKernels.RowDual), Mean(ObjectiveKernels.RowCispo),
            sumEntropy ? (float)(totalEntropy / tokenDenominator) : float.NaN);
    }

    private static void AddFlags(Span<double> sums, float low, float high, float dual, float cispo)
    {
        sums[ObjectiveKernels.RowLow] += low;
        sums[ObjectiveKernels.RowHigh] += high;
        sums[ObjectiveKernels.RowDual] += dual;
        sums[ObjectiveKernels.RowCispo] += cispo;
    }
}

using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    public GrpoObjectiveResult GrpoObjective(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs)
    {
        var p = GrpoObjectiveValidation.Validate(Device, logprobs, oldLogprobs, refLogprobs, advantages, mask, options, dLogprobs);
        int n = p.Completions, t = p.Tokens;
        CpuBuffer<float> logp = Data(logprobs, nameof(logprobs));                                          // (N, T)
        // μ = 1: the old policy is the current one, detached, so ρ = exp(0) = 1 exactly.
        CpuBuffer<float> old = oldLogprobs is null ? logp : Data(oldLogprobs, nameof(oldLogprobs));       // (N, T)
        // β = 0: the reference is never read; any array of the right length stands in.
        CpuBuffer<float> reference = p.Beta > 0 ? Data(refLogprobs!, nameof(refLogprobs)) : logp;         // (N, T)
        CpuBuffer<float> adv = Data(advantages, nameof(advantages));                                      // (N)
        CpuBuffer<float> m = Data(mask, nameof(mask));                                                    // (N, T)
        CpuBuffer<float> grad = Data(dLogprobs, nameof(dLogprobs));                                       // (N, T)

        // Pass 1, per row: token counts, mask check, GSPO's mean log-ratio. The batch token count
        // is needed before any gradient can be written (bnpo/dapo normalise by it).
        var rowTokens = new float[n];    // (N)
        var rowLogRatio = new float[n];  // (N)
        var rowBad = new int[n];         // (N)
        Parallel.For(0, n, Device.Parallelism, i =>
        {
            float tokens = 0, logRatio = 0;
            int bad = 0;
            for (int c = i * t; c < (i + 1) * t; c++)
            {
                if (m[c] == 1f)
                {
                    tokens += 1f;
                    if (p.SequenceLevel != 0) logRatio += logp[c] - old[c];
                }
                else if (m[c] != 0f) bad++;
            }
            rowTokens[i] = tokens;
            rowLogRatio[i] = logRatio / MathF.Max(tokens, 1f);
            rowBad[i] = bad;
        });
        float totalTokens = 0;
        long totalBad = 0;
        int firstBad = -1;
        for (int i = 0; i < n; i++)
        {
            totalTokens += rowTokens[i];
            totalBad += rowBad[i];
            if (rowBad[i] > 0 && firstBad < 0) firstBad = i;
        }
        if (totalBad > 0) throw GrpoObjectiveValidation.BadMask(totalBad, firstBad);

        // Pass 2, per row: ratios and KL exponentials vectorised over the row, then the clipped
        // surrogate token by token. Row sums in double; the batch sums below run in row order.
        var rowLoss = new double[n];   // (N)
        var rowLow = new double[n];    // (N)
        var rowHigh = new double[n];   // (N)
        var rowKl = new double[n];     // (N)
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
            double loss = 0, low = 0, high = 0, kl = 0;
            for (int c = 0; c < t; c++)
            {
                if (maskRow[c] != 1f)
                {
                    gradRow[c] = 0f;
                    continue;
                }
                // At sequence level dρ/dlogp_c = ρ m_c / |o_i|, and the row's |o_i| tokens each pass
                // c_i · dℓ/dρ, so token c gets c_i · dℓ/dρ · ρ: the token-level formula.
                float d = p.Beta > 0 ? refRow[c] - logpRow[c] : 0f;
                var term = ObjectiveMath.Token(rho[c], advantage, p.Lower, p.Upper, p.Beta, d, p.Beta > 0 ? expKl[c] : 1f);
                gradRow[c] = weight * term.DLossDLogp;
                loss += term.Loss;
                kl += term.Kl;
                low += term.ClippedLow;
                high += term.ClippedHigh;
            }
            rowLoss[i] = loss;
            rowLow[i] = low;
            rowHigh[i] = high;
            rowKl[i] = kl;
            return scratch;
        }, _ => { });

        double totalLoss = 0, totalLow = 0, totalHigh = 0, totalKl = 0;
        for (int i = 0; i < n; i++)
        {
            totalLoss += ObjectiveMath.RowWeight(p.LossType, rowTokens[i], totalTokens, n, p.MaxCompletionLength) * rowLoss[i];
            totalLow += rowLow[i];
            totalHigh += rowHigh[i];
            totalKl += rowKl[i];
        }
        double denominator = Math.Max(totalTokens, 1f);
        return new GrpoObjectiveResult((float)totalLoss, (float)(totalLow / denominator), (float)(totalHigh / denominator),
            (float)((totalLow + totalHigh) / denominator), (float)(totalKl / denominator));
    }
}

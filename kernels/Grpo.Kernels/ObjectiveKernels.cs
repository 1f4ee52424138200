using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>The scalar arguments of the objective kernels.</summary>
/// <param name="Completions">N.</param>
/// <param name="Tokens">T.</param>
/// <param name="LossType">The <c>LossType</c> enum value: 0 grpo, 1 bnpo, 2 dapo, 3 dr_grpo.</param>
/// <param name="SequenceLevel">1 for GSPO's sequence-level ratio, 0 for token-level ratios.</param>
/// <param name="Lower">1 − ε_low.</param>
/// <param name="Upper">1 + ε_high.</param>
/// <param name="Beta">β; 0 means the reference log-probs are never read.</param>
/// <param name="MaxCompletionLength">The dr_grpo normaliser's length.</param>
public readonly record struct ObjectiveParameters(
    int Completions, int Tokens, int LossType, int SequenceLevel, float Lower, float Upper, float Beta, int MaxCompletionLength);

/// <summary>The clipped surrogate of one token (see <see cref="ObjectiveMath.Clipped"/>).</summary>
/// <param name="Loss">−min(ρA, clamp(ρ, lower, upper)·A).</param>
/// <param name="DLossDRho">Its derivative in ρ as PyTorch computes it: −A, or 0 where the clamp is active.</param>
/// <param name="ClippedLow">1 when ρ &lt; lower and A &lt; 0, else 0.</param>
/// <param name="ClippedHigh">1 when ρ &gt; upper and A &gt; 0, else 0.</param>
public readonly record struct ClippedTerm(float Loss, float DLossDRho, float ClippedLow, float ClippedHigh);

/// <summary>One token's share of the objective (see <see cref="ObjectiveMath.Token"/>), before the aggregation weight.</summary>
/// <param name="Loss">ℓ_t = −min(ρA, clamp(ρ)·A) + β·KL_t.</param>
/// <param name="DLossDLogp">dℓ_t/dlogp_t through ρ (token level; at sequence level the same value is each token's share) and the KL.</param>
/// <param name="Kl">KL_t (0 when β = 0).</param>
/// <param name="ClippedLow">1 when clipped below, else 0.</param>
/// <param name="ClippedHigh">1 when clipped above, else 0.</param>
public readonly record struct TokenTerm(float Loss, float DLossDLogp, float Kl, float ClippedLow, float ClippedHigh);

/// <summary>
/// The per-token arithmetic of the GRPO objective, shared by the ILGPU kernels and the managed CPU
/// backend so that both apply exactly the same clipping rule. No transcendental functions here:
/// each backend computes its own exponentials.
/// </summary>
public static class ObjectiveMath
{
    /// <summary>
    /// −min(ρA, clamp(ρ, lower, upper)·A) and its gradient in ρ. PyTorch splits a tie of min
    /// evenly and gives clamp gradient 1 on the closed interval, so the gradient is −A everywhere
    /// except where the clamped branch is the strict minimum: A &gt; 0 and ρ &gt; upper, or A &lt; 0
    /// and ρ &lt; lower. Those are exactly the clipped tokens the metrics count.
    /// </summary>
    public static ClippedTerm Clipped(float rho, float advantage, float lower, float upper)
    {
        float clamped = rho < lower ? lower : rho > upper ? upper : rho;
        float unclippedTerm = rho * advantage, clippedTerm = clamped * advantage;
        float loss = -(unclippedTerm < clippedTerm ? unclippedTerm : clippedTerm);
        bool low = rho < lower && advantage < 0;
        bool high = rho > upper && advantage > 0;
        return new ClippedTerm(loss, low || high ? 0f : -advantage, low ? 1f : 0f, high ? 1f : 0f);
    }

    /// <summary>
    /// One token's loss, gradient in logp, KL and clip flags: the clipped surrogate through ρ
    /// (dρ/dlogp = ρ) plus β·KL with dKL/dlogp = 1 − e. <paramref name="d"/> = ref − logp and
    /// <paramref name="e"/> = exp(d) are only used when β &gt; 0 (pass 0 and 1 otherwise), so the
    /// reference log-probs need not be read at all when β = 0.
    /// </summary>
    public static TokenTerm Token(float rho, float advantage, float lower, float upper, float beta, float d, float e)
    {
        var clipped = Clipped(rho, advantage, lower, upper);
        float loss = clipped.Loss, gradient = clipped.DLossDRho * rho, kl = 0f;
        if (beta > 0f)
        {
            kl = Kl(d, e);
            loss += beta * kl;
            gradient -= beta * (d + kl); // β dKL/dlogp = β (1 − e) = −β (d + KL)
        }
        return new TokenTerm(loss, gradient, kl, clipped.ClippedLow, clipped.ClippedHigh);
    }

    /// <summary>
    /// The k3 KL estimator exp(d) − d − 1 for d = ref − logp, given e = exp(d). Near d = 0 the
    /// subtraction cancels (at d = 0.02 fp32 keeps only three digits), so for |d| &lt; 0.5 the
    /// Taylor series Σ_{k≥2} d^k / k! is summed instead (truncation below 4e-8 relative).
    /// Its gradient in logp is 1 − e = −(d + KL), which this form also keeps accurate.
    /// </summary>
    public static float Kl(float d, float e)
    {
        if (d > -0.5f && d < 0.5f)
            return d * d * (1f / 2 + d * (1f / 6 + d * (1f / 24 + d * (1f / 120 + d * (1f / 720 + d * (1f / 5040 + d * (1f / 40320)))))));
        return e - d - 1f;
    }

    /// <summary>
    /// The weight c_i of completion i's masked token-loss sum in the aggregated loss:
    /// loss = Σ_i c_i Σ_t ℓ_{i,t} m_{i,t}, so d loss / d ℓ_{i,t} = c_i m_{i,t}.
    /// </summary>
    /// <param name="lossType">0 grpo, 1 bnpo, 2 dapo, 3 dr_grpo.</param>
    /// <param name="rowTokens">|o_i| = Σ_t m_{i,t}.</param>
    /// <param name="totalTokens">Σ m over the batch.</param>
    /// <param name="completions">N.</param>
    /// <param name="maxCompletionLength">The dr_grpo length.</param>
    public static float RowWeight(int lossType, float rowTokens, float totalTokens, int completions, int maxCompletionLength)
    {
        if (lossType == 0) return 1f / ((rowTokens > 1f ? rowTokens : 1f) * completions);
        if (lossType == 3) return 1f / ((float)completions * maxCompletionLength);
        return 1f / (totalTokens > 1f ? totalTokens : 1f);
    }
}

/// <summary>
/// The GRPO objective on the ILGPU backend, in four launches with deterministic reductions:
/// per-row token counts (and GSPO log-ratio means), batch totals, per-token loss and gradient with
/// per-row sums, and the final scalars.
/// </summary>
public static class ObjectiveKernels
{
    /// <summary>Columns of the per-row statistics written by <see cref="RowPrepare"/>.</summary>
    public const int RowTokens = 0, RowLogRatio = 1, RowBadMask = 2, RowPrepareColumns = 3;

    /// <summary>Columns of the per-row sums written by <see cref="TokenTerms"/>.</summary>
    public const int RowLoss = 0, RowLow = 1, RowHigh = 2, RowKl = 3, RowTermColumns = 4;

    /// <summary>Slots of the scalar buffer: batch totals (from <see cref="Totals"/>) then the results (from <see cref="Finish"/>).</summary>
    public const int TotalTokens = 0, TotalBadMask = 1, FirstBadRow = 2,
        ResultLoss = 3, ResultLow = 4, ResultHigh = 5, ResultRegion = 6, ResultKl = 7, ScalarCount = 8;

    /// <summary>
    /// One group per completion: |o_i| = Σ_t m_t, the number of mask values that are neither 0 nor 1,
    /// and (sequence level only) the masked mean of logp − old. Padding values are not read.
    /// </summary>
    /// <param name="logprobs">(N, T) current log-probs.</param>
    /// <param name="oldLogprobs">(N, T) old log-probs (the current ones again when μ = 1).</param>
    /// <param name="mask">(N, T) 1 = completion token, 0 = padding.</param>
    /// <param name="p">The scalar arguments.</param>
    /// <param name="rowStats">(N, RowPrepareColumns) output.</param>
    public static void RowPrepare(
        ArrayView<float> logprobs, ArrayView<float> oldLogprobs, ArrayView<float> mask, ObjectiveParameters p,
        ArrayView<float> rowStats)
    {
        int row = Grid.IdxX, t = p.Tokens;
        float tokens = 0, bad = 0, logRatio = 0;
        for (int c = Group.IdxX; c < t; c += Group.DimX)
        {
            int k = row * t + c;
            float m = mask[k];
            if (m == 1f)
            {
                tokens += 1f;
                if (p.SequenceLevel != 0) logRatio += logprobs[k] - oldLogprobs[k];
            }
            else if (m != 0f) bad += 1f;
        }
        tokens = GroupReduce.Sum(tokens);
        bad = GroupReduce.Sum(bad);
        logRatio = GroupReduce.Sum(logRatio);
        if (Group.IdxX == 0)
        {
            rowStats[row * RowPrepareColumns + RowTokens] = tokens;
            rowStats[row * RowPrepareColumns + RowLogRatio] = logRatio / (tokens > 1f ? tokens : 1f);
            rowStats[row * RowPrepareColumns + RowBadMask] = bad;
        }
    }

    /// <summary>Launched as one group: total tokens, total bad mask values and the first row holding one.</summary>
    /// <param name="rowStats">(N, RowPrepareColumns) from <see cref="RowPrepare"/>.</param>
    /// <param name="completions">N.</param>
    /// <param name="scalars">(ScalarCount) output slots <see cref="TotalTokens"/> .. <see cref="FirstBadRow"/>.</param>
    public static void Totals(ArrayView<float> rowStats, int completions, ArrayView<float> scalars)
    {
        float tokens = 0, bad = 0, negFirstBad = float.NegativeInfinity;
        for (int row = Group.IdxX; row < completions; row += Group.DimX)
        {
            tokens += rowStats[row * RowPrepareColumns + RowTokens];
            float rowBad = rowStats[row * RowPrepareColumns + RowBadMask];
            bad += rowBad;
            if (rowBad > 0f) negFirstBad = XMath.Max(negFirstBad, -row);
        }
        tokens = GroupReduce.Sum(tokens);
        bad = GroupReduce.Sum(bad);
        negFirstBad = GroupReduce.Max(negFirstBad);
        if (Group.IdxX == 0)
        {
            scalars[TotalTokens] = tokens;
            scalars[TotalBadMask] = bad;
            scalars[FirstBadRow] = -negFirstBad;
        }
    }

    /// <summary>
    /// One group per completion: for each masked token the loss ℓ_t and d loss / d logp_t =
    /// c_i (dℓ/dρ · ρ + β (1 − exp(ref − logp))), written to <paramref name="dLogprobs"/> (0 at
    /// padding); then the row's sums of ℓ, clipped-low, clipped-high and KL. At sequence level ρ is
    /// the row's ratio and dρ/dlogp_t = ρ m_t / |o_i|; summed over the row's |o_i| tokens, each with
    /// weight c_i, that gives the same c_i · dℓ/dρ · ρ per token.
    /// </summary>
    /// <param name="logprobs">(N, T) current log-probs.</param>
    /// <param name="oldLogprobs">(N, T) old log-probs.</param>
    /// <param name="refLogprobs">(N, T) reference log-probs; read only when β &gt; 0.</param>
    /// <param name="advantages">(N) advantages.</param>
    /// <param name="mask">(N, T) 1 = completion token.</param>
    /// <param name="rowStats">(N, RowPrepareColumns) from <see cref="RowPrepare"/>.</param>
    /// <param name="scalars">(ScalarCount) holding the batch totals.</param>
    /// <param name="p">The scalar arguments.</param>
    /// <param name="dLogprobs">(N, T) output gradient, overwritten.</param>
    /// <param name="rowTerms">(N, RowTermColumns) output row sums.</param>
    public static void TokenTerms(
        ArrayView<float> logprobs, ArrayView<float> oldLogprobs, ArrayView<float> refLogprobs, ArrayView<float> advantages,
        ArrayView<float> mask, ArrayView<float> rowStats, ArrayView<float> scalars, ObjectiveParameters p,
        ArrayView<float> dLogprobs, ArrayView<float> rowTerms)
    {
        int row = Grid.IdxX, t = p.Tokens;
        float rowTokens = rowStats[row * RowPrepareColumns + RowTokens];
        float weight = ObjectiveMath.RowWeight(p.LossType, rowTokens, scalars[TotalTokens], p.Completions, p.MaxCompletionLength);
        float advantage = advantages[row];
        float sequenceRho = XMath.Exp(rowStats[row * RowPrepareColumns + RowLogRatio]);
        float loss = 0, low = 0, high = 0, kl = 0;
        for (int c = Group.IdxX; c < t; c += Group.DimX)
        {
            int k = row * t + c;
            if (mask[k] != 1f)
            {
                dLogprobs[k] = 0f;
                continue;
            }
            float logp = logprobs[k];
            float rho = p.SequenceLevel != 0 ? sequenceRho : XMath.Exp(logp - oldLogprobs[k]);
            float d = p.Beta > 0f ? refLogprobs[k] - logp : 0f;
            var term = ObjectiveMath.Token(rho, advantage, p.Lower, p.Upper, p.Beta, d, p.Beta > 0f ? XMath.Exp(d) : 1f);
            dLogprobs[k] = weight * term.DLossDLogp;
            loss += term.Loss;
            kl += term.Kl;
            low += term.ClippedLow;
            high += term.ClippedHigh;
        }
        loss = GroupReduce.Sum(loss);
        low = GroupReduce.Sum(low);
        high = GroupReduce.Sum(high);
        kl = GroupReduce.Sum(kl);
        if (Group.IdxX == 0)
        {
            rowTerms[row * RowTermColumns + RowLoss] = loss;
            rowTerms[row * RowTermColumns + RowLow] = low;
            rowTerms[row * RowTermColumns + RowHigh] = high;
            rowTerms[row * RowTermColumns + RowKl] = kl;
        }
    }

    /// <summary>
    /// Launched as one group: loss = Σ_i c_i · rowLoss_i, and the masked-mean metrics
    /// (sums over the batch divided by max(Σ m, 1)). Writes slots <see cref="ResultLoss"/> .. <see cref="ResultKl"/>.
    /// </summary>
    /// <param name="rowStats">(N, RowPrepareColumns) from <see cref="RowPrepare"/>.</param>
    /// <param name="rowTerms">(N, RowTermColumns) from <see cref="TokenTerms"/>.</param>
    /// <param name="p">The scalar arguments.</param>
    /// <param name="scalars">(ScalarCount) totals in, results out.</param>
    public static void Finish(ArrayView<float> rowStats, ArrayView<float> rowTerms, ObjectiveParameters p, ArrayView<float> scalars)
    {
        float totalTokens = scalars[TotalTokens];
        float loss = 0, low = 0, high = 0, kl = 0;
        for (int row = Group.IdxX; row < p.Completions; row += Group.DimX)
        {
            float weight = ObjectiveMath.RowWeight(
                p.LossType, rowStats[row * RowPrepareColumns + RowTokens], totalTokens, p.Completions, p.MaxCompletionLength);
            loss += weight * rowTerms[row * RowTermColumns + RowLoss];
            low += rowTerms[row * RowTermColumns + RowLow];
            high += rowTerms[row * RowTermColumns + RowHigh];
            kl += rowTerms[row * RowTermColumns + RowKl];
        }
        loss = GroupReduce.Sum(loss);
        low = GroupReduce.Sum(low);
        high = GroupReduce.Sum(high);
        kl = GroupReduce.Sum(kl);
        if (Group.IdxX == 0)
        {
            float denominator = totalTokens > 1f ? totalTokens : 1f;
            scalars[ResultLoss] = loss;
            scalars[ResultLow] = low / denominator;
            scalars[ResultHigh] = high / denominator;
            scalars[ResultRegion] = (low + high) / denominator;
            scalars[ResultKl] = kl / denominator;
        }
    }
}

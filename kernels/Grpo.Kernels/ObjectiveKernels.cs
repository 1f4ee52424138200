using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>The scalar arguments of the objective kernels.</summary>
/// <param name="Completions">N.</param>
/// <param name="Tokens">T.</param>
/// <param name="LossType">Which per-token loss and aggregation: <see cref="ObjectiveMath.Grpo"/> .. <see cref="ObjectiveMath.Sapo"/>.</param>
/// <param name="SequenceLevel">1 for GSPO's sequence-level ratio, 0 for token-level ratios.</param>
/// <param name="Lower">1 − ε_low.</param>
/// <param name="Upper">1 + ε_high.</param>
/// <param name="Beta">β; 0 means the reference log-probs are never read.</param>
/// <param name="MaxCompletionLength">The dr_grpo normaliser's length.</param>
/// <param name="CispoBound">ε_high itself: TRL caps CISPO's weight at <c>epsilon_high</c>, not at 1 + ε_high.</param>
/// <param name="Delta">The two-sided clipping cap δ on the unclipped ratio; +∞ when off.</param>
/// <param name="DualClip">verl's dual-clip constant c (&gt; 1) for negative advantages; +∞ when off.</param>
/// <param name="SapoTemperaturePositive">SAPO's τ for A &gt; 0.</param>
/// <param name="SapoTemperatureNegative">SAPO's τ for A ≤ 0.</param>
/// <param name="KlEstimator"><see cref="ObjectiveMath.K1"/>, <see cref="ObjectiveMath.K2"/> or <see cref="ObjectiveMath.K3"/>.</param>
/// <param name="EntropyCoefficient">verl's <c>entropy_coeff</c>: ℓ_t −= c·H_t; 0 means the entropies are not read for the bonus.</param>
/// <param name="MasksByEntropy">1 for TRL's entropy mask (top_entropy_quantile &lt; 1): the policy term counts only where H_t reaches
/// the micro-batch's threshold (<see cref="ObjectiveKernels.EntropyThreshold"/>); 0 when off (then the entropies are not read for it).</param>
public readonly record struct ObjectiveParameters(
    int Completions, int Tokens, int LossType, int SequenceLevel, float Lower, float Upper, float Beta, int MaxCompletionLength,
    float CispoBound, float Delta, float DualClip, float SapoTemperaturePositive, float SapoTemperatureNegative, int KlEstimator,
    float EntropyCoefficient, int MasksByEntropy)
{
    /// <summary>Whether the kernels read the (N, T) entropies: for the bonus or for the mask.</summary>
    public bool ReadsEntropy => EntropyCoefficient != 0f || MasksByEntropy != 0;
}

/// <summary>One token's policy-loss term (before the KL penalty and the aggregation weight), as a function of ρ and logp.</summary>
/// <param name="Loss">The variant's per-token loss.</param>
/// <param name="DLossDRho">Its derivative in ρ as PyTorch's autograd computes it (0 where ρ is detached or the branch is clipped).</param>
/// <param name="DLossDLogp">Its derivative in logp other than through ρ (CISPO's −w·A; 0 for the others).</param>
/// <param name="ClippedLow">1 when TRL counts the token in <c>clip_ratio/low_mean</c>, else 0.</param>
/// <param name="ClippedHigh">1 when TRL counts the token in <c>clip_ratio/high_mean</c>, else 0.</param>
/// <param name="DualClipped">1 when verl counts the token in <c>pg_clipfrac_lower</c> (the dual clip decides its loss), else 0.</param>
/// <param name="CispoClipped">1 when TRL counts the token in <c>cispo_clip_ratio</c>, else 0.</param>
public readonly record struct PolicyTerm(
    float Loss, float DLossDRho, float DLossDLogp, float ClippedLow, float ClippedHigh, float DualClipped, float CispoClipped);

/// <summary>One token's share of the objective (see <see cref="ObjectiveMath.Token"/>), before the aggregation weight.</summary>
/// <param name="Loss">ℓ_t = the policy term (times the entropy mask) + β·KL_t − c·H_t.</param>
/// <param name="DLossDLogp">dℓ_t/dlogp_t through ρ (token level; at sequence level the same value is each token's share), directly, and through the KL.</param>
/// <param name="Kl">KL_t by the chosen estimator (0 when β = 0).</param>
/// <param name="ClippedLow">1 when clipped below, else 0.</param>
/// <param name="ClippedHigh">1 when clipped above, else 0.</param>
/// <param name="DualClipped">1 when the dual clip decides the loss, else 0.</param>
/// <param name="CispoClipped">1 when CISPO's weight is capped and A &gt; 0, else 0.</param>
/// <param name="DLossDEntropy">dℓ_t/dH_t = −c, the entropy bonus's gradient (H_t's own gradient in the logits is the gather backward's).</param>
public readonly record struct TokenTerm(
    float Loss, float DLossDLogp, float Kl, float ClippedLow, float ClippedHigh, float DualClipped, float CispoClipped, float DLossDEntropy);

/// <summary>
/// The per-token arithmetic of the GRPO objective, shared by the ILGPU kernels and the managed CPU
/// backend so that both apply exactly the same rules. Each policy-loss variant and each KL estimator
/// is one small function below, chosen by the id in <see cref="ObjectiveParameters"/>: a new variant
/// is a new function and a new case in <see cref="Policy"/> (and <see cref="RowWeight"/> for its
/// aggregation). No transcendental functions here: each backend computes its own exponentials —
/// exp(logp − old) for ρ, exp(ref − logp) for k3, and exp(<see cref="PolicyExponent"/>) when a
/// variant asks for one (<see cref="NeedsPolicyExponential"/>) — and passes them in.
/// </summary>
public static class ObjectiveMath
{
    /// <summary>Loss-type ids (<see cref="ObjectiveParameters.LossType"/>).</summary>
    public const int Grpo = 0, Bnpo = 1, Dapo = 2, DrGrpo = 3, Cispo = 4, Sapo = 5;

    /// <summary>KL-estimator ids (<see cref="ObjectiveParameters.KlEstimator"/>).</summary>
    public const int K1 = 0, K2 = 1, K3 = 2;

    /// <summary>
    /// One token's loss, gradient in logp, KL and metric flags: the variant's policy term (through ρ,
    /// dρ/dlogp = ρ, and directly) plus β·KL. <paramref name="d"/> = ref − logp and <paramref name="e"/> =
    /// exp(d) are only used when β &gt; 0 (pass 0 and 1 otherwise), so the reference log-probs need not
    /// be read at all when β = 0. <paramref name="policyExponential"/> is exp(<see cref="PolicyExponent"/>)
    /// when <see cref="NeedsPolicyExponential"/>, else anything (1).
    /// </summary>
    /// <para>
    /// <paramref name="entropy"/> = H_t, the entropy of the policy's distribution at the token (read only when
    /// <see cref="ObjectiveParameters.ReadsEntropy"/>): TRL's entropy mask zeroes the policy term (not the KL, and
    /// not the clip metrics, as TRL) where H_t &lt; <paramref name="entropyThreshold"/> (−∞ when off), and verl's
    /// entropy bonus adds −c·H_t, aggregated with the same weight as the rest (verl:
    /// <c>policy_loss = pg_loss - entropy_coeff * agg_loss(entropy, ...)</c>).
    /// </para>
    /// <para>
    /// <paramref name="rowKeptShare"/> is the fraction of the completion's tokens the entropy mask keeps (1 when it
    /// is off). At sequence level every token's log-prob moves the row's one ratio, which only the kept tokens'
    /// terms use, so the gradient through ρ that each token receives is that share of the unmasked one.
    /// </para>
    public static TokenTerm Token(ObjectiveParameters p, float rho, float advantage, float logp, float d, float e, float policyExponential,
        float entropy, float entropyThreshold, float rowKeptShare)
    {
        var policy = Policy(p, rho, advantage, logp, policyExponential);
        float kept = EntropyMask(entropyThreshold, entropy);
        float ratioPath = p.SequenceLevel != 0 ? rowKeptShare : kept;
        float loss = kept * policy.Loss, gradient = ratioPath * policy.DLossDRho * rho + kept * policy.DLossDLogp, kl = 0f;
        if (p.Beta > 0f)
        {
            kl = KlValue(p.KlEstimator, d, e);
            loss += p.Beta * kl;
            gradient += p.Beta * KlGradient(p.KlEstimator, d, kl);
        }
        if (p.EntropyCoefficient != 0f) loss -= p.EntropyCoefficient * entropy;
        return new TokenTerm(loss, gradient, kl, policy.ClippedLow, policy.ClippedHigh, policy.DualClipped, policy.CispoClipped,
            -p.EntropyCoefficient);
    }

    /// <summary>
    /// The metric flags of a completion at sequence level (GSPO), where TRL's ratio has one column per completion
    /// and its clip metrics are plain means over completions: the variant's flags for the row's ratio, any
    /// completion included (an empty one has ρ = exp(0 / 1) = 1). The flags do not depend on logp or SAPO's gate.
    /// </summary>
    public static PolicyTerm SequenceFlags(ObjectiveParameters p, float rho, float advantage) =>
        Policy(p, rho, advantage, 0f, 1f);

    /// <summary>
    /// TRL's <c>entropy_mask</c> for one loss token: 1 when its entropy is at or above the micro-batch's quantile
    /// threshold (<c>masked_entropies &gt;= entropy_threshold</c>), else 0; always 1 when the mask is off (−∞).
    /// </summary>
    public static float EntropyMask(float threshold, float entropy) => entropy >= threshold ? 1f : 0f;

    /// <summary>The policy-loss variant of <see cref="ObjectiveParameters.LossType"/> for one token.</summary>
    public static PolicyTerm Policy(ObjectiveParameters p, float rho, float advantage, float logp, float policyExponential)
    {
        if (p.LossType == Cispo) return CispoTerm(rho, advantage, logp, p.CispoBound);
        if (p.LossType == Sapo) return SapoTerm(advantage, SapoTemperature(p, advantage), policyExponential);
        return Clipped(rho, advantage, p.Lower, p.Upper, p.Delta, p.DualClip);
    }

    /// <summary>Whether the variant needs exp(<see cref="PolicyExponent"/>) from the backend (SAPO's gate).</summary>
    public static bool NeedsPolicyExponential(ObjectiveParameters p) => p.LossType == Sapo;

    /// <summary>The argument x whose exp(x) the variant needs: SAPO's −τ(ρ − 1); 0 for the others.</summary>
    public static float PolicyExponent(ObjectiveParameters p, float rho, float advantage) =>
        p.LossType == Sapo ? -SapoTemperature(p, advantage) * (rho - 1f) : 0f;

    /// <summary>
    /// The clipped surrogate of grpo, bnpo, dapo and dr_grpo, with TRL's two-sided clipping and verl's
    /// dual clip. TRL (<c>GRPOTrainer._compute_loss</c>):
    /// <code>
    /// coef_2 = torch.clamp(coef_1, 1 - self.epsilon_low, 1 + self.epsilon_high)
    /// if self.args.delta is not None:
    ///     coef_1 = torch.clamp(coef_1, max=self.args.delta)
    /// per_token_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
    /// </code>
    /// then verl (<c>compute_policy_loss_vanilla</c>, with clip_pg_losses1 the loss above):
    /// <code>
    /// pg_losses3 = -advantages * clip_ratio_c
    /// clip_pg_losses2 = torch.min(pg_losses3, clip_pg_losses1)
    /// pg_losses = torch.where(advantages &lt; 0, clip_pg_losses2, clip_pg_losses1)
    /// </code>
    /// <paramref name="delta"/> and <paramref name="dualClip"/> are +∞ when off, which leaves the
    /// plain clipped surrogate. Gradients are PyTorch's: clamp passes 1 on its closed interval, a tie
    /// of min splits the gradient evenly. Metrics as TRL and verl count them: low when the (δ-capped)
    /// coef_1 &lt; lower and A &lt; 0, high when it is &gt; upper and A &gt; 0, dual when A &lt; 0 and
    /// clip_pg_losses1 &gt; pg_losses3.
    /// </summary>
    public static PolicyTerm Clipped(float rho, float advantage, float lower, float upper, float delta, float dualClip)
    {
        float coef1 = rho > delta ? delta : rho, dCoef1 = rho > delta ? 0f : 1f;
        float coef2 = rho < lower ? lower : rho > upper ? upper : rho;
        float dCoef2 = rho < lower || rho > upper ? 0f : 1f;
        float unclippedTerm = coef1 * advantage, clippedTerm = coef2 * advantage;
        float minimum, dMinimum;
        if (unclippedTerm < clippedTerm) { minimum = unclippedTerm; dMinimum = dCoef1 * advantage; }
        else if (unclippedTerm > clippedTerm) { minimum = clippedTerm; dMinimum = dCoef2 * advantage; }
        else { minimum = unclippedTerm; dMinimum = 0.5f * (dCoef1 + dCoef2) * advantage; }
        float loss = -minimum, dLoss = -dMinimum, dual = 0f;
        if (advantage < 0f)
        {
            float dualLoss = -advantage * dualClip; // +∞ when off
            if (loss > dualLoss) { loss = dualLoss; dLoss = 0f; dual = 1f; }
            else if (loss == dualLoss) dLoss *= 0.5f;
        }
        float low = coef1 < lower && advantage < 0f ? 1f : 0f;
        float high = coef1 > upper && advantage > 0f ? 1f : 0f;
        return new PolicyTerm(loss, dLoss, 0f, low, high, dual, 0f);
    }

    /// <summary>
    /// CISPO (TRL <c>loss_type="cispo"</c>): the ratio, capped at ε_high and detached, weights a plain
    /// policy gradient. TRL:
    /// <code>
    /// clamped_ratios = torch.clamp(coef_1, max=self.epsilon_high).detach()
    /// per_token_loss = -clamped_ratios * advantages * per_token_logps
    /// is_cispo_clipped = (coef_1 &gt; self.epsilon_high) &amp; (advantages &gt; 0)
    /// </code>
    /// No gradient flows through ρ; d loss / d logp = −min(ρ, ε_high)·A.
    /// </summary>
    public static PolicyTerm CispoTerm(float rho, float advantage, float logp, float bound)
    {
        float weight = rho > bound ? bound : rho;
        float dLogp = -weight * advantage;
        return new PolicyTerm(dLogp * logp, 0f, dLogp, 0f, 0f, 0f, rho > bound && advantage > 0f ? 1f : 0f);
    }

    /// <summary>
    /// SAPO (TRL <c>loss_type="sapo"</c>): a soft gate instead of the hard clip. TRL:
    /// <code>
    /// get_sapo_token_loss(ρ, τ) = torch.sigmoid(τ * (ρ - 1)) * 4 / τ
    /// per_token_loss = -get_sapo_token_loss(coef_1, τ) * advantages   # τ = sapo_temperature_pos where A &gt; 0, else _neg
    /// </code>
    /// <paramref name="gate"/> = exp(−τ(ρ − 1)), so σ = 1 / (1 + gate) and dσ/dρ = τ σ (1 − σ):
    /// d loss / dρ = −4 A σ (1 − σ). 1 − σ is taken as gate·σ when gate &lt; 1 (no cancellation) and
    /// as 1 − σ otherwise (σ ≤ ½, so no cancellation either); an infinite gate gives σ = 0 and no NaN.
    /// </summary>
    public static PolicyTerm SapoTerm(float advantage, float temperature, float gate)
    {
        float sigma = 1f / (1f + gate);
        float oneMinusSigma = gate < 1f ? gate * sigma : 1f - sigma;
        float loss = -(sigma * 4f / temperature) * advantage;
        return new PolicyTerm(loss, -4f * advantage * sigma * oneMinusSigma, 0f, 0f, 0f, 0f, 0f);
    }

    /// <summary>SAPO's temperature: τ_pos for A &gt; 0, τ_neg otherwise (TRL's <c>advantages &gt; 0</c> mask).</summary>
    public static float SapoTemperature(ObjectiveParameters p, float advantage) =>
        advantage > 0f ? p.SapoTemperaturePositive : p.SapoTemperatureNegative;

    /// <summary>
    /// The KL estimate of one token, verl's <c>kl_penalty</c> with d = ref − logp: k1 = logp − ref
    /// (<c>logprob - ref_logprob</c>), k2 = ½ (logp − ref)² (<c>0.5 * (logprob - ref_logprob).square()</c>),
    /// k3 = exp(d) − d − 1 (TRL's term; verl's "low_var_kl" additionally clamps it to [−10, 10], which
    /// is not done here). <paramref name="e"/> = exp(d) is read by k3 only.
    /// </summary>
    public static float KlValue(int estimator, float d, float e)
    {
        if (estimator == K1) return -d;
        if (estimator == K2) return 0.5f * d * d;
        return Kl(d, e);
    }

    /// <summary>d KL / d logp given d = ref − logp and the estimate: k1 → 1, k2 → logp − ref = −d, k3 → 1 − exp(d) = −(d + k3).</summary>
    public static float KlGradient(int estimator, float d, float kl)
    {
        if (estimator == K1) return 1f;
        if (estimator == K2) return -d;
        return -(d + kl);
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
    /// loss = Σ_i c_i Σ_t ℓ_{i,t} m_{i,t}, so d loss / d ℓ_{i,t} = c_i m_{i,t}. TRL aggregates
    /// sapo as grpo (per-completion means) and cispo as dapo (Σ ℓ m over the batch's tokens).
    /// </summary>
    /// <param name="lossType"><see cref="Grpo"/> .. <see cref="Sapo"/>.</param>
    /// <param name="rowTokens">|o_i| = Σ_t m_{i,t}.</param>
    /// <param name="totalTokens">Σ m over the batch.</param>
    /// <param name="completions">N.</param>
    /// <param name="maxCompletionLength">The dr_grpo length.</param>
    public static float RowWeight(int lossType, float rowTokens, float totalTokens, int completions, int maxCompletionLength)
    {
        if (lossType == Grpo || lossType == Sapo) return 1f / ((rowTokens > 1f ? rowTokens : 1f) * completions);
        if (lossType == DrGrpo) return 1f / ((float)completions * maxCompletionLength);
        return 1f / (totalTokens > 1f ? totalTokens : 1f);
    }
}

/// <summary>
/// The GRPO objective on the ILGPU backend, in four launches with deterministic reductions (five with entropy masking,
/// whose threshold <see cref="EntropyQuantileKernels.Threshold"/> finds first): per-row token counts (and GSPO log-ratio
/// means), batch totals, per-token loss and gradient with per-row sums, and the final scalars.
/// </summary>
public static class ObjectiveKernels
{
    /// <summary>
    /// Columns of the per-row statistics written by <see cref="RowPrepare"/>: the row's tokens, GSPO's mean log-ratio,
    /// its mask values other than 0 and 1, the entropy mask's kept share, its non-finite old log-probs at completion
    /// tokens and the first one's column (−1: none), 1 when its advantage is not finite, and Σ m·entropy.
    /// </summary>
    public const int RowTokens = 0, RowLogRatio = 1, RowBadMask = 2, RowKeptShare = 3, RowBadOld = 4, RowFirstBadOld = 5,
        RowBadAdvantage = 6, RowEntropySum = 7, RowPrepareColumns = 8;

    /// <summary>Columns of the per-row sums written by <see cref="TokenTerms"/>.</summary>
    public const int RowLoss = 0, RowLow = 1, RowHigh = 2, RowKl = 3, RowDual = 4, RowCispo = 5, RowTermColumns = 6;

    /// <summary>
    /// Slots of the scalar buffer: batch totals (from <see cref="Totals"/>), the results (from <see cref="Finish"/>), then the
    /// input checks and the entropy sum (from <see cref="Totals"/>), the entropy mean (from <see cref="Finish"/>), and the entropy
    /// mask's threshold with its input check (from <see cref="EntropyQuantileKernels.Threshold"/>, or <see cref="Totals"/> when
    /// not masking). A "first" row or column is +∞ when there is none. All of them come back to the host in one read, or stay on the device for
    /// <see cref="OptimizerKernels.UpdateGate"/> and a read at the end of a training step.
    /// </summary>
    public const int TotalTokens = 0, TotalBadMask = 1, FirstBadRow = 2,
        ResultLoss = 3, ResultLow = 4, ResultHigh = 5, ResultRegion = 6, ResultKl = 7, ResultDual = 8, ResultCispo = 9,
        TotalBadOld = 10, FirstBadOldRow = 11, FirstBadOldColumn = 12, FirstBadAdvantageRow = 13, TotalEntropy = 14,
        ResultEntropy = 15, EntropyThreshold = 16, TotalBadEntropy = 17, FirstBadEntropyRow = 18, FirstBadEntropyColumn = 19,
        FirstBadEntropyValue = 20, ScalarCount = 21;

    /// <summary>True when the scalars report an input the objective refuses (a bad mask value, old log-prob, advantage or masking entropy).</summary>
    /// <param name="scalars">The scalars of one call.</param>
    /// <param name="at">Where they start.</param>
    public static bool ReportsBadInput(ArrayView<float> scalars, long at) =>
        scalars[at + TotalBadMask] > 0f || scalars[at + TotalBadOld] > 0f || IsFinite(scalars[at + FirstBadAdvantageRow])
        || scalars[at + TotalBadEntropy] > 0f;

    /// <summary>
    /// One group per completion: |o_i| = Σ_t m_t, the number of mask values that are neither 0 nor 1,
    /// (sequence level only) the masked mean of logp − old, the share of the row's tokens the entropy
    /// mask keeps (<see cref="ObjectiveMath.Token"/>'s rowKeptShare), and the input checks the host would
    /// otherwise make on a download: old log-probs that are not finite at completion tokens, an advantage that
    /// is not finite; and Σ m·entropy for the entropy metric. Padding values are not read.
    /// </summary>
    /// <param name="logprobs">(N, T) current log-probs.</param>
    /// <param name="oldLogprobs">(N, T) old log-probs (the current ones again when μ = 1).</param>
    /// <param name="mask">(N, T) 1 = completion token, 0 = padding.</param>
    /// <param name="p">The scalar arguments.</param>
    /// <param name="rowStats">(N, RowPrepareColumns) output.</param>
    /// <param name="entropy">(N, T) per-token entropies; read when <see cref="ObjectiveParameters.ReadsEntropy"/> or <paramref name="sumEntropy"/>.</param>
    /// <param name="advantages">(N) advantages.</param>
    /// <param name="checkOld">1 when <paramref name="oldLogprobs"/> are the caller's (μ &gt; 1), 0 when they stand for the current ones.</param>
    /// <param name="sumEntropy">1 to sum the entropies of the completion tokens (the caller passed them), 0 otherwise.</param>
    /// <param name="scalars">(ScalarCount) holding the entropy threshold when masking (<see cref="EntropyQuantileKernels.Threshold"/>).</param>
    public static void RowPrepare(
        ArrayView<float> logprobs, ArrayView<float> oldLogprobs, ArrayView<float> mask, ObjectiveParameters p,
        ArrayView<float> rowStats, ArrayView<float> entropy, ArrayView<float> advantages, int checkOld, int sumEntropy,
        ArrayView<float> scalars)
    {
        int row = Grid.IdxX, t = p.Tokens;
        float threshold = p.MasksByEntropy != 0 ? scalars[EntropyThreshold] : float.NegativeInfinity; // −∞: every token kept
        float tokens = 0, bad = 0, logRatio = 0, kept = 0, badOld = 0, entropySum = 0;
        float negFirstBadOld = float.NegativeInfinity;
        for (int c = Group.IdxX; c < t; c += Group.DimX)
        {
            int k = row * t + c;
            float m = mask[k];
            if (m == 1f)
            {
                tokens += 1f;
                if (p.SequenceLevel != 0) logRatio += logprobs[k] - oldLogprobs[k];
                kept += ObjectiveMath.EntropyMask(threshold, p.ReadsEntropy ? entropy[k] : 0f);
                if (checkOld != 0 && !IsFinite(oldLogprobs[k]))
                {
                    badOld += 1f;
                    negFirstBadOld = XMath.Max(negFirstBadOld, -c);
                }
                if (sumEntropy != 0) entropySum += entropy[k];
            }
            else if (m != 0f) bad += 1f;
        }
        tokens = GroupReduce.Sum(tokens);
        bad = GroupReduce.Sum(bad);
        logRatio = GroupReduce.Sum(logRatio);
        kept = GroupReduce.Sum(kept);
        badOld = GroupReduce.Sum(badOld);
        negFirstBadOld = GroupReduce.Max(negFirstBadOld);
        entropySum = GroupReduce.Sum(entropySum);
        if (Group.IdxX == 0)
        {
            float denominator = tokens > 1f ? tokens : 1f;
            int at = row * RowPrepareColumns;
            rowStats[at + RowTokens] = tokens;
            rowStats[at + RowLogRatio] = logRatio / denominator;
            rowStats[at + RowBadMask] = bad;
            rowStats[at + RowKeptShare] = kept / denominator;
            rowStats[at + RowBadOld] = badOld;
            rowStats[at + RowFirstBadOld] = -negFirstBadOld;
            rowStats[at + RowBadAdvantage] = IsFinite(advantages[row]) ? 0f : 1f;
            rowStats[at + RowEntropySum] = entropySum;
        }
    }

    private static bool IsFinite(float value) => !XMath.IsNaN(value) && !XMath.IsInfinity(value);

    /// <summary>
    /// Launched as one group: total tokens, total bad mask values and the first row holding one; total non-finite old
    /// log-probs with the first one's row and column; the first row whose advantage is not finite; Σ m·entropy.
    /// </summary>
    /// <param name="rowStats">(N, RowPrepareColumns) from <see cref="RowPrepare"/>.</param>
    /// <param name="completions">N.</param>
    /// <param name="scalars">(ScalarCount) output slots <see cref="TotalTokens"/> .. <see cref="FirstBadRow"/> and <see cref="TotalBadOld"/> .. <see cref="TotalEntropy"/>,
    /// and, when not masking, <see cref="EntropyThreshold"/> .. <see cref="FirstBadEntropyValue"/>.</param>
    /// <param name="masksByEntropy">1 when <see cref="EntropyQuantileKernels.Threshold"/> wrote the entropy slots, 0 otherwise.</param>
    public static void Totals(ArrayView<float> rowStats, int completions, ArrayView<float> scalars, int masksByEntropy)
    {
        float tokens = 0, bad = 0, badOld = 0, entropy = 0;
        float negFirstBad = float.NegativeInfinity, negFirstBadOld = float.NegativeInfinity, negFirstBadAdvantage = float.NegativeInfinity;
        for (int row = Group.IdxX; row < completions; row += Group.DimX)
        {
            int at = row * RowPrepareColumns;
            tokens += rowStats[at + RowTokens];
            float rowBad = rowStats[at + RowBadMask];
            bad += rowBad;
            if (rowBad > 0f) negFirstBad = XMath.Max(negFirstBad, -row);
            float rowBadOld = rowStats[at + RowBadOld];
            badOld += rowBadOld;
            if (rowBadOld > 0f) negFirstBadOld = XMath.Max(negFirstBadOld, -row);
            if (rowStats[at + RowBadAdvantage] > 0f) negFirstBadAdvantage = XMath.Max(negFirstBadAdvantage, -row);
            entropy += rowStats[at + RowEntropySum];
        }
        tokens = GroupReduce.Sum(tokens);
        bad = GroupReduce.Sum(bad);
        negFirstBad = GroupReduce.Max(negFirstBad);
        badOld = GroupReduce.Sum(badOld);
        negFirstBadOld = GroupReduce.Max(negFirstBadOld);
        negFirstBadAdvantage = GroupReduce.Max(negFirstBadAdvantage);
        entropy = GroupReduce.Sum(entropy);
        if (Group.IdxX == 0)
        {
            scalars[TotalTokens] = tokens;
            scalars[TotalBadMask] = bad;
            scalars[FirstBadRow] = -negFirstBad;
            scalars[TotalBadOld] = badOld;
            scalars[FirstBadOldRow] = -negFirstBadOld;
            scalars[FirstBadOldColumn] = badOld > 0f ? rowStats[(int)-negFirstBadOld * RowPrepareColumns + RowFirstBadOld] : float.PositiveInfinity;
            scalars[FirstBadAdvantageRow] = -negFirstBadAdvantage;
            scalars[TotalEntropy] = entropy;
            if (masksByEntropy == 0)
            {
                // No threshold kernel ran: its slots say "no bad entropy" (the gate and the host read them).
                scalars[EntropyThreshold] = float.NegativeInfinity;
                scalars[TotalBadEntropy] = 0f;
                scalars[FirstBadEntropyRow] = float.PositiveInfinity;
                scalars[FirstBadEntropyColumn] = float.PositiveInfinity;
                scalars[FirstBadEntropyValue] = 0f;
            }
        }
    }

    /// <summary>
    /// One group per completion: for each masked token the loss ℓ_t and d loss / d logp_t =
    /// c_i (dℓ/dρ · ρ + dℓ/dlogp directly + β dKL/dlogp) (<see cref="ObjectiveMath.Token"/>), written to
    /// <paramref name="dLogprobs"/> (0 at padding); then the row's sums of ℓ, KL and the metric flags. At sequence level ρ is
    /// the row's ratio and dρ/dlogp_t = ρ m_t / |o_i|; summed over the row's |o_i| tokens, each with
    /// weight c_i, that gives the same c_i · dℓ/dρ · ρ per token (times the row's kept share under entropy masking).
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
    /// <param name="entropy">(N, T) the policy's per-token entropies; read only when <see cref="ObjectiveParameters.ReadsEntropy"/>.</param>
    /// <param name="dEntropy">(N, T) output d loss / d entropy (0 at padding); written only when the entropy coefficient is not 0.</param>
    public static void TokenTerms(
        ArrayView<float> logprobs, ArrayView<float> oldLogprobs, ArrayView<float> refLogprobs, ArrayView<float> advantages,
        ArrayView<float> mask, ArrayView<float> rowStats, ArrayView<float> scalars, ObjectiveParameters p,
        ArrayView<float> dLogprobs, ArrayView<float> rowTerms, ArrayView<float> entropy, ArrayView<float> dEntropy)
    {
        int row = Grid.IdxX, t = p.Tokens;
        float threshold = p.MasksByEntropy != 0 ? scalars[EntropyThreshold] : float.NegativeInfinity; // −∞: every token kept
        float rowTokens = rowStats[row * RowPrepareColumns + RowTokens];
        float weight = ObjectiveMath.RowWeight(p.LossType, rowTokens, scalars[TotalTokens], p.Completions, p.MaxCompletionLength);
        float advantage = advantages[row];
        float sequenceRho = KernelMath.Exp(rowStats[row * RowPrepareColumns + RowLogRatio]);
        float keptShare = rowStats[row * RowPrepareColumns + RowKeptShare];
        bool policyExponential = ObjectiveMath.NeedsPolicyExponential(p);
        float loss = 0, low = 0, high = 0, kl = 0, dual = 0, cispo = 0;
        for (int c = Group.IdxX; c < t; c += Group.DimX)
        {
            int k = row * t + c;
            if (mask[k] != 1f)
            {
                dLogprobs[k] = 0f;
                if (p.EntropyCoefficient != 0f) dEntropy[k] = 0f;
                continue;
            }
            float logp = logprobs[k];
            float rho = p.SequenceLevel != 0 ? sequenceRho : KernelMath.Exp(logp - oldLogprobs[k]);
            float d = p.Beta > 0f ? refLogprobs[k] - logp : 0f;
            float gate = policyExponential ? KernelMath.Exp(ObjectiveMath.PolicyExponent(p, rho, advantage)) : 1f;
            var term = ObjectiveMath.Token(p, rho, advantage, logp, d, p.Beta > 0f ? KernelMath.Exp(d) : 1f, gate,
                p.ReadsEntropy ? entropy[k] : 0f, threshold, keptShare);
            dLogprobs[k] = weight * term.DLossDLogp;
            if (p.EntropyCoefficient != 0f) dEntropy[k] = weight * term.DLossDEntropy;
            loss += term.Loss;
            kl += term.Kl;
            if (p.SequenceLevel == 0)
            {
                low += term.ClippedLow;
                high += term.ClippedHigh;
                dual += term.DualClipped;
                cispo += term.CispoClipped;
            }
        }
        if (p.SequenceLevel != 0 && Group.IdxX == 0)
        {
            // GSPO: one ratio per completion, so TRL's metrics count completions (even an empty one, whose ρ is 1).
            var flags = ObjectiveMath.SequenceFlags(p, sequenceRho, advantage);
            low = flags.ClippedLow;
            high = flags.ClippedHigh;
            dual = flags.DualClipped;
            cispo = flags.CispoClipped;
        }
        loss = GroupReduce.Sum(loss);
        low = GroupReduce.Sum(low);
        high = GroupReduce.Sum(high);
        kl = GroupReduce.Sum(kl);
        dual = GroupReduce.Sum(dual);
        cispo = GroupReduce.Sum(cispo);
        if (Group.IdxX == 0)
        {
            rowTerms[row * RowTermColumns + RowLoss] = loss;
            rowTerms[row * RowTermColumns + RowLow] = low;
            rowTerms[row * RowTermColumns + RowHigh] = high;
            rowTerms[row * RowTermColumns + RowKl] = kl;
            rowTerms[row * RowTermColumns + RowDual] = dual;
            rowTerms[row * RowTermColumns + RowCispo] = cispo;
        }
    }

    /// <summary>
    /// Launched as one group: loss = Σ_i c_i · rowLoss_i, and the masked-mean metrics
    /// (sums over the batch divided by max(Σ m, 1); the clip metrics at sequence level by N). Writes slots <see cref="ResultLoss"/> .. <see cref="ResultCispo"/>
    /// and <see cref="ResultEntropy"/> (NaN when no entropies were summed).
    /// </summary>
    /// <param name="rowStats">(N, RowPrepareColumns) from <see cref="RowPrepare"/>.</param>
    /// <param name="rowTerms">(N, RowTermColumns) from <see cref="TokenTerms"/>.</param>
    /// <param name="p">The scalar arguments.</param>
    /// <param name="scalars">(ScalarCount) totals in, results out.</param>
    /// <param name="sumEntropy">1 when <see cref="RowPrepare"/> summed the entropies, 0 otherwise.</param>
    public static void Finish(ArrayView<float> rowStats, ArrayView<float> rowTerms, ObjectiveParameters p, ArrayView<float> scalars, int sumEntropy)
    {
        float totalTokens = scalars[TotalTokens];
        float loss = 0, low = 0, high = 0, kl = 0, dual = 0, cispo = 0;
        for (int row = Group.IdxX; row < p.Completions; row += Group.DimX)
        {
            float weight = ObjectiveMath.RowWeight(
                p.LossType, rowStats[row * RowPrepareColumns + RowTokens], totalTokens, p.Completions, p.MaxCompletionLength);
            loss += weight * rowTerms[row * RowTermColumns + RowLoss];
            low += rowTerms[row * RowTermColumns + RowLow];
            high += rowTerms[row * RowTermColumns + RowHigh];
            kl += rowTerms[row * RowTermColumns + RowKl];
            dual += rowTerms[row * RowTermColumns + RowDual];
            cispo += rowTerms[row * RowTermColumns + RowCispo];
        }
        loss = GroupReduce.Sum(loss);
        low = GroupReduce.Sum(low);
        high = GroupReduce.Sum(high);
        kl = GroupReduce.Sum(kl);
        dual = GroupReduce.Sum(dual);
        cispo = GroupReduce.Sum(cispo);
        if (Group.IdxX == 0)
        {
            // Token level: fractions of the tokens. Sequence level: fractions of the completions (TRL's
            // masked_batch_mean takes a plain mean when the ratio has one column).
            float denominator = p.SequenceLevel != 0 ? p.Completions : totalTokens > 1f ? totalTokens : 1f;
            float klDenominator = totalTokens > 1f ? totalTokens : 1f;
            scalars[ResultLoss] = loss;
            scalars[ResultLow] = low / denominator;
            scalars[ResultHigh] = high / denominator;
            scalars[ResultRegion] = (low + high) / denominator;
            scalars[ResultKl] = kl / klDenominator;
            scalars[ResultDual] = dual / denominator;
            scalars[ResultCispo] = cispo / denominator;
            scalars[ResultEntropy] = sumEntropy != 0 ? scalars[TotalEntropy] / klDenominator : float.NaN;
        }
    }
}

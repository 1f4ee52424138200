using Grpo.Kernels;
using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

/// <summary>
/// TRL's <c>loss_type</c>: how <see cref="IGrpoOperations.GrpoObjective"/> averages the per-token losses
/// and, for <see cref="Cispo"/> and <see cref="Sapo"/>, which per-token loss it uses (the others use the
/// clipped surrogate).
/// </summary>
public enum LossType
{
    /// <summary>Mean over completions of each completion's mean token loss: Σ_t ℓ_t m_t / max(|o_i|, 1), averaged over i (the original GRPO; biased towards short completions).</summary>
    Grpo,

    /// <summary>
    /// Σ ℓ m / max(Σ m, 1) over the completions the objective is given (a token-level mean). Over micro-batches, as in
    /// TRL, each micro-batch is normalised by its own mask sum and the results are averaged
    /// (<see cref="Training.MicroBatchShare"/>), so it differs from <see cref="Dapo"/> when micro-batches hold different
    /// numbers of tokens.
    /// </summary>
    Bnpo,

    /// <summary>Σ ℓ m / max(Σ m, 1) over the whole batch, micro-batches included (TRL's <c>num_items_in_batch</c>). The default.</summary>
    Dapo,

    /// <summary>Σ ℓ m / (N · <see cref="GrpoObjectiveOptions.MaxCompletionLength"/>): a constant normaliser (Dr. GRPO).</summary>
    DrGrpo,

    /// <summary>
    /// CISPO (ScaleRL / MiniMax-M1): ℓ_t = −sg(min(ρ_t, ε_high))·A·logp_t, the ratio capped and detached
    /// (sg: no gradient), aggregated as <see cref="Dapo"/>. As in TRL the cap is
    /// <see cref="GrpoObjectiveOptions.EffectiveEpsilonHigh"/> itself, not 1 + ε_high: set
    /// <see cref="GrpoObjectiveOptions.EpsilonHigh"/> to ScaleRL's ε_max (TRL recommends 5.0); the default
    /// 0.2 caps every weight at 0.2. Two-sided and dual clipping do not apply.
    /// </summary>
    Cispo,

    /// <summary>
    /// SAPO: ℓ_t = −A·σ(τ(ρ_t − 1))·4/τ, a soft gate instead of the hard clip, with τ =
    /// <see cref="GrpoObjectiveOptions.SapoTemperaturePositive"/> for A &gt; 0 and
    /// <see cref="GrpoObjectiveOptions.SapoTemperatureNegative"/> otherwise; aggregated as <see cref="Grpo"/>.
    /// ε, two-sided and dual clipping do not apply.
    /// </summary>
    Sapo,
}

/// <summary>The per-token KL estimator of the penalty β·KL_t (verl's <c>kl_penalty</c>), with d = logp − ref.</summary>
public enum KlEstimator
{
    /// <summary>k1 = d = logp − ref (unbiased, high variance, can be negative); d k1 / d logp = 1.</summary>
    K1,

    /// <summary>k2 = ½ d²; d k2 / d logp = d.</summary>
    K2,

    /// <summary>
    /// k3 = exp(−d) + d − 1 = exp(ref − logp) − (ref − logp) − 1, TRL's term and the default; d k3 / d logp =
    /// 1 − exp(ref − logp). verl's "low_var_kl" also clamps it to [−10, 10]; TRL does not, and neither does this.
    /// </summary>
    K3,
}

/// <summary>Where the importance ratio ρ is taken.</summary>
public enum ImportanceSamplingLevel
{
    /// <summary>ρ_t = exp(logp_t − old_t) for every token.</summary>
    Token,

    /// <summary>GSPO: ρ = exp(Σ_t m_t (logp_t − old_t) / max(Σ_t m_t, 1)), one ratio per completion, applied to each of its tokens.</summary>
    Sequence,
}

/// <summary>Options of the GRPO objective; the defaults are TRL's.</summary>
public sealed record GrpoObjectiveOptions
{
    /// <summary>How per-token losses are averaged. Default <see cref="LossType.Dapo"/>.</summary>
    public LossType LossType { get; init; } = LossType.Dapo;

    /// <summary>ε_low: ratios below 1 − ε_low are clipped when the advantage is negative. Finite, ≥ 0. Default 0.2.</summary>
    public float EpsilonLow { get; init; } = 0.2f;

    /// <summary>ε_high: ratios above 1 + ε_high are clipped when the advantage is positive. Null means <see cref="EpsilonLow"/> (DAPO suggests 0.28). Finite, ≥ 0.</summary>
    public float? EpsilonHigh { get; init; }

    /// <summary>β, the weight of the KL penalty towards the reference model. 0 (the default) means no reference model: reference log-probs are then not read at all.</summary>
    public float Beta { get; init; }

    /// <summary>The KL estimator of the penalty. Default <see cref="KlEstimator.K3"/> (TRL's).</summary>
    public KlEstimator KlEstimator { get; init; } = KlEstimator.K3;

    /// <summary>
    /// δ, TRL's two-sided clipping (INTELLECT-2): the unclipped ratio is capped at δ before the min,
    /// ℓ_t = −min(min(ρ, δ)·A, clamp(ρ, 1 − ε_low, 1 + ε_high)·A), which bounds a negative-advantage
    /// token's loss by δ·|A|. Null (the default) is off. Finite and &gt; 1 (TRL checks nothing and
    /// recommends &gt; 1 + ε_high; a cap at or below 1 would cut tokens the policy has not moved).
    /// Used by the clipped-surrogate loss types only (grpo, bnpo, dapo, dr_grpo), ignored by cispo and
    /// sapo exactly as TRL ignores it.
    /// </summary>
    public float? Delta { get; init; }

    /// <summary>
    /// c, verl's dual-clip PPO (<c>clip_ratio_c</c>): for A &lt; 0 the clipped-surrogate loss is further
    /// capped, ℓ_t = min(−min(ρA, clamp(ρ)·A), −c·A); with <see cref="Delta"/> also set, δ caps ρ first.
    /// Null (the default) is off; verl's default when on is 3. Finite and &gt; 1 (verl's check).
    /// Used by the clipped-surrogate loss types only, ignored by cispo and sapo.
    /// </summary>
    public float? DualClip { get; init; }

    /// <summary>SAPO's gate temperature τ for tokens with A &gt; 0 (TRL's <c>sapo_temperature_pos</c>). Finite, &gt; 0. Default 1.0.</summary>
    public float SapoTemperaturePositive { get; init; } = 1.0f;

    /// <summary>SAPO's gate temperature τ for tokens with A ≤ 0 (TRL's <c>sapo_temperature_neg</c>). Finite, &gt; 0. Default 1.05.</summary>
    public float SapoTemperatureNegative { get; init; } = 1.05f;

    /// <summary>
    /// c, verl's entropy bonus (<c>entropy_coeff</c>): the loss becomes
    /// <c>pg_loss − c · agg(H)</c>, with H_t the entropy of softmax(logits / temperature) at each completion
    /// token, aggregated by <see cref="LossType"/> exactly as the per-token losses are, and its full
    /// gradient through the softmax (dH/dz_j = −p_j (log p_j + H)). 0 (the default) is off. Finite. TRL has
    /// no such option; verl's default is 0 (0.001 is a common setting).
    /// </summary>
    public float EntropyCoefficient { get; init; }

    /// <summary>
    /// TRL's entropy masking (<c>top_entropy_quantile</c>, "Beyond the 80/20 rule"): only completion tokens whose
    /// entropy is at or above the q = 1 − top_entropy_quantile quantile (torch.quantile's linear interpolation)
    /// of the entropies of the call's loss tokens — one forward micro-batch, as in TRL — keep their policy
    /// term; the KL term, the normaliser and the clip metrics are unchanged, as in TRL. In [0, 1]; 1.0 (the
    /// default) is off; 0.2 keeps the top 20 %.
    /// </summary>
    public float TopEntropyQuantile { get; init; } = 1f;

    /// <summary>Token-level ratios (the default) or GSPO's sequence-level ratio.</summary>
    public ImportanceSamplingLevel ImportanceSamplingLevel { get; init; } = ImportanceSamplingLevel.Token;

    /// <summary>The generation length limit; required (≥ T) for <see cref="LossType.DrGrpo"/>, whose normaliser it is, and ignored otherwise.</summary>
    public int MaxCompletionLength { get; init; }

    /// <summary>ε_high as used: <see cref="EpsilonHigh"/> or, when unset, <see cref="EpsilonLow"/>.</summary>
    public float EffectiveEpsilonHigh => EpsilonHigh ?? EpsilonLow;

    /// <summary>Throws when an option is out of range; the message names the option and the fix.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(LossType))
            throw new ArgumentOutOfRangeException(nameof(LossType), LossType, $"'{nameof(LossType)}' must be Grpo, Bnpo, Dapo, DrGrpo, Cispo or Sapo.");
        if (!Enum.IsDefined(KlEstimator))
            throw new ArgumentOutOfRangeException(nameof(KlEstimator), KlEstimator, $"'{nameof(KlEstimator)}' must be K1, K2 or K3.");
        if (!Enum.IsDefined(ImportanceSamplingLevel))
            throw new ArgumentOutOfRangeException(nameof(ImportanceSamplingLevel), ImportanceSamplingLevel,
                $"'{nameof(ImportanceSamplingLevel)}' must be Token or Sequence.");
        if (!float.IsFinite(EpsilonLow) || EpsilonLow < 0)
            throw new ArgumentOutOfRangeException(nameof(EpsilonLow), EpsilonLow,
                $"'{nameof(EpsilonLow)}' must be finite and at least 0 (0.2 is usual).");
        if (EpsilonHigh is { } high && (!float.IsFinite(high) || high < 0))
            throw new ArgumentOutOfRangeException(nameof(EpsilonHigh), high,
                $"'{nameof(EpsilonHigh)}' must be finite and at least 0 (DAPO uses 0.28), or null to use '{nameof(EpsilonLow)}'.");
        if (!float.IsFinite(Beta) || Beta < 0)
            throw new ArgumentOutOfRangeException(nameof(Beta), Beta,
                $"'{nameof(Beta)}' must be finite and at least 0 (0 disables the KL penalty; 0.04 is usual).");
        if (Delta is { } delta && !(float.IsFinite(delta) && delta > 1))
            throw new ArgumentOutOfRangeException(nameof(Delta), delta,
                $"'{nameof(Delta)}' is {delta}: the two-sided clipping cap must be finite and greater than 1 (TRL recommends more than 1 + ε_high, e.g. 4), or null for none.");
        if (DualClip is { } dual && !(float.IsFinite(dual) && dual > 1))
            throw new ArgumentOutOfRangeException(nameof(DualClip), dual,
                $"'{nameof(DualClip)}' is {dual}: the dual-clip constant must be finite and greater than 1 (verl's clip_ratio_c, 3 by default), or null for none.");
        if (!(float.IsFinite(SapoTemperaturePositive) && SapoTemperaturePositive > 0))
            throw new ArgumentOutOfRangeException(nameof(SapoTemperaturePositive), SapoTemperaturePositive,
                $"'{nameof(SapoTemperaturePositive)}' is {SapoTemperaturePositive}: SAPO's temperature must be finite and positive (1.0 is TRL's default).");
        if (!(float.IsFinite(SapoTemperatureNegative) && SapoTemperatureNegative > 0))
            throw new ArgumentOutOfRangeException(nameof(SapoTemperatureNegative), SapoTemperatureNegative,
                $"'{nameof(SapoTemperatureNegative)}' is {SapoTemperatureNegative}: SAPO's temperature must be finite and positive (1.05 is TRL's default).");
        if (!float.IsFinite(EntropyCoefficient))
            throw new ArgumentOutOfRangeException(nameof(EntropyCoefficient), EntropyCoefficient,
                $"'{nameof(EntropyCoefficient)}' is {EntropyCoefficient}: the entropy bonus's coefficient must be finite (0 turns it off; verl's entropy_coeff, e.g. 0.001).");
        if (!(TopEntropyQuantile >= 0 && TopEntropyQuantile <= 1))
            throw new ArgumentOutOfRangeException(nameof(TopEntropyQuantile), TopEntropyQuantile,
                $"'{nameof(TopEntropyQuantile)}' is {TopEntropyQuantile}: the fraction of highest-entropy tokens trained on must lie in [0, 1] (1 turns entropy masking off; TRL's paper setting is 0.2).");
        if (MaxCompletionLength < 0 || (LossType == LossType.DrGrpo && MaxCompletionLength == 0))
            throw new ArgumentOutOfRangeException(nameof(MaxCompletionLength), MaxCompletionLength,
                $"'{nameof(MaxCompletionLength)}' must be positive for {nameof(LossType.DrGrpo)} (set it to the generation length limit), and never negative.");
    }
}

/// <summary>The loss and the metrics of one <see cref="IGrpoOperations.GrpoObjective"/> call, read back to the host.</summary>
/// <param name="Loss">The aggregated loss (to minimise).</param>
/// <param name="ClipRatioLow">Masked fraction of tokens with ρ &lt; 1 − ε_low and A &lt; 0 (their ratio gradient is cut); ρ capped at δ first when <see cref="GrpoObjectiveOptions.Delta"/> is set, as TRL counts it. 0 for cispo and sapo (TRL logs none).</param>
/// <param name="ClipRatioHigh">Masked fraction of tokens with ρ &gt; 1 + ε_high and A &gt; 0 (ρ capped at δ first). 0 for cispo and sapo.</param>
/// <param name="ClipRatioRegion">Masked fraction of tokens clipped either way (the two are disjoint, so this is their sum).</param>
/// <param name="MeanKl">Masked mean of the per-token KL estimate (<see cref="GrpoObjectiveOptions.KlEstimator"/>) to the reference model; 0 when β = 0.</param>
/// <param name="DualClipRatio">Masked fraction of tokens whose loss the dual clip decides (A &lt; 0 and −min(ρA, clamp(ρ)·A) &gt; −c·A; verl's <c>pg_clipfrac_lower</c>); 0 when <see cref="GrpoObjectiveOptions.DualClip"/> is off.</param>
/// <param name="CispoClipRatio">Masked fraction of tokens with ρ &gt; ε_high and A &gt; 0 (TRL's <c>cispo_clip_ratio</c>); 0 unless the loss type is cispo.</param>
/// <remarks>At <see cref="ImportanceSamplingLevel.Sequence"/> the four clip fractions are fractions of the N completions instead
/// (each judged by its own ratio, an empty one by ρ = 1), as TRL's <c>masked_batch_mean</c> averages a (B, 1) ratio; the KL stays a token mean.</remarks>
/// <param name="MeanEntropy">Masked mean of the given per-token entropies (the <c>entropy</c> metric); NaN when none were passed.</param>
public sealed record GrpoObjectiveResult(
    float Loss, float ClipRatioLow, float ClipRatioHigh, float ClipRatioRegion, float MeanKl, float DualClipRatio = 0f, float CispoClipRatio = 0f,
    float MeanEntropy = float.NaN);

public partial interface IGrpoOperations
{
    /// <summary>
    /// The GRPO objective (TRL's definitions) and its gradient with respect to the current log-probs.
    /// Per token, with ρ the importance ratio (see <see cref="ImportanceSamplingLevel"/>) and A the
    /// completion's advantage:
    /// ℓ_t = −min(ρ·A, clamp(ρ, 1 − ε_low, 1 + ε_high)·A) + β·KL_t (with the optional two-sided cap
    /// <see cref="GrpoObjectiveOptions.Delta"/> and dual clip <see cref="GrpoObjectiveOptions.DualClip"/>),
    /// or CISPO's and SAPO's terms (see <see cref="LossType"/>), with KL_t by
    /// <see cref="GrpoObjectiveOptions.KlEstimator"/> (default k3 = exp(ref_t − logp_t) − (ref_t − logp_t) − 1);
    /// then aggregated by <see cref="LossType"/>.
    /// The gradient is PyTorch's autograd of those expressions: the clipped surrogate passes −A·dρ/dlogp except where
    /// a clamp is active (A &gt; 0 and ρ &gt; 1 + ε_high, or A &lt; 0 and ρ &lt; 1 − ε_low), where it passes nothing.
    /// With <paramref name="oldLogprobs"/> null (one update per rollout, μ = 1) ρ = 1 and the clipped
    /// surrogate's loss can be 0 while its gradient, −A·m/normaliser, is not.
    /// Padding tokens (mask 0) are not read for values and get gradient 0.
    /// The scalars are read back to the host, so on an asynchronous device this call synchronises.
    /// </summary>
    /// <param name="logprobs">(N, T) per-token log-probs of the completions under the current policy.</param>
    /// <param name="oldLogprobs">(N, T) log-probs under the policy that sampled them, or null to use <paramref name="logprobs"/> detached (ρ = 1).</param>
    /// <param name="refLogprobs">(N, T) log-probs under the reference model; required when β &gt; 0, not read when β = 0.</param>
    /// <param name="advantages">(N) one advantage per completion.</param>
    /// <param name="mask">(N, T) 1 for a completion token, 0 for padding; any other value is an error. The managed CPU backend checks the mask, the advantages and the old log-probs before writing; the ILGPU backend checks them on the device and reports after its kernels ran (with the same messages), leaving <paramref name="dLogprobs"/> unspecified.</param>
    /// <param name="options">Loss type, clipping, β, ratio level.</param>
    /// <param name="dLogprobs">(N, T) output: d loss / d logprobs. Overwritten (it starts the backward pass), 0 at padding.</param>
    /// <param name="entropy">(N, T) the policy's per-token entropies (of softmax(logits / temperature), detached); required when
    /// <see cref="GrpoObjectiveOptions.EntropyCoefficient"/> is not 0 or <see cref="GrpoObjectiveOptions.TopEntropyQuantile"/> &lt; 1;
    /// when given, their masked mean is returned as <see cref="GrpoObjectiveResult.MeanEntropy"/> (padding is never read).</param>
    /// <param name="dEntropy">(N, T) output: d loss / d entropy (the bonus's −c times the aggregation weight, 0 at padding), for the
    /// gather backward; required when <see cref="GrpoObjectiveOptions.EntropyCoefficient"/> is not 0, not written otherwise.</param>
    /// <returns>The loss and the metrics.</returns>
    /// <exception cref="ArgumentException">A shape, an option or the mask is not acceptable; the message names it.</exception>
    GrpoObjectiveResult GrpoObjective(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy = null, Tensor<float>? dEntropy = null);
    /// <summary>
    /// <see cref="GrpoObjective"/> without the read back: the loss, the metrics and the input checks stay on the device in
    /// <paramref name="scalars"/> (<see cref="ObjectiveScalars"/>' layout), so a training step can queue every micro-batch and
    /// update and read them all once (<see cref="UpdateGate"/> decides each update from them on the device). On the ILGPU
    /// backend a bad mask, advantage or old log-prob is only reported there (<see cref="ObjectiveScalars.ThrowOnBadInputs"/>
    /// raises its error); the managed backend, where reading is free, raises it before its work as <see cref="GrpoObjective"/> does.
    /// Entropy masking (<see cref="GrpoObjectiveOptions.TopEntropyQuantile"/> &lt; 1) finds its quantile on the device too, and a
    /// non-finite entropy at a completion token is reported the same way.
    /// </summary>
    /// <param name="logprobs">As <see cref="GrpoObjective"/>.</param>
    /// <param name="oldLogprobs">As <see cref="GrpoObjective"/>.</param>
    /// <param name="refLogprobs">As <see cref="GrpoObjective"/>.</param>
    /// <param name="advantages">As <see cref="GrpoObjective"/>.</param>
    /// <param name="mask">As <see cref="GrpoObjective"/>.</param>
    /// <param name="options">As <see cref="GrpoObjective"/>.</param>
    /// <param name="dLogprobs">As <see cref="GrpoObjective"/>.</param>
    /// <param name="entropy">As <see cref="GrpoObjective"/>.</param>
    /// <param name="dEntropy">As <see cref="GrpoObjective"/>.</param>
    /// <param name="scalars">(<see cref="ObjectiveScalars.Count"/>) output on the device.</param>
    void GrpoObjectiveToDevice(
        Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy, Tensor<float>? dEntropy, Tensor<float> scalars);
}

/// <summary>Argument checks for <see cref="IGrpoOperations.GrpoObjective"/>, shared by both backends.</summary>
internal static class GrpoObjectiveValidation
{
    /// <summary>Checks shapes, devices and options; returns the scalar arguments both backends compute with.</summary>
    public static ObjectiveParameters Validate(
        Device device, Tensor<float> logprobs, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs,
        Tensor<float> advantages, Tensor<float> mask, GrpoObjectiveOptions options, Tensor<float> dLogprobs,
        Tensor<float>? entropy, Tensor<float>? dEntropy, bool checkFiniteInputs = true)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Guard.OnDevice(logprobs, device, nameof(logprobs));
        Guard.Rank(logprobs, nameof(logprobs), 2, "(completions, tokens)");
        int n = logprobs.Shape[0], t = logprobs.Shape[1];
        if (oldLogprobs is not null)
        {
            Guard.OnDevice(oldLogprobs, device, nameof(oldLogprobs));
            Guard.Shape(oldLogprobs, nameof(oldLogprobs), n, t);
        }
        if (options.Beta > 0)
        {
            if (refLogprobs is null)
                throw new ArgumentNullException(nameof(refLogprobs),
                    $"'{nameof(refLogprobs)}' is null but Beta = {options.Beta}: pass the reference model's log-probs, or set Beta = 0 to train without a KL penalty.");
            Guard.OnDevice(refLogprobs, device, nameof(refLogprobs));
            Guard.Shape(refLogprobs, nameof(refLogprobs), n, t);
        }
        Guard.OnDevice(advantages, device, nameof(advantages));
        Guard.Shape(advantages, nameof(advantages), n);
        Guard.OnDevice(mask, device, nameof(mask));
        Guard.Shape(mask, nameof(mask), n, t);
        Guard.OnDevice(dLogprobs, device, nameof(dLogprobs));
        Guard.Shape(dLogprobs, nameof(dLogprobs), n, t);
        if (options.LossType == LossType.DrGrpo && options.MaxCompletionLength < t)
            throw new ArgumentOutOfRangeException(nameof(options.MaxCompletionLength), options.MaxCompletionLength,
                $"'{nameof(options.MaxCompletionLength)}' = {options.MaxCompletionLength} is shorter than the {t} tokens per completion in '{nameof(logprobs)}'; set it to the generation length limit.");
        bool entropyMask = options.TopEntropyQuantile < 1;
        if (options.EntropyCoefficient != 0 || entropyMask)
        {
            if (entropy is null)
                throw new ArgumentNullException(nameof(entropy),
                    $"'{nameof(entropy)}' is null but {(entropyMask ? $"TopEntropyQuantile = {options.TopEntropyQuantile}" : $"EntropyCoefficient = {options.EntropyCoefficient}")}: " +
                    "pass the policy's per-token entropies (FusedGrpoLoss does), or turn the entropy options off.");
        }
        if (options.EntropyCoefficient != 0)
        {
            if (dEntropy is null)
                throw new ArgumentNullException(nameof(dEntropy),
                    $"'{nameof(dEntropy)}' is null but EntropyCoefficient = {options.EntropyCoefficient}: pass an (N, T) tensor for the entropy bonus's gradient.");
            Guard.OnDevice(dEntropy, device, nameof(dEntropy));
            Guard.Shape(dEntropy, nameof(dEntropy), n, t);
        }
        if (entropy is not null)
        {
            Guard.OnDevice(entropy, device, nameof(entropy));
            Guard.Shape(entropy, nameof(entropy), n, t);
        }
        if (checkFiniteInputs) FiniteInputs(oldLogprobs, advantages, mask, t);
        return new ObjectiveParameters(n, t, LossTypeId(options.LossType),
            options.ImportanceSamplingLevel == ImportanceSamplingLevel.Sequence ? 1 : 0,
            1f - options.EpsilonLow, 1f + options.EffectiveEpsilonHigh, options.Beta, options.MaxCompletionLength,
            CispoBound: options.EffectiveEpsilonHigh,
            Delta: options.Delta ?? float.PositiveInfinity,         // +∞: min(ρ, ∞) = ρ, the plain surrogate
            DualClip: options.DualClip ?? float.PositiveInfinity,   // +∞: −A·∞ never wins the min
            options.SapoTemperaturePositive, options.SapoTemperatureNegative,
            options.KlEstimator switch { KlEstimator.K1 => ObjectiveMath.K1, KlEstimator.K2 => ObjectiveMath.K2, _ => ObjectiveMath.K3 },
            options.EntropyCoefficient, entropyMask ? 1 : 0);
    }

    /// <summary>The kernels' id of a loss type (<see cref="ObjectiveMath.Grpo"/> ..).</summary>
    private static int LossTypeId(LossType lossType) => lossType switch
    {
        LossType.Grpo => ObjectiveMath.Grpo,
        LossType.Bnpo => ObjectiveMath.Bnpo,
        LossType.Dapo => ObjectiveMath.Dapo,
        LossType.DrGrpo => ObjectiveMath.DrGrpo,
        LossType.Cispo => ObjectiveMath.Cispo,
        LossType.Sapo => ObjectiveMath.Sapo,
        _ => throw new ArgumentOutOfRangeException(nameof(lossType), lossType, "unknown loss type"),
    };

    /// <summary>
    /// Refuses NaN or infinite advantages, and old log-probs that are not finite at completion tokens
    /// (padding is never read): they would turn the whole loss into NaN. Reads the (N) and (N, T)
    /// tensors on the host: free on the managed backend; the ILGPU backend counts them on the device instead.
    /// </summary>
    private static void FiniteInputs(Tensor<float>? oldLogprobs, Tensor<float> advantages, Tensor<float> mask, int t)
    {
        float[] a = advantages.ToArray();
        for (int i = 0; i < a.Length; i++)
            if (!float.IsFinite(a[i])) throw NonFiniteAdvantage(i, a[i]);
        if (oldLogprobs is null) return;
        float[] old = oldLogprobs.ToArray(), m = mask.ToArray();
        for (int k = 0; k < old.Length; k++)
            if (m[k] == 1 && !float.IsFinite(old[k])) // a mask value other than 0 or 1 is reported by the mask check
                throw NonFiniteOldLogprob(k / t, k % t, old[k]);
    }

    /// <summary>The error for advantage <paramref name="index"/> holding <paramref name="value"/> (both backends raise it).</summary>
    public static ArgumentException NonFiniteAdvantage(int index, float value) =>
        new($"'advantages'[{index}] is {value}; advantages must be finite (a missing reward gets advantage 0, see ComputeAdvantages).", "advantages");

    /// <summary>The error for an old log-prob at a completion token that is not finite (both backends raise it).</summary>
    public static ArgumentException NonFiniteOldLogprob(int row, int column, float value) =>
        new($"'oldLogprobs'[{row}, {column}] is {value}; log-probs must be finite. " +
            "Pass the sampling policy's log-probs, or null when each rollout is used for one update.", "oldLogprobs");

    /// <summary>The error for an entropy at a completion token that is not finite, under entropy masking (both backends raise it).</summary>
    public static ArgumentException NonFiniteEntropy(int row, int column, float value) =>
        new($"'entropy'[{row}, {column}] is {value} at a completion token; entropies must be finite for entropy masking.", "entropy");

    /// <summary>The quantile entropy masking takes: q = 1 − top_entropy_quantile, in double as the threshold is computed.</summary>
    public static double EntropyQuantileOf(GrpoObjectiveOptions options) => 1.0 - options.TopEntropyQuantile;

    /// <summary>The error for a mask that holds values other than 0 and 1 (both backends count them the same way).</summary>
    public static ArgumentException BadMask(long badValues, int firstBadRow) =>
        new($"'mask' holds {badValues} value(s) that are neither 0 nor 1 (the first in completion {firstBadRow}); use 1 for completion tokens and 0 for padding.",
            "mask");
}

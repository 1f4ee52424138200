namespace Grpo.Native.References;

/// <summary>Options of the reference objective, in TRL's (and for the dual clip and the KL estimator, verl's) words.</summary>
/// <param name="LossType">"grpo", "bnpo", "dapo", "dr_grpo", "cispo" or "sapo".</param>
/// <param name="SequenceLevel">GSPO's sequence-level ratio instead of per-token ratios.</param>
public sealed record GrpoReferenceOptions(
    string LossType, double EpsilonLow, double EpsilonHigh, double Beta, bool SequenceLevel, int MaxCompletionLength)
{
    /// <summary>TRL's <c>sapo_temperature_pos</c>.</summary>
    public double SapoTemperaturePositive { get; init; } = 1.0;

    /// <summary>TRL's <c>sapo_temperature_neg</c>.</summary>
    public double SapoTemperatureNegative { get; init; } = 1.05;

    /// <summary>TRL's <c>delta</c> (two-sided clipping); null is off.</summary>
    public double? Delta { get; init; }

    /// <summary>verl's <c>clip_ratio_c</c> (dual clip); null is off.</summary>
    public double? DualClip { get; init; }

    /// <summary>"k1", "k2" or "k3" (verl's <c>kl_penalty</c> names; k3 without verl's clamp, as TRL).</summary>
    public string KlEstimator { get; init; } = "k3";

    /// <summary>verl's <c>entropy_coeff</c>: loss = pg_loss − entropy_coeff · agg_loss(entropy); 0 is off.</summary>
    public double EntropyCoefficient { get; init; }

    /// <summary>TRL's <c>top_entropy_quantile</c>; 1 is off.</summary>
    public double TopEntropyQuantile { get; init; } = 1;
}

/// <summary>What <see cref="GrpoObjectiveReference.Compute"/> returns.</summary>
/// <param name="AbsoluteLossScale">Σ weight·|ℓ_t|: the size of the loss's terms.</param>
/// <param name="LossTermScale">Σ weight·(|policy term| + β·|KL_t|): the size of the parts each ℓ_t is summed from (fp32 rounding is proportional to it however much they cancel).</param>
/// <param name="GradientScale">(N, T) per element, the sum of the magnitudes of the terms its gradient is summed from.</param>
/// <param name="KlScale">Masked mean of |KL_t| (k1 can be negative, so its mean can cancel).</param>
public sealed record GrpoReferenceResult(
    double Loss, double ClipRatioLow, double ClipRatioHigh, double ClipRatioRegion, double MeanKl,
    double AbsoluteLossScale, double[] Gradient, double DualClipRatio = 0, double CispoClipRatio = 0,
    double LossTermScale = 0, double[]? GradientScale = null, double KlScale = 0)
{
    /// <summary>(N, T) d loss / d entropy (the bonus's −c times the aggregation weight); null without entropies.</summary>
    public double[]? EntropyGradient { get; init; }

    /// <summary>TRL's entropy threshold (−∞ when masking is off).</summary>
    public double EntropyThreshold { get; init; } = double.NegativeInfinity;
}

/// <summary>
/// TRL's GRPO loss in double precision, written from the definitions, with the gradient PyTorch's
/// autograd gives (min splits ties evenly; clamp passes gradient on its closed interval; detach
/// passes none). Each per-token expression is built from <see cref="Dual"/> numbers that carry their
/// derivative in ρ, operation by operation as the Python source writes it, so the gradient is the
/// autograd of exactly that expression. Padding tokens (mask 0) are skipped, never read. Naive on purpose.
/// </summary>
public static class GrpoObjectiveReference
{
    /// <summary>
    /// TRL's get_high_entropy_mask threshold: torch.quantile(entropies[mask], 1 − top_entropy_quantile) with linear
    /// interpolation (entropy_mask = (entropies * mask &gt;= entropy_threshold) &amp; mask); +∞ with no loss token (all false).
    /// </summary>
    /// <param name="entropy">(N·T) entropies; only loss tokens are read.</param>
    /// <param name="mask">(N·T) nonzero for a loss token.</param>
    /// <param name="topEntropyQuantile">The fraction of highest-entropy tokens kept, in [0, 1].</param>
    public static double EntropyThreshold(double[] entropy, double[] mask, double topEntropyQuantile)
    {
        var sorted = Enumerable.Range(0, mask.Length).Where(k => mask[k] != 0).Select(k => entropy[k]).OrderBy(x => x).ToArray();
        if (sorted.Length == 0) return double.PositiveInfinity;
        double position = (1 - topEntropyQuantile) * (sorted.Length - 1);
        int lo = (int)Math.Floor(position), hi = (int)Math.Ceiling(position);
        return sorted[lo] + (position - lo) * (sorted[hi] - sorted[lo]);
    }

    /// <summary>A value and its derivative in ρ, combined by the rules PyTorch's autograd applies.</summary>
    private readonly record struct Dual(double Value, double DRho)
    {
        public static Dual Constant(double value) => new(value, 0);
        public static Dual operator *(Dual x, double c) => new(x.Value * c, x.DRho * c);
        public static Dual operator -(Dual x) => new(-x.Value, -x.DRho);

        /// <summary>torch.min(a, b): the smaller one's gradient; a tie gives each half.</summary>
        public static Dual Min(Dual a, Dual b) =>
            a.Value < b.Value ? a : a.Value > b.Value ? b : new Dual(a.Value, (a.DRho + b.DRho) / 2);

        /// <summary>torch.clamp(x, low, high): gradient 1 on the closed interval [low, high], 0 outside.</summary>
        public static Dual Clamp(Dual x, double low, double high) =>
            x.Value < low ? Constant(low) : x.Value > high ? Constant(high) : x;
    }

    /// <param name="logp">(N, T) current log-probs.</param>
    /// <param name="old">(N, T) old log-probs, or null for "logp detached" (ratio 1).</param>
    /// <param name="reference">(N, T) reference log-probs; only read when Beta &gt; 0.</param>
    /// <param name="advantages">(N).</param>
    /// <param name="mask">(N, T) 0 or 1.</param>
    /// <param name="entropy">(N, T) the policy's entropies, needed for the entropy bonus and mask; null when both are off.</param>
    public static GrpoReferenceResult Compute(
        double[] logp, double[]? old, double[]? reference, double[] advantages, double[] mask, int n, int t,
        GrpoReferenceOptions options, double[]? entropy = null)
    {
        double threshold = options.TopEntropyQuantile < 1 ? EntropyThreshold(entropy!, mask, options.TopEntropyQuantile) : double.NegativeInfinity;
        double lower = 1 - options.EpsilonLow, upper = 1 + options.EpsilonHigh;
        double Old(int k) => old is null ? logp[k] : old[k];

        var tokens = new double[n];
        double totalTokens = 0;
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < t; c++) tokens[i] += mask[i * t + c];
            totalTokens += tokens[i];
        }

        // Ratios, and dρ_{i,s}/dlogp_{i,c} as a function of (i, s, c).
        var rho = new double[n * t];
        for (int i = 0; i < n; i++)
        {
            double sequenceLogRatio = 0;
            for (int c = 0; c < t; c++)
                if (mask[i * t + c] != 0) sequenceLogRatio += logp[i * t + c] - Old(i * t + c);
            sequenceLogRatio /= Math.Max(tokens[i], 1);
            for (int c = 0; c < t; c++)
                rho[i * t + c] = options.SequenceLevel ? Math.Exp(sequenceLogRatio) : Math.Exp(logp[i * t + c] - Old(i * t + c));
        }
        double DRhoDLogp(int i, int s, int c) =>
            options.SequenceLevel ? rho[i * t + s] * mask[i * t + c] / Math.Max(tokens[i], 1)
            : s == c ? rho[i * t + c] : 0;

        // d loss / d ℓ_{i,t}: the aggregation's weight. TRL: sapo as grpo, cispo as dapo.
        double Weight(int i, int c) => mask[i * t + c] * options.LossType switch
        {
            "grpo" or "sapo" => 1.0 / Math.Max(tokens[i], 1) / n,
            "bnpo" or "dapo" or "cispo" => 1.0 / Math.Max(totalTokens, 1),
            "dr_grpo" => 1.0 / (n * (double)options.MaxCompletionLength),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.LossType, "grpo, bnpo, dapo, dr_grpo, cispo or sapo"),
        };

        double loss = 0, absoluteScale = 0, termScale = 0, low = 0, high = 0, dual = 0, cispo = 0, kl = 0, absKl = 0;
        var dLossDRho = new double[n * t]; // weighted by the aggregation
        var gradient = new double[n * t];
        double[]? entropyGradient = entropy is null ? null : new double[n * t];
        var gradientScale = new double[n * t];
        for (int i = 0; i < n; i++)
        {
            double a = advantages[i];
            for (int c = 0; c < t; c++)
            {
                int k = i * t + c;
                if (mask[k] == 0) continue;
                var coef1 = new Dual(rho[k], 1); // ρ, with dρ/dρ = 1
                Dual tokenLoss;
                double dLossDLogpDirect = 0;
                switch (options.LossType)
                {
                    case "cispo":
                    {
                        // clamped_ratios = torch.clamp(coef_1, max=self.epsilon_high).detach()
                        // per_token_loss = -clamped_ratios * advantages * per_token_logps
                        double clampedRatio = Math.Min(rho[k], options.EpsilonHigh); // detached: no ρ derivative
                        tokenLoss = Dual.Constant(-clampedRatio * a * logp[k]);
                        dLossDLogpDirect = -clampedRatio * a;
                        // is_cispo_clipped = (coef_1 > self.epsilon_high) & (advantages > 0)
                        if (rho[k] > options.EpsilonHigh && a > 0) cispo++;
                        break;
                    }
                    case "sapo":
                    {
                        // get_sapo_token_loss(ρ, τ) = sigmoid(τ (ρ − 1)) · 4 / τ; per_token_loss = −that · A,
                        // τ = sapo_temperature_pos where A > 0, sapo_temperature_neg elsewhere.
                        double tau = a > 0 ? options.SapoTemperaturePositive : options.SapoTemperatureNegative;
                        double sigmoid = 1 / (1 + Math.Exp(-tau * (rho[k] - 1)));
                        var gate = new Dual(sigmoid * 4 / tau, sigmoid * (1 - sigmoid) * tau * 4 / tau);
                        tokenLoss = -(gate * a);
                        break;
                    }
                    default:
                    {
                        // coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
                        // if delta is not None: coef_1 = torch.clamp(coef_1, max=delta)
                        // per_token_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
                        var coef2 = Dual.Clamp(coef1, lower, upper);
                        if (options.Delta is { } delta) coef1 = Dual.Clamp(coef1, double.NegativeInfinity, delta);
                        tokenLoss = -Dual.Min(coef1 * a, coef2 * a);
                        // TRL's metrics, on the δ-capped coef_1.
                        if (coef1.Value < lower && a < 0) low++;
                        if (coef1.Value > upper && a > 0) high++;
                        // verl: pg_losses3 = -advantages * clip_ratio_c; clip_pg_losses2 = torch.min(pg_losses3, clip_pg_losses1);
                        // pg_losses = torch.where(advantages < 0, clip_pg_losses2, clip_pg_losses1);
                        // pg_clipfrac_lower = masked_mean(torch.gt(clip_pg_losses1, pg_losses3) * (advantages < 0))
                        if (options.DualClip is { } clipC && a < 0)
                        {
                            var pgLosses3 = Dual.Constant(-a * clipC);
                            if (tokenLoss.Value > pgLosses3.Value) dual++;
                            tokenLoss = Dual.Min(pgLosses3, tokenLoss);
                        }
                        break;
                    }
                }
                // if entropy_mask is not None: per_token_loss = per_token_loss * entropy_mask (before the KL is added)
                if (entropy is not null && !(entropy[k] >= threshold))
                {
                    tokenLoss = tokenLoss * 0.0;
                    dLossDLogpDirect = 0;
                }
                double value = tokenLoss.Value;
                termScale += Weight(i, c) * Math.Abs(value);
                if (options.EntropyCoefficient != 0)
                {
                    // verl: policy_loss = pg_loss − entropy_coeff · agg_loss(entropy, response_mask, loss_agg_mode)
                    value -= options.EntropyCoefficient * entropy![k];
                    termScale += Weight(i, c) * Math.Abs(options.EntropyCoefficient * entropy[k]);
                    entropyGradient![k] = -options.EntropyCoefficient * Weight(i, c);
                }
                dLossDRho[k] = tokenLoss.DRho * Weight(i, c);
                gradient[k] += Weight(i, c) * dLossDLogpDirect;
                gradientScale[k] += Math.Abs(Weight(i, c) * dLossDLogpDirect);

                if (options.Beta > 0)
                {
                    // verl's kl_penalty(logprob, ref_logprob): k1 = logprob − ref, k2 = ½ (logprob − ref)²,
                    // k3 = exp(ref − logprob) − (ref − logprob) − 1 (TRL's, without verl's clamp).
                    double diff = logp[k] - reference![k];
                    (double tokenKl, double dKl) = options.KlEstimator switch
                    {
                        "k1" => (diff, 1.0),
                        "k2" => (0.5 * diff * diff, diff),
                        "k3" => (Math.Exp(-diff) + diff - 1, 1 - Math.Exp(-diff)),
                        _ => throw new ArgumentOutOfRangeException(nameof(options), options.KlEstimator, "k1, k2 or k3"),
                    };
                    value += options.Beta * tokenKl;
                    kl += tokenKl;
                    absKl += Math.Abs(tokenKl);
                    termScale += Weight(i, c) * options.Beta * Math.Abs(tokenKl);
                    gradient[k] += Weight(i, c) * options.Beta * dKl;
                    gradientScale[k] += Math.Abs(Weight(i, c) * options.Beta * dKl);
                }
                loss += Weight(i, c) * value;
                absoluteScale += Weight(i, c) * Math.Abs(value);
            }
        }

        // Chain rule through the ratios: every token s of row i whose ratio depends on logp_{i,c}.
        for (int i = 0; i < n; i++)
            for (int c = 0; c < t; c++)
                for (int s = 0; s < t; s++)
                    if (dLossDRho[i * t + s] != 0)
                    {
                        gradient[i * t + c] += dLossDRho[i * t + s] * DRhoDLogp(i, s, c);
                        gradientScale[i * t + c] += Math.Abs(dLossDRho[i * t + s] * DRhoDLogp(i, s, c));
                    }

        double denominator = Math.Max(totalTokens, 1);
        double clipDenominator = denominator;
        if (options.SequenceLevel)
        {
            // GSPO: coef_1 has shape (B, 1), and TRL's masked_batch_mean(x) returns x.mean() when x.shape[1] == 1, so
            // the clip metrics are fractions of the completions, each judged by its own ratio; an empty completion's
            // log-ratio mean is 0 / clamp(0, min=1) = 0, so its ratio is 1.
            low = high = dual = cispo = 0;
            for (int i = 0; i < n; i++)
            {
                double logRatio = 0;
                for (int c = 0; c < t; c++)
                    if (mask[i * t + c] != 0) logRatio += logp[i * t + c] - Old(i * t + c);
                double ratio = Math.Exp(logRatio / Math.Max(tokens[i], 1)), a = advantages[i];
                switch (options.LossType)
                {
                    case "cispo":
                        if (ratio > options.EpsilonHigh && a > 0) cispo++;
                        break;
                    case "sapo":
                        break;
                    default:
                        double capped = options.Delta is { } delta ? Math.Min(ratio, delta) : ratio;
                        if (capped < lower && a < 0) low++;
                        if (capped > upper && a > 0) high++;
                        double surrogate = -Math.Min(capped * a, Math.Clamp(ratio, lower, upper) * a);
                        if (options.DualClip is { } clipC && a < 0 && surrogate > -a * clipC) dual++;
                        break;
                }
            }
            clipDenominator = n;
        }
        return new GrpoReferenceResult(loss, low / clipDenominator, high / clipDenominator, (low + high) / clipDenominator,
            kl / denominator, absoluteScale, gradient, dual / clipDenominator, cispo / clipDenominator, termScale, gradientScale, absKl / denominator)
        {
            EntropyGradient = entropyGradient,
            EntropyThreshold = threshold,
        };
    }
}

namespace Grpo.Native.References;

/// <summary>Options of the reference objective, in TRL's words.</summary>
/// <param name="LossType">"grpo", "bnpo", "dapo" or "dr_grpo".</param>
/// <param name="SequenceLevel">GSPO's sequence-level ratio instead of per-token ratios.</param>
public sealed record GrpoReferenceOptions(
    string LossType, double EpsilonLow, double EpsilonHigh, double Beta, bool SequenceLevel, int MaxCompletionLength);

/// <summary>What <see cref="GrpoObjectiveReference.Compute"/> returns.</summary>
public sealed record GrpoReferenceResult(
    double Loss, double ClipRatioLow, double ClipRatioHigh, double ClipRatioRegion, double MeanKl,
    double AbsoluteLossScale, double[] Gradient);

/// <summary>
/// TRL's GRPO loss in double precision, written from the definitions, with the gradient PyTorch's
/// autograd gives (min splits ties evenly; clamp passes gradient on its closed interval).
/// Padding tokens (mask 0) are skipped, never read. Naive on purpose.
/// </summary>
public static class GrpoObjectiveReference
{
    /// <param name="logp">(N, T) current log-probs.</param>
    /// <param name="old">(N, T) old log-probs, or null for "logp detached" (ratio 1).</param>
    /// <param name="reference">(N, T) reference log-probs; only read when Beta &gt; 0.</param>
    /// <param name="advantages">(N).</param>
    /// <param name="mask">(N, T) 0 or 1.</param>
    public static GrpoReferenceResult Compute(
        double[] logp, double[]? old, double[]? reference, double[] advantages, double[] mask, int n, int t,
        GrpoReferenceOptions options)
    {
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

        // d loss / d ℓ_{i,t}: the aggregation's weight.
        double Weight(int i, int c) => mask[i * t + c] * options.LossType switch
        {
            "grpo" => 1.0 / Math.Max(tokens[i], 1) / n,
            "bnpo" or "dapo" => 1.0 / Math.Max(totalTokens, 1),
            "dr_grpo" => 1.0 / (n * (double)options.MaxCompletionLength),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.LossType, "grpo, bnpo, dapo or dr_grpo"),
        };

        double loss = 0, absoluteScale = 0, low = 0, high = 0, kl = 0;
        var dLossDRho = new double[n * t]; // weighted by the aggregation
        var gradient = new double[n * t];
        for (int i = 0; i < n; i++)
        {
            double a = advantages[i];
            for (int c = 0; c < t; c++)
            {
                int k = i * t + c;
                if (mask[k] == 0) continue;
                double r = rho[k];
                double clamped = Math.Clamp(r, lower, upper);
                double unclippedTerm = r * a, clippedTerm = clamped * a;
                double tokenLoss = -Math.Min(unclippedTerm, clippedTerm);

                // Autograd of −min(u, v): a tie sends half to each side.
                double du = a, dv = a * (r >= lower && r <= upper ? 1 : 0);
                double dMin = unclippedTerm < clippedTerm ? du : unclippedTerm > clippedTerm ? dv : (du + dv) / 2;
                dLossDRho[k] = -dMin * Weight(i, c);

                if (r < lower && a < 0) low++;
                if (r > upper && a > 0) high++;

                if (options.Beta > 0)
                {
                    double d = reference![k] - logp[k];
                    double tokenKl = Math.Exp(d) - d - 1;
                    tokenLoss += options.Beta * tokenKl;
                    kl += tokenKl;
                    gradient[k] += Weight(i, c) * options.Beta * (1 - Math.Exp(d));
                }
                loss += Weight(i, c) * tokenLoss;
                absoluteScale += Weight(i, c) * Math.Abs(tokenLoss);
            }
        }

        // Chain rule through the ratios: every token s of row i whose ratio depends on logp_{i,c}.
        for (int i = 0; i < n; i++)
            for (int c = 0; c < t; c++)
                for (int s = 0; s < t; s++)
                    if (dLossDRho[i * t + s] != 0) gradient[i * t + c] += dLossDRho[i * t + s] * DRhoDLogp(i, s, c);

        double denominator = Math.Max(totalTokens, 1);
        return new GrpoReferenceResult(loss, low / denominator, high / denominator, (low + high) / denominator,
            kl / denominator, absoluteScale, gradient);
    }
}

namespace Grpo.Native.References;

/// <summary>What <see cref="FusedGrpoLossReference.Compute"/> returns.</summary>
public sealed record FusedGrpoLossReferenceResult(
    GrpoReferenceResult Objective, double[] Logprobs, double MeanEntropy, double[] DHidden, double[] DLmHead,
    double[] DHiddenScale, double[] DLmHeadScale);

/// <summary>
/// The GRPO loss from hidden states in double: the log-softmax-gather reference forward, the
/// objective reference (given the forward's entropies, for the entropy bonus and mask), then the gather
/// reference backward with the objective's gradients in the log-probs and the entropies, and the backward's
/// Σ |term| scales for error bounds on cancelling sums.
/// Nothing fused, nothing chunked: the (N·T, V) logits are built whole.
/// </summary>
public static class FusedGrpoLossReference
{
    /// <param name="hidden">(N·T, C).</param>
    /// <param name="lmHead">(V, C).</param>
    /// <param name="tokens">(N·T) completion tokens.</param>
    /// <param name="mask">(N·T) 0 or 1.</param>
    /// <param name="advantages">(N).</param>
    /// <param name="old">(N·T) or null (μ = 1).</param>
    /// <param name="reference">(N·T) or null (β = 0).</param>
    public static FusedGrpoLossReferenceResult Compute(
        double[] hidden, double[] lmHead, int[] tokens, double[] mask, double[] advantages, double[]? old, double[]? reference,
        int n, int t, int c, int v, double temperature, GrpoReferenceOptions options)
    {
        int m = n * t;
        var forward = LogSoftmaxGatherReference.Forward(hidden, lmHead, tokens, m, c, v, temperature);
        var objective = GrpoObjectiveReference.Compute(forward.Logprobs, old, reference, advantages, mask, n, t, options, forward.Entropy);
        double[]? dEntropy = options.EntropyCoefficient != 0 ? objective.EntropyGradient : null;
        var (dHidden, dLmHead) = LogSoftmaxGatherReference.Backward(hidden, lmHead, tokens, m, c, v, temperature, objective.Gradient, dEntropy);
        var (dHiddenScale, dLmHeadScale) = LogSoftmaxGatherReference.BackwardScales(hidden, lmHead, tokens, m, c, v, temperature,
            objective.Gradient, dEntropy);
        double entropySum = 0, count = 0;
        for (int i = 0; i < m; i++)
        {
            entropySum += forward.Entropy[i] * mask[i];
            count += mask[i];
        }
        return new FusedGrpoLossReferenceResult(objective, forward.Logprobs, entropySum / Math.Max(count, 1), dHidden, dLmHead,
            dHiddenScale, dLmHeadScale);
    }
}

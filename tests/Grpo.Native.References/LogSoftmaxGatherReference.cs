namespace Grpo.Native.References;

/// <summary>
/// Log-softmax-gather from hidden states and the LM head, in double, straight from the maths with
/// the full (M, V) logits materialised: z = h·Wᵀ / T, logp_m = z_{m,y_m} − lse_m,
/// entropy_m = lse_m − Σ_j p_{m,j} z_{m,j}, and the backward
/// dz_{m,j} = g_m (1[j = y_m] − p_{m,j}), dh_m = (1/T) Σ_j dz_{m,j} W_j, dW_j = (1/T) Σ_m dz_{m,j} h_m.
/// </summary>
public static class LogSoftmaxGatherReference
{
    /// <summary>Per-token outputs of the forward.</summary>
    public sealed record ForwardResult(double[] Logprobs, double[] LogSumExp, double[] Entropy);

    /// <summary>z (M, V) = hidden (M, C) · lmHead (V, C)ᵀ / temperature.</summary>
    public static double[][] Logits(double[] hidden, double[] lmHead, int m, int c, int v, double temperature)
    {
        var z = new double[m][];
        for (int i = 0; i < m; i++)
        {
            z[i] = new double[v];
            for (int j = 0; j < v; j++)
            {
                double dot = 0;
                for (int k = 0; k < c; k++) dot += hidden[i * c + k] * lmHead[j * c + k];
                z[i][j] = dot / temperature;
            }
        }
        return z;
    }

    /// <summary>Log-probabilities of the targets, log-sum-exp and entropy per token.</summary>
    public static ForwardResult Forward(double[] hidden, double[] lmHead, int[] targets, int m, int c, int v, double temperature)
    {
        var z = Logits(hidden, lmHead, m, c, v, temperature);
        var logp = new double[m];
        var lse = new double[m];
        var entropy = new double[m];
        for (int i = 0; i < m; i++)
        {
            lse[i] = ReferenceMath.LogSumExp(z[i]);
            logp[i] = z[i][targets[i]] - lse[i];
            double expected = 0;
            for (int j = 0; j < v; j++) expected += Math.Exp(z[i][j] - lse[i]) * z[i][j];
            entropy[i] = lse[i] - expected;
        }
        return new ForwardResult(logp, lse, entropy);
    }

    /// <summary>
    /// Gradients (not accumulated) of a loss whose derivative with respect to logp is <paramref name="dLogprobs"/> and,
    /// when given, with respect to the entropy H is <paramref name="dEntropy"/>: with H = −Σ_j p_j log p_j and
    /// dp_k/dz_j = p_k (1[j = k] − p_j), dH/dz_j = −p_j (log p_j + H).
    /// </summary>
    public static (double[] DHidden, double[] DLmHead) Backward(double[] hidden, double[] lmHead, int[] targets,
        int m, int c, int v, double temperature, double[] dLogprobs, double[]? dEntropy = null)
    {
        var z = Logits(hidden, lmHead, m, c, v, temperature);
        var dHidden = new double[m * c];
        var dLmHead = new double[v * c];
        for (int i = 0; i < m; i++)
        {
            double lse = ReferenceMath.LogSumExp(z[i]);
            double entropy = 0;
            for (int j = 0; j < v; j++) entropy -= Math.Exp(z[i][j] - lse) * (z[i][j] - lse);
            for (int j = 0; j < v; j++)
            {
                double p = Math.Exp(z[i][j] - lse);
                double dz = dLogprobs[i] * ((j == targets[i] ? 1.0 : 0.0) - p);
                if (dEntropy is not null) dz += dEntropy[i] * -p * (z[i][j] - lse + entropy);
                for (int k = 0; k < c; k++)
                {
                    dHidden[i * c + k] += dz * lmHead[j * c + k] / temperature;
                    dLmHead[j * c + k] += dz * hidden[i * c + k] / temperature;
                }
            }
        }
        return (dHidden, dLmHead);
    }

    /// <summary>
    /// The scales of <see cref="Backward"/>'s sums, Σ |term| of each output element, for an error bound that holds
    /// however much the terms cancel (an fp32 sum of n terms is within n·2^-24 of Σ |term|). Each dz term is taken at
    /// the size of the pieces an fp32 evaluation rounds: |g| (1[j = y] + p_j) for the log-prob part and
    /// |e| p_j (|z_j| + 2 |lse| + Σ_k p_k |z_k|) for the entropy part, whose log p_j + H cancels.
    /// </summary>
    public static (double[] DHidden, double[] DLmHead) BackwardScales(double[] hidden, double[] lmHead, int[] targets,
        int m, int c, int v, double temperature, double[] dLogprobs, double[]? dEntropy = null)
    {
        var z = Logits(hidden, lmHead, m, c, v, temperature);
        var dHidden = new double[m * c];
        var dLmHead = new double[v * c];
        for (int i = 0; i < m; i++)
        {
            double lse = ReferenceMath.LogSumExp(z[i]);
            double expectedMagnitude = 0;
            for (int j = 0; j < v; j++) expectedMagnitude += Math.Exp(z[i][j] - lse) * Math.Abs(z[i][j]);
            for (int j = 0; j < v; j++)
            {
                double p = Math.Exp(z[i][j] - lse);
                double dz = Math.Abs(dLogprobs[i]) * ((j == targets[i] ? 1.0 : 0.0) + p);
                if (dEntropy is not null) dz += Math.Abs(dEntropy[i]) * p * (Math.Abs(z[i][j]) + 2 * Math.Abs(lse) + expectedMagnitude);
                for (int k = 0; k < c; k++)
                {
                    dHidden[i * c + k] += dz * Math.Abs(lmHead[j * c + k]) / temperature;
                    dLmHead[j * c + k] += dz * Math.Abs(hidden[i * c + k]) / temperature;
                }
            }
        }
        return (dHidden, dLmHead);
    }

    /// <summary>L = Σ_m weights_m · logp_m, the loss the finite-difference checks differentiate.</summary>
    public static double WeightedLoss(double[] hidden, double[] lmHead, int[] targets, int m, int c, int v,
        double temperature, double[] weights)
    {
        var logp = Forward(hidden, lmHead, targets, m, c, v, temperature).Logprobs;
        double loss = 0;
        for (int i = 0; i < m; i++) loss += weights[i] * logp[i];
        return loss;
    }
}

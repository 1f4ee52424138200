namespace Grpo.Native.References;

/// <summary>
/// Causal grouped-query self-attention over packed sequences, in double, straight from the maths:
/// for every sequence [s, e) and query head h (reading kv head h / (H / KVH)) it builds the full
/// (L, L) score matrix S_ij = scale · q_i·k_j, masks j &gt; i with −∞, takes a row softmax P and
/// writes O = P V and lse_i = log Σ_j exp S_ij. The backward is the textbook chain rule through
/// those matrices: dP = dO Vᵀ, dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik), dQ = scale dS K,
/// dK = scale dSᵀ Q, dV = Pᵀ dO, with kv-head gradients summed over the query heads sharing them.
/// Layouts: q, o (M, H, D); k, v (M, KVH, D); lse (M, H).
/// </summary>
public static class AttentionReference
{
    /// <summary>Output and log-sum-exp of the forward.</summary>
    public sealed record ForwardResult(double[] Output, double[] LogSumExp);

    /// <summary>Gradients (not accumulated) of a loss whose derivative with respect to the output is dOutput.</summary>
    public sealed record Gradients(double[] DQuery, double[] DKey, double[] DValue);

    /// <summary>The causal softmax P (L, L) of one sequence and head, and its log-sum-exp per row.</summary>
    private static (double[,] P, double[] Lse) Probabilities(double[] q, double[] k, int start, int length,
        int h, int kvh, int d, int head, double scale)
    {
        int kvHead = head / (h / kvh);
        var s = new double[length, length];
        for (int a = 0; a < length; a++)
            for (int c = 0; c < length; c++)
            {
                if (c > a) { s[a, c] = double.NegativeInfinity; continue; }
                double dot = 0;
                for (int e = 0; e < d; e++) dot += q[((start + a) * h + head) * d + e] * k[((start + c) * kvh + kvHead) * d + e];
                s[a, c] = scale * dot;
            }
        var p = new double[length, length];
        var lse = new double[length];
        for (int a = 0; a < length; a++)
        {
            var row = new double[length];
            for (int c = 0; c < length; c++) row[c] = s[a, c];
            lse[a] = ReferenceMath.LogSumExp(row);
            for (int c = 0; c < length; c++) p[a, c] = Math.Exp(s[a, c] - lse[a]);
        }
        return (p, lse);
    }

    /// <summary>The forward: output (M, H, D) and log-sum-exp (M, H).</summary>
    public static ForwardResult Forward(double[] q, double[] k, double[] v, int[] seqStarts,
        int m, int h, int kvh, int d, double scale)
    {
        var output = new double[m * h * d];
        var lse = new double[m * h];
        for (int b = 0; b + 1 < seqStarts.Length; b++)
        {
            int start = seqStarts[b], length = seqStarts[b + 1] - start;
            for (int head = 0; head < h; head++)
            {
                int kvHead = head / (h / kvh);
                var (p, rowLse) = Probabilities(q, k, start, length, h, kvh, d, head, scale);
                for (int a = 0; a < length; a++)
                {
                    lse[(start + a) * h + head] = rowLse[a];
                    for (int e = 0; e < d; e++)
                    {
                        double sum = 0;
                        for (int c = 0; c < length; c++) sum += p[a, c] * v[((start + c) * kvh + kvHead) * d + e];
                        output[((start + a) * h + head) * d + e] = sum;
                    }
                }
            }
        }
        return new ForwardResult(output, lse);
    }

    /// <summary>The backward, recomputing P; returns fresh gradients (callers add any starting values).</summary>
    public static Gradients Backward(double[] q, double[] k, double[] v, double[] dOutput, int[] seqStarts,
        int m, int h, int kvh, int d, double scale)
    {
        var dq = new double[m * h * d];
        var dk = new double[m * kvh * d];
        var dv = new double[m * kvh * d];
        for (int b = 0; b + 1 < seqStarts.Length; b++)
        {
            int start = seqStarts[b], length = seqStarts[b + 1] - start;
            for (int head = 0; head < h; head++)
            {
                int kvHead = head / (h / kvh);
                var (p, _) = Probabilities(q, k, start, length, h, kvh, d, head, scale);
                var dp = new double[length, length];
                for (int a = 0; a < length; a++)
                    for (int c = 0; c < length; c++)
                    {
                        double dot = 0;
                        for (int e = 0; e < d; e++) dot += dOutput[((start + a) * h + head) * d + e] * v[((start + c) * kvh + kvHead) * d + e];
                        dp[a, c] = dot;
                    }
                for (int a = 0; a < length; a++)
                {
                    // Softmax Jacobian: dS_ac = P_ac (dP_ac − Σ_x P_ax dP_ax).
                    double expected = 0;
                    for (int c = 0; c < length; c++) expected += p[a, c] * dp[a, c];
                    for (int c = 0; c < length; c++)
                    {
                        double ds = p[a, c] * (dp[a, c] - expected);
                        for (int e = 0; e < d; e++)
                        {
                            int qa = ((start + a) * h + head) * d + e, kc = ((start + c) * kvh + kvHead) * d + e;
                            dq[qa] += scale * ds * k[kc];
                            dk[kc] += scale * ds * q[qa];
                            dv[kc] += p[a, c] * dOutput[qa];
                        }
                    }
                }
            }
        }
        return new Gradients(dq, dk, dv);
    }

    /// <summary>L = Σ weights ⊙ output, the loss the finite-difference checks differentiate.</summary>
    public static double WeightedLoss(double[] q, double[] k, double[] v, int[] seqStarts,
        int m, int h, int kvh, int d, double scale, double[] weights)
    {
        var output = Forward(q, k, v, seqStarts, m, h, kvh, d, scale).Output;
        double loss = 0;
        for (int i = 0; i < output.Length; i++) loss += weights[i] * output[i];
        return loss;
    }
}

namespace Grpo.Native.References;

/// <summary>
/// LayerNorm (torch.nn.LayerNorm: biased variance) and RMSNorm (Hugging Face's LlamaRMSNorm) over the
/// last dimension of (M, C) rows, in double, straight from the definitions. The backward is written
/// from the Jacobian of the normalised row, ∂n_j/∂x_k, without the simplifications a fast backward
/// uses, so it checks those independently:
/// <list type="bullet">
/// <item>LayerNorm: μ = (1/C) Σ x, σ² = (1/C) Σ (x − μ)², s = 1/√(σ² + ε), n_j = (x_j − μ)·s,
/// y_j = n_j·w_j + b_j, and ∂n_j/∂x_k = s·(δ_jk − 1/C) − (x_j − μ)·s³·(x_k − μ)/C.</item>
/// <item>RMSNorm: q = (1/C) Σ x², r = 1/√(q + ε), n_j = x_j·r, y_j = n_j·w_j, and
/// ∂n_j/∂x_k = r·δ_jk − x_j·r³·x_k/C.</item>
/// </list>
/// With g_j = w_j·dy_j: dx_k = Σ_j g_j ∂n_j/∂x_k; dw_j = Σ_rows dy_j·n_j; db_j = Σ_rows dy_j.
/// </summary>
public static class NormalizationReference
{
    /// <summary>LayerNorm forward results: output (M, C), mean (M), rstd (M).</summary>
    public sealed record LayerNormResult(double[] Output, double[] Mean, double[] Rstd);

    /// <summary>RMSNorm forward results: output (M, C), rstd (M).</summary>
    public sealed record RmsNormResult(double[] Output, double[] Rstd);

    /// <summary>Gradients (not accumulated): dInput (M, C), dWeight (C), dBias (C; zeros for RMSNorm).</summary>
    public sealed record Gradients(double[] DInput, double[] DWeight, double[] DBias);

    /// <summary>LayerNorm of every row of x (M, C).</summary>
    public static LayerNormResult LayerNormForward(double[] x, double[] weight, double[] bias, int m, int c, double epsilon)
    {
        var output = new double[m * c];
        var mean = new double[m];
        var rstd = new double[m];
        for (int i = 0; i < m; i++)
        {
            var (mu, s) = LayerNormStatistics(x, i, c, epsilon);
            mean[i] = mu;
            rstd[i] = s;
            for (int j = 0; j < c; j++)
                output[i * c + j] = (x[i * c + j] - mu) * s * weight[j] + bias[j];
        }
        return new LayerNormResult(output, mean, rstd);
    }

    /// <summary>Gradients of a loss whose derivative with respect to the LayerNorm output is dOutput (M, C).</summary>
    public static Gradients LayerNormBackward(double[] x, double[] weight, double[] dOutput, int m, int c, double epsilon)
    {
        var dx = new double[m * c];
        var dw = new double[c];
        var db = new double[c];
        for (int i = 0; i < m; i++)
        {
            var (mu, s) = LayerNormStatistics(x, i, c, epsilon);
            for (int k = 0; k < c; k++)
            {
                double sum = 0;
                for (int j = 0; j < c; j++)
                {
                    double delta = j == k ? 1 : 0;
                    double dnj_dxk = s * (delta - 1.0 / c)
                                     - (x[i * c + j] - mu) * s * s * s * (x[i * c + k] - mu) / c;
                    sum += weight[j] * dOutput[i * c + j] * dnj_dxk;
                }
                dx[i * c + k] = sum;
            }
            for (int j = 0; j < c; j++)
            {
                double n = (x[i * c + j] - mu) * s;
                dw[j] += dOutput[i * c + j] * n;
                db[j] += dOutput[i * c + j];
            }
        }
        return new Gradients(dx, dw, db);
    }

    /// <summary>RMSNorm of every row of x (M, C).</summary>
    public static RmsNormResult RmsNormForward(double[] x, double[] weight, int m, int c, double epsilon)
    {
        var output = new double[m * c];
        var rstd = new double[m];
        for (int i = 0; i < m; i++)
        {
            double r = RmsStatistic(x, i, c, epsilon);
            rstd[i] = r;
            for (int j = 0; j < c; j++)
                output[i * c + j] = x[i * c + j] * r * weight[j];
        }
        return new RmsNormResult(output, rstd);
    }

    /// <summary>Gradients of a loss whose derivative with respect to the RMSNorm output is dOutput (M, C); DBias is all zeros.</summary>
    public static Gradients RmsNormBackward(double[] x, double[] weight, double[] dOutput, int m, int c, double epsilon)
    {
        var dx = new double[m * c];
        var dw = new double[c];
        for (int i = 0; i < m; i++)
        {
            double r = RmsStatistic(x, i, c, epsilon);
            for (int k = 0; k < c; k++)
            {
                double sum = 0;
                for (int j = 0; j < c; j++)
                {
                    double delta = j == k ? 1 : 0;
                    double dnj_dxk = r * delta - x[i * c + j] * r * r * r * x[i * c + k] / c;
                    sum += weight[j] * dOutput[i * c + j] * dnj_dxk;
                }
                dx[i * c + k] = sum;
            }
            for (int j = 0; j < c; j++)
                dw[j] += dOutput[i * c + j] * x[i * c + j] * r;
        }
        return new Gradients(dx, dw, new double[c]);
    }

    /// <summary>L = Σ lossWeights ⊙ LayerNorm(x): its gradient is the backward with dOutput = lossWeights.</summary>
    public static double LayerNormWeightedLoss(double[] x, double[] weight, double[] bias, int m, int c, double epsilon,
        double[] lossWeights) => Dot(LayerNormForward(x, weight, bias, m, c, epsilon).Output, lossWeights);

    /// <summary>L = Σ lossWeights ⊙ RMSNorm(x): its gradient is the backward with dOutput = lossWeights.</summary>
    public static double RmsNormWeightedLoss(double[] x, double[] weight, int m, int c, double epsilon, double[] lossWeights) =>
        Dot(RmsNormForward(x, weight, m, c, epsilon).Output, lossWeights);

    /// <summary>Mean and 1/√(biased variance + ε) of row i.</summary>
    private static (double Mean, double Rstd) LayerNormStatistics(double[] x, int i, int c, double epsilon)
    {
        double sum = 0;
        for (int j = 0; j < c; j++) sum += x[i * c + j];
        double mean = sum / c;
        double squares = 0;
        for (int j = 0; j < c; j++) squares += (x[i * c + j] - mean) * (x[i * c + j] - mean);
        double variance = squares / c; // biased: divide by C, not C − 1
        return (mean, 1 / Math.Sqrt(variance + epsilon));
    }

    /// <summary>1/√(mean(x²) + ε) of row i.</summary>
    private static double RmsStatistic(double[] x, int i, int c, double epsilon)
    {
        double squares = 0;
        for (int j = 0; j < c; j++) squares += x[i * c + j] * x[i * c + j];
        return 1 / Math.Sqrt(squares / c + epsilon);
    }

    private static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}

namespace Grpo.Native.References;

/// <summary>Double-precision AdamW, sum of squares and clipping, written from the PyTorch formulas.</summary>
public static class OptimizerReference
{
    /// <summary>
    /// One torch.optim.AdamW step in place: p ← p(1 − lr·wd); m ← β1·m + (1 − β1)g; v ← β2·v + (1 − β2)g²;
    /// p ← p − lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε).
    /// </summary>
    public static void AdamWStep(double[] p, double[] g, double[] m, double[] v, int t, double lr,
        double beta1, double beta2, double eps, double weightDecay)
    {
        for (int i = 0; i < p.Length; i++)
        {
            p[i] *= 1 - lr * weightDecay;
            m[i] = beta1 * m[i] + (1 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
            double mHat = m[i] / (1 - Math.Pow(beta1, t));
            double vHat = v[i] / (1 - Math.Pow(beta2, t));
            p[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
        }
    }

    /// <summary>Σ x².</summary>
    public static double SumOfSquares(double[] x)
    {
        double sum = 0;
        foreach (double value in x) sum += value * value;
        return sum;
    }
}

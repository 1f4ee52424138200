namespace Grpo.Native.References;

/// <summary>
/// A fully connected layer in nn.Linear layout, in double, straight from the definition:
/// y[m, n] = Σ_k x[m, k] · W[n, k] + b[n]. Backward (fresh gradients, not accumulated):
/// dx[m, k] = Σ_n dy[m, n] · W[n, k], dW[n, k] = Σ_m dy[m, n] · x[m, k], db[n] = Σ_m dy[m, n].
/// Layouts: x (M, K), W (N, K), b (N), y and dy (M, N).
/// </summary>
public static class LinearReference
{
    /// <summary>Gradients of a loss whose derivative with respect to the output is dOutput.</summary>
    public sealed record Gradients(double[] DInput, double[] DWeight, double[] DBias);

    /// <summary>The forward: output (M, N); <paramref name="bias"/> may be null.</summary>
    public static double[] Forward(double[] input, double[] weight, double[]? bias, int m, int k, int n)
    {
        var output = new double[m * n];
        for (int row = 0; row < m; row++)
            for (int feature = 0; feature < n; feature++)
            {
                double sum = bias is null ? 0 : bias[feature];
                for (int i = 0; i < k; i++) sum += input[row * k + i] * weight[feature * k + i];
                output[row * n + feature] = sum;
            }
        return output;
    }

    /// <summary>The backward: dInput (M, K), dWeight (N, K), dBias (N).</summary>
    public static Gradients Backward(double[] input, double[] weight, double[] dOutput, int m, int k, int n)
    {
        var dInput = new double[m * k];
        var dWeight = new double[n * k];
        var dBias = new double[n];
        for (int row = 0; row < m; row++)
            for (int feature = 0; feature < n; feature++)
            {
                double g = dOutput[row * n + feature];
                dBias[feature] += g;
                for (int i = 0; i < k; i++)
                {
                    dInput[row * k + i] += g * weight[feature * k + i];
                    dWeight[feature * k + i] += g * input[row * k + i];
                }
            }
        return new Gradients(dInput, dWeight, dBias);
    }

    /// <summary>L = Σ weights ⊙ output: a scalar whose gradient with respect to the output is <paramref name="weights"/>, for finite differences.</summary>
    public static double WeightedLoss(double[] input, double[] weight, double[]? bias, int m, int k, int n, double[] weights)
    {
        var output = Forward(input, weight, bias, m, k, n);
        double loss = 0;
        for (int i = 0; i < output.Length; i++) loss += weights[i] * output[i];
        return loss;
    }
}

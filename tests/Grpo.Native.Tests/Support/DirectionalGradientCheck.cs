using Grpo.Native.Checkpoints;
using Grpo.Native.References;
using NUnit.Framework;

namespace Grpo.Native.Tests.Support;

/// <summary>
/// Checks a model's fp32 gradient ĝ of L(θ) = Σ_t w_t·logp_t(θ) tensor by tensor, along one random direction v each: the
/// analytic v·ĝ (summed in double) against central differences of the double reference's L along v. The error is judged
/// against ‖v‖·‖ĝ‖ times a normwise bound: Cauchy–Schwarz bounds the rounding part by ‖v‖·‖ĝ − g‖, so the measure is at
/// most the tensor's normwise relative error, which no near-zero element can inflate (an element-wise measure has a heavy
/// tail: a near-zero element keeps the absolute rounding of its cancelling terms). A wrong element anywhere in a tensor
/// moves v·ĝ with probability 1.
/// </summary>
public static class DirectionalGradientCheck
{
    /// <summary>Central-difference step along v (‖v‖ ≈ √n): truncation O(h²) and cancellation O(ε/h) both stay near 1e-9 here.</summary>
    private const double Step = 1e-5;

    /// <summary>Asserts every tensor's error is within its allowance; prints the worst error / allowance over the tensors.</summary>
    /// <param name="what">Printed with the result.</param>
    /// <param name="config">The model's shape (which tensors there are).</param>
    /// <param name="parameters">The double parameters the reference runs on, by Hugging Face name; left as they were.</param>
    /// <param name="gradient">ĝ, the fp32 gradient by Hugging Face name.</param>
    /// <param name="logProbs">The reference's log-probs at the given parameters, in the order of <paramref name="weights"/>.</param>
    /// <param name="weights">w, one per log-prob.</param>
    /// <param name="relativeBound">The model gradient's normwise bound, derived where it is used.</param>
    /// <param name="weightErrors">
    /// Where ĝ was computed from fp32 weights ŵ: a bound on |ŵ_t − w_t| per log-prob. They move v·ĝ by Σ_t (ŵ_t − w_t)·(Jv)_t,
    /// with Jv the log-probs' derivative along v (taken from the same differences), so Σ_t bound_t·|(Jv)_t| joins the allowance.
    /// Null when ĝ was computed from w itself.
    /// </param>
    /// <param name="random">Draws the directions.</param>
    public static void Run(string what, ModelConfig config, Dictionary<string, double[]> parameters, Dictionary<string, float[]> gradient,
        Func<Dictionary<string, double[]>, double[]> logProbs, IReadOnlyList<double> weights, double relativeBound,
        IReadOnlyList<double>? weightErrors, Random random)
    {
        double worst = 0;
        string worstTensor = "";
        int tensors = 0;
        foreach (var (tensorName, _) in TransformerReference.Layout(config))
        {
            double[] values = parameters[tensorName];
            double[] v = TestRandom.ToDouble(TestRandom.Normal(random, values.Length));
            float[] g = gradient[tensorName];
            double analytic = 0, vNorm = 0, gNorm = 0;
            for (int i = 0; i < values.Length; i++) { analytic += v[i] * g[i]; vNorm += v[i] * v[i]; gNorm += (double)g[i] * g[i]; }

            double[] original = (double[])values.Clone();
            for (int i = 0; i < values.Length; i++) values[i] = original[i] + Step * v[i];
            double[] plus = logProbs(parameters);
            for (int i = 0; i < values.Length; i++) values[i] = original[i] - Step * v[i];
            double[] minus = logProbs(parameters);
            original.CopyTo(values, 0);

            double differences = 0, weightAllowance = 0;
            for (int t = 0; t < weights.Count; t++)
            {
                double jv = (plus[t] - minus[t]) / (2 * Step); // (Jv)_t
                differences += weights[t] * jv;
                if (weightErrors is not null) weightAllowance += weightErrors[t] * Math.Abs(jv);
            }
            double allowance = relativeBound * Math.Sqrt(vNorm * gNorm) + weightAllowance;
            double error = Math.Abs(analytic - differences) / Math.Max(allowance, 1e-300);
            if (error > worst) (worst, worstTensor) = (error, tensorName);
            tensors++;
        }
        // Printed in Compare's form so that scripts/stress-tests.py reads the margin: the ratio error / allowance against 1.
        TestContext.Out.WriteLine($"{what} along random directions (error / allowance): worst relative error {worst:E2} (bound {1.0:E2}) " +
                                  $"over {tensors} tensors (at {worstTensor}; normwise bound {relativeBound:E2})");
        Assert.That(worst, Is.LessThanOrEqualTo(1.0), $"{what}: gradient of {worstTensor}");
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Losses;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tensors;

namespace Grpo.Cli;

/// <summary>One comparison of a device operation with its double-precision reference.</summary>
/// <param name="Operation">What was run, with its shape.</param>
/// <param name="WorstError">The worst relative error (<see cref="ErrorMeasure"/>); infinity for a wrong token.</param>
/// <param name="Tolerance">The bound the tests hold the operation to.</param>
/// <param name="Detail">Anything else worth printing.</param>
internal sealed record CheckResult(string Operation, double WorstError, double Tolerance, string Detail = "")
{
    /// <summary>True when the check could not run on this machine (an optional library is absent); <see cref="Detail"/> says why.</summary>
    public bool Skipped { get; init; }

    public bool Passed => Skipped || WorstError <= Tolerance;
}

/// <summary>
/// Runs every GRPO operation on a device at small sizes against the references, with the bounds
/// the test suite uses (1e-4; 1e-3 for the gather's cancelling gradients, see the README).
/// </summary>
internal static partial class SelfCheck
{
    public const double Tolerance = 1e-4, GradientTolerance = 1e-3;

    /// <summary>Every check on <paramref name="device"/>, in order.</summary>
    /// <param name="device">The device to check.</param>
    /// <param name="seed">Seed of the random inputs.</param>
    /// <param name="tolerance">The limit of the value checks.</param>
    /// <param name="gradientTolerance">The limit of the gradients that sum cancelling terms.</param>
    /// <param name="modelFamilies">The families of the whole-model checks; null: all four on a GPU, qwen2 alone on the simulator.</param>
    public static IReadOnlyList<CheckResult> Run(Device device, int seed, double tolerance = Tolerance,
        double gradientTolerance = GradientTolerance, IReadOnlyList<string>? modelFamilies = null)
    {
        var random = new Random(seed);
        var results = new List<CheckResult>();
        results.AddRange(Sampling(device, random, tolerance));
        results.AddRange(Advantages(device, random, tolerance));
        results.AddRange(Gather(device, random, tolerance, gradientTolerance));
        results.AddRange(FusedLoss(device, random, tolerance, gradientTolerance));
        results.AddRange(KvCache(device, random, tolerance));
        results.AddRange(Activations(device, random, tolerance, gradientTolerance));
        results.AddRange(Normalization(device, random, tolerance, gradientTolerance));
        results.AddRange(Linear(device, random, tolerance));
        results.AddRange(Embedding(device, random, tolerance));
        results.AddRange(Attention(device, random, tolerance, gradientTolerance));
        results.AddRange(Optimizer(device, random, tolerance));
        results.AddRange(Models(device, random, tolerance, gradientTolerance, modelFamilies));
        results.AddRange(Nccl(device, random));
        return results;
    }

    private static IEnumerable<CheckResult> Sampling(Device device, Random random, double tolerance)
    {
        const int rows = 7, vocab = 1001;
        float[] logits = Normal(random, rows * vocab, 2.0); // (R, V)
        var settings = new (string Name, SamplingOptions Options)[]
        {
            ("T=1", new SamplingOptions()),
            ("T=0.7 top-k 20 top-p 0.9 min-p 0.02", new SamplingOptions { Temperature = 0.7f, TopK = 20, TopP = 0.9f, MinP = 0.02f }),
            ("greedy", new SamplingOptions { Temperature = 0 }),
        };
        using var input = device.FromArray<float>(logits, rows, vocab);
        using var tokens = device.Allocate<int>(rows);        // (R)
        using var logprobs = device.Allocate<float>(rows);    // (R)
        foreach (var (name, options) in settings)
        {
            tokens.Fill(-1);
            logprobs.Fill(float.NaN);
            device.Operations.SampleTokens(input, options, seed: 7, step: 3, tokens, logprobs);
            var expected = SamplingReference.Sample(logits, rows, vocab, options.Temperature, options.TopK, options.TopP,
                options.MinP, 7, 3);
            int[] got = tokens.ToArray();
            // A token may differ only on a near-tie of the two best Gumbel scores (fp32 vs double).
            int wrong = Enumerable.Range(0, rows).Count(r =>
                got[r] != expected[r].Token && expected[r].BestScore - expected[r].RunnerUpScore > 1e-5);
            double worst = wrong > 0 ? double.PositiveInfinity
                : ErrorMeasure.WorstRelativeError(expected.Select(e => e.LogProb).ToArray(), logprobs.ToArray()).Worst;
            yield return new CheckResult($"sample {rows}x{vocab} {name}", worst, tolerance,
                $"{rows - wrong}/{rows} tokens equal");
        }
    }

    private static IEnumerable<CheckResult> Advantages(Device device, Random random, double tolerance)
    {
        const int n = 24, f = 2, g = 8;
        float[] scores = Normal(random, n * f, 1.0); // (N, F)
        scores[5] = float.NaN;                        // one function gives no score to one completion
        float[] weights = [1.0f, 0.5f];
        foreach (var (scaling, name) in new[] { (RewardScaling.Group, "group"), (RewardScaling.Batch, "batch"), (RewardScaling.None, "none") })
        {
            using var input = device.FromArray<float>(scores, n, f);
            using var rewards = device.Allocate<float>(n);
            using var advantages = device.Allocate<float>(n);
            using var mean = device.Allocate<float>(n / g);
            using var std = device.Allocate<float>(n / g);
            advantages.Fill(float.NaN);
            device.Operations.ComputeAdvantages(input, weights, g, scaling, rewards, advantages, mean, std);
            var expected = AdvantageReference.Compute(ToDouble(scores), ToDouble(weights), g, name);
            yield return new CheckResult($"advantages N={n} G={g} {name}",
                ErrorMeasure.WorstRelativeError(expected.Advantages, advantages.ToArray()).Worst, tolerance);
        }
    }

    /// <summary>
    /// The fused log-softmax gather forward (log-probs, entropies) and backward against the reference. On a GPU also at
    /// Qwen2.5's vocabulary, where the 64 MiB logits chunk holds 110 tokens, so 230 tokens take three chunks, the last one
    /// ragged (the simulator would take minutes there; the suite forces small chunks on it instead).
    /// </summary>
    private static IEnumerable<CheckResult> Gather(Device device, Random random, double tolerance, double gradientTolerance)
    {
        var checks = Gather(device, random, 23, 40, 301, tolerance, gradientTolerance);
        return device.Kind == DeviceKind.Cuda ? checks.Concat(Gather(device, random, 230, 16, 151_936, tolerance, gradientTolerance)) : checks;
    }

    private static IEnumerable<CheckResult> Gather(Device device, Random random, int m, int c, int v, double tolerance, double gradientTolerance)
    {
        const float temperature = 0.8f;
        float[] hidden = Normal(random, m * c, 0.5), lmHead = Normal(random, v * c, 0.5), upstream = Normal(random, m, 1.0);
        int[] targets = Enumerable.Range(0, m).Select(_ => random.Next(v)).ToArray();
        using var h = device.FromArray<float>(hidden, m, c);          // (M, C)
        using var w = device.FromArray<float>(lmHead, v, c);          // (V, C)
        using var y = device.FromArray<int>(targets, m);              // (M)
        using var logp = device.Allocate<float>(m);                   // (M)
        using var lse = device.Allocate<float>(m);                    // (M)
        using var entropy = device.Allocate<float>(m);                // (M)
        using var dLogp = device.FromArray<float>(upstream, m);       // (M)
        using var dHidden = device.Allocate<float>(m, c);             // (M, C)
        using var dLmHead = device.Allocate<float>(v, c);             // (V, C)
        logp.Fill(float.NaN);
        entropy.Fill(float.NaN);
        dHidden.Fill(0);
        dLmHead.Fill(0);
        device.Operations.LogSoftmaxGatherForward(h, w, y, temperature, logp, lse, entropy);
        device.Operations.LogSoftmaxGatherBackward(h, w, y, temperature, lse, dLogp, dHidden, dLmHead);
        double[] hd = ToDouble(hidden), wd = ToDouble(lmHead);
        var forward = LogSoftmaxGatherReference.Forward(hd, wd, targets, m, c, v, temperature);
        var (dh, dw) = LogSoftmaxGatherReference.Backward(hd, wd, targets, m, c, v, temperature, ToDouble(upstream));
        string shape = $"M={m} C={c} V={v}";
        yield return new CheckResult($"gather forward logprobs {shape}", ErrorMeasure.WorstRelativeError(forward.Logprobs, logp.ToArray()).Worst, tolerance);
        yield return new CheckResult($"gather forward entropy {shape}", ErrorMeasure.WorstRelativeError(forward.Entropy, entropy.ToArray()).Worst, tolerance);
        // Normwise: d hidden sums Σ_v (p_v − 1[v = y])·w_v, whose weights add to zero, so an element can cancel to near zero
        // while keeping the absolute rounding of a V-term sum (element-wise, 0.21 of the limit at V = 151,936 on the managed
        // backend; a GPU rounds differently).
        yield return new CheckResult($"gather backward d hidden {shape}", ErrorMeasure.NormwiseRelativeError(dh, dHidden.ToArray()), gradientTolerance, "normwise");
        yield return new CheckResult($"gather backward d lm head {shape}", ErrorMeasure.NormwiseRelativeError(dw, dLmHead.ToArray()), gradientTolerance, "normwise");
    }

    private static IEnumerable<CheckResult> FusedLoss(Device device, Random random, double tolerance, double gradientTolerance)
    {
        const int n = 4, t = 6, c = 16, v = 97;
        const float beta = 0.04f;
        float[] hidden = Normal(random, n * t * c, 0.5), lmHead = Normal(random, v * c, 0.5), advantages = Normal(random, n, 1.0);
        int[] tokens = Enumerable.Range(0, n * t).Select(_ => random.Next(v)).ToArray();
        float[] mask = Enumerable.Range(0, n * t).Select(k => k % t < 2 + k / t ? 1f : 0f).ToArray(); // lengths 2..5
        // Old and reference log-probs a little away from the current ones, so ratios and KL are not trivial.
        double[] current = LogSoftmaxGatherReference.Forward(ToDouble(hidden), ToDouble(lmHead), tokens, n * t, c, v, 1.0).Logprobs;
        float[] old = current.Select(x => (float)(x + 0.1 * (random.NextDouble() - 0.5))).ToArray();
        float[] reference = current.Select(x => (float)(x + 0.5 * (random.NextDouble() - 0.5))).ToArray();
        foreach (var (lossType, level, name) in new[]
                 {
                     (LossType.Dapo, ImportanceSamplingLevel.Token, "dapo"),
                     (LossType.Grpo, ImportanceSamplingLevel.Sequence, "grpo"),
                     (LossType.DrGrpo, ImportanceSamplingLevel.Token, "dr_grpo"),
                 })
        {
            var options = new GrpoObjectiveOptions
            {
                LossType = lossType, ImportanceSamplingLevel = level, Beta = beta, EpsilonHigh = 0.28f, MaxCompletionLength = t,
            };
            using var h = device.FromArray<float>(hidden, n, t, c);
            using var w = device.FromArray<float>(lmHead, v, c);
            using var y = device.FromArray<int>(tokens, n, t);
            using var mk = device.FromArray<float>(mask, n, t);
            using var a = device.FromArray<float>(advantages, n);
            using var o = device.FromArray<float>(old, n, t);
            using var r = device.FromArray<float>(reference, n, t);
            using var dHidden = device.Allocate<float>(n, t, c);
            using var dLmHead = device.Allocate<float>(v, c);
            dHidden.Fill(0);
            dLmHead.Fill(0);
            using var loss = new FusedGrpoLoss(device, n, t);
            var result = loss.Compute(h, w, y, mk, a, o, r, 1f, options, dHidden, dLmHead);
            var expected = FusedGrpoLossReference.Compute(ToDouble(hidden), ToDouble(lmHead), tokens, ToDouble(mask),
                ToDouble(advantages), ToDouble(old), ToDouble(reference), n, t, c, v, 1.0,
                new GrpoReferenceOptions(name, options.EpsilonLow, options.EffectiveEpsilonHigh, beta,
                    level == ImportanceSamplingLevel.Sequence, t));
            // The loss is a sum of signed terms: judged against the size of its terms, as in the tests.
            double lossError = Math.Abs(result.Loss - expected.Objective.Loss) / Math.Max(expected.Objective.AbsoluteLossScale, 1e-12);
            string label = $"fused loss {name} {level.ToString().ToLowerInvariant()} N={n} T={t} V={v}";
            yield return new CheckResult($"{label} loss", lossError, tolerance, $"loss {result.Loss:G6}");
            yield return new CheckResult($"{label} d hidden", ErrorMeasure.WorstRelativeError(expected.DHidden, dHidden.ToArray()).Worst, gradientTolerance);
            yield return new CheckResult($"{label} d lm head", ErrorMeasure.WorstRelativeError(expected.DLmHead, dLmHead.ToArray()).Worst, gradientTolerance);
        }
    }

    private static float[] Normal(Random random, int count, double scale)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)(scale * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return values;
    }

    private static double[] ToDouble(float[] values) => Array.ConvertAll(values, x => (double)x);
}

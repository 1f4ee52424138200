using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// verl's entropy bonus and TRL's entropy masking in the objective, given the entropies: every backend against
/// the reference (the mask's threshold is decided on the same float entropies in both, so which tokens are kept
/// is exact), hand-worked values, and the option and argument checks. The entropy's path into the logits is
/// LogSoftmaxGatherEntropyTests'; the whole chain is FusedGrpoLossTests'.
/// </summary>
public sealed partial class GrpoObjectiveTests
{
    /// <summary>Runs the objective with per-token entropies; dEntropy is passed (poisoned) when the bonus is on.</summary>
    private static (GrpoObjectiveResult Result, float[] Gradient, float[]? EntropyGradient) RunWithEntropy(
        Device device, Inputs x, float[] entropyValues, bool withOld, GrpoObjectiveOptions options)
    {
        using var logp = device.FromArray<float>(x.Logp, x.N, x.T);                          // (N, T)
        using var old = withOld ? device.FromArray<float>(x.Old, x.N, x.T) : null;           // (N, T)
        using var reference = options.Beta > 0 ? device.FromArray<float>(x.Ref, x.N, x.T) : null; // (N, T)
        using var advantages = device.FromArray<float>(x.Advantages, x.N);                   // (N)
        using var mask = device.FromArray<float>(x.Mask, x.N, x.T);                          // (N, T)
        using var entropy = device.FromArray<float>(entropyValues, x.N, x.T);                // (N, T)
        using var dLogp = Poison.Fill(device.Allocate<float>(x.N, x.T));                     // (N, T)
        using var dEntropy = options.EntropyCoefficient != 0 ? Poison.Fill(device.Allocate<float>(x.N, x.T)) : null; // (N, T)
        var result = device.Operations.GrpoObjective(logp, old, reference, advantages, mask, options, dLogp, entropy, dEntropy);
        return (result, dLogp.ToArray(), dEntropy?.ToArray());
    }

    /// <summary>Entropies drawn uniformly from [0.05, 3] at loss tokens, NaN at padding (never read).</summary>
    private static float[] RandomEntropies(Random random, Inputs x) =>
        Enumerable.Range(0, x.N * x.T).Select(k => x.Mask[k] == 1 ? (float)(0.05 + 2.95 * random.NextDouble()) : float.NaN).ToArray();

    /// <summary>
    /// The entropy metric: the masked mean of the entropies when they are passed (padding, NaN here, never read), NaN when
    /// not. Bound: a sum of N·T positive fp32 terms in any order is within (N·T)u of the exact sum, and the division adds
    /// one more u; (N·T + 2)·2⁻²⁴.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void MeanEntropyIsTheMaskedMeanOfTheGivenEntropies(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        (int n, int t) = kind == DeviceKind.Cpu ? (12, 23) : (5, 9);
        var x = RandomInputs(random, n, t);
        float[] entropy = RandomEntropies(random, x);
        double sum = 0, tokens = 0;
        for (int k = 0; k < n * t; k++)
            if (x.Mask[k] == 1) { sum += entropy[k]; tokens++; }
        foreach (bool withOld in new[] { false, true })
        {
            var (result, _, _) = RunWithEntropy(device, x, entropy, withOld, new GrpoObjectiveOptions());
            Compare.WorstRelativeError($"mean entropy (old log-probs: {withOld})", sum / Math.Max(tokens, 1), result.MeanEntropy, (n * t + 2) * Math.Pow(2, -24));
        }
        Assert.That(Run(device, x, true, false, new GrpoObjectiveOptions()).Result.MeanEntropy, Is.NaN, "no entropies passed, no metric");
    }

    private static readonly (float Coefficient, float TopQuantile)[] EntropySettings = [(0.05f, 1f), (0f, 0.3f), (0.02f, 0.6f), (-0.01f, 0f)];

    private static readonly GrpoObjectiveOptions[] EntropyLossTypes =
    [
        new() { LossType = LossType.Dapo, Beta = 0.04f },
        new() { LossType = LossType.Grpo, EpsilonHigh = 0.28f },
        new() { LossType = LossType.DrGrpo, Beta = 0.04f, KlEstimator = KlEstimator.K2 },
        new() { LossType = LossType.Bnpo, Delta = 1.6f, DualClip = 2f },
        new() { LossType = LossType.Cispo, EpsilonHigh = 5f },
        new() { LossType = LossType.Sapo, Beta = 0.04f },
    ];

    /// <summary>
    /// Every loss type at both ratio levels with the bonus, the mask, both, and a negative coefficient with
    /// top_entropy_quantile 0 (only the highest-entropy tokens), against the reference. Tolerances: the
    /// loss and gradient as <see cref="VariantBound"/> (the bonus adds c·H terms of the same kind to the
    /// sums it derives); d loss / d entropy is −c times the fp32 aggregation weight (≤ 4u relative, judged
    /// at 1e-6); the fractions as in the other variant tests.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void EntropyBonusAndMaskMatchTheReference(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        (int n, int t) = kind == DeviceKind.Cpu ? (12, 23) : (5, 9);
        foreach (var baseOptions in EntropyLossTypes)
        foreach (var level in Levels)
        foreach (var (coefficient, top) in EntropySettings)
        {
            var options = baseOptions with
            {
                ImportanceSamplingLevel = level, MaxCompletionLength = t, EntropyCoefficient = coefficient, TopEntropyQuantile = top,
            };
            string what = $"{options.LossType} {level} c={coefficient} top={top}";
            // Log-ratios within ±1.5, the premise of VariantBound (as VariantInputs keeps them).
            var x = RandomInputs(random, n, t, plant: inputs =>
            {
                for (int k = 0; k < n * t; k++) inputs.Old[k] = Math.Clamp(inputs.Old[k], inputs.Logp[k] - 1.5f, inputs.Logp[k] + 1.5f);
            }, kinks: options.LossType == LossType.Cispo ? [5.0] : options.Delta is { } d ? [d, 2.0] : null);
            float[] entropy = RandomEntropies(random, x);
            var expected = GrpoObjectiveReference.Compute(TestRandom.ToDouble(x.Logp), TestRandom.ToDouble(x.Old),
                TestRandom.ToDouble(x.Ref), TestRandom.ToDouble(x.Advantages), TestRandom.ToDouble(x.Mask), n, t,
                ReferenceOptions(options) with { EntropyCoefficient = coefficient, TopEntropyQuantile = top }, TestRandom.ToDouble(entropy));

            // The mask is active: some loss tokens dropped, some kept.
            int lossTokens = x.Mask.Count(m => m == 1), kept = Enumerable.Range(0, n * t).Count(k => x.Mask[k] == 1 && entropy[k] >= expected.EntropyThreshold);
            TestContext.Out.WriteLine($"{what}: threshold {expected.EntropyThreshold:G6}, {kept} of {lossTokens} tokens keep their policy term");
            if (top < 1) Assert.That(kept, Is.InRange(1, lossTokens - 1), $"{what}: the mask keeps some tokens and drops others");

            var (result, gradient, entropyGradient) = RunWithEntropy(device, x, entropy, withOld: true, options);
            CheckVariantAgainstReference(what, expected, result, gradient);
            if (coefficient != 0)
            {
                var expectedEntropyGradient = expected.EntropyGradient!.Select((g, k) => x.Mask[k] == 1 ? g : 0.0).ToArray();
                Compare.WorstRelativeError($"{what} dEntropy", expectedEntropyGradient, entropyGradient!, 1e-6);
            }
        }
    }

    /// <summary>
    /// One token per completion, ρ = 1 (μ = 1), dapo over 4 tokens, entropies 0.5, 1, 1.5, 2. top_entropy_quantile
    /// 0.5: q = 0.5 sits at position 1.5 of the sorted entropies, threshold 1.25, so tokens 2 and 3 keep −A/4.
    /// top 0: the threshold is the maximum, token 3 alone. The bonus c = 0.1 adds −0.1·ΣH/4 and dEntropy −0.1/4.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void EntropyMaskAndBonusOfAHandWorkedBatch(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        float[] advantages = [1f, -2f, 0.5f, -1f], entropy = [1.0f, 0.5f, 2.0f, 1.5f];
        var x = new Inputs(4, 1, [-1f, -2f, -0.5f, -3f], [-1f, -2f, -0.5f, -3f], [-1f, -2f, -0.5f, -3f], advantages, [1, 1, 1, 1]);
        const double tolerance = 1e-6;

        var (half, halfGradient, _) = RunWithEntropy(device, x, entropy, withOld: false, new GrpoObjectiveOptions { TopEntropyQuantile = 0.5f });
        Assert.That(half.Loss, Is.EqualTo((-0.5 + 1.0) / 4).Within(tolerance));
        Assert.That(halfGradient, Is.EqualTo(new[] { 0f, 0f, -0.5f / 4, 1f / 4 }).Within(tolerance));

        var (top, topGradient, _) = RunWithEntropy(device, x, entropy, withOld: false, new GrpoObjectiveOptions { TopEntropyQuantile = 0f });
        Assert.That(top.Loss, Is.EqualTo(-0.5 / 4).Within(tolerance));
        Assert.That(topGradient, Is.EqualTo(new[] { 0f, 0f, -0.5f / 4, 0f }).Within(tolerance));

        var (bonus, bonusGradient, entropyGradient) = RunWithEntropy(device, x, entropy, withOld: false, new GrpoObjectiveOptions { EntropyCoefficient = 0.1f });
        Assert.That(bonus.Loss, Is.EqualTo((-1 + 2 - 0.5 + 1) / 4.0 - 0.1 * 5 / 4).Within(tolerance));
        Assert.That(bonusGradient, Is.EqualTo(advantages.Select(a => -a / 4).ToArray()).Within(tolerance));
        Assert.That(entropyGradient, Is.EqualTo(new[] { -0.1f / 4, -0.1f / 4, -0.1f / 4, -0.1f / 4 }).Within(tolerance));
    }

    /// <summary>
    /// GSPO's clip metrics count completions, as TRL's masked_batch_mean does for a (B, 1) ratio: two completions of
    /// 1 and 3 tokens, the short one at ρ = 1.5 with A = +1 (clipped high), the long one at ρ = 1 with A = −1. Token-weighted
    /// that would be 1/4; TRL logs 1/2. The empty third completion (ρ = 1) counts as unclipped, and with CISPO's
    /// TRL-default bound 0.2 its ρ = 1 &gt; 0.2 counts as capped when A &gt; 0, as in TRL. The KL stays a token mean.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void SequenceLevelClipMetricsAverageCompletions(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int n = 3, t = 3;
        float nan = float.NaN, log15 = MathF.Log(1.5f);
        float[] logp = [-1f, nan, nan, -1f, -2f, -0.5f, nan, nan, nan];
        float[] old = [-1f - log15, nan, nan, -1f, -2f, -0.5f, nan, nan, nan];
        float[] mask = [1, 0, 0, 1, 1, 1, 0, 0, 0];
        var x = new Inputs(n, t, logp, old, logp, [1f, -1f, 0.5f], mask);
        var options = new GrpoObjectiveOptions { ImportanceSamplingLevel = ImportanceSamplingLevel.Sequence, MaxCompletionLength = t };
        var (clipped, _) = Run(device, x, withOld: true, passRef: false, options);
        Assert.That(clipped.ClipRatioHigh, Is.EqualTo(1.0 / 3).Within(1e-6), "one completion of three");
        Assert.That(clipped.ClipRatioLow, Is.EqualTo(0));
        Assert.That(clipped.ClipRatioRegion, Is.EqualTo(1.0 / 3).Within(1e-6));
        var (cispo, _) = Run(device, x, withOld: true, passRef: false, options with { LossType = LossType.Cispo });
        Assert.That(cispo.CispoClipRatio, Is.EqualTo(2.0 / 3).Within(1e-6), "row 0 (ρ = 1.5) and the empty row 2 (ρ = 1), both A > 0");
        var expected = Reference(x, withOld: true, options);
        Assert.That(expected.ClipRatioHigh, Is.EqualTo(1.0 / 3).Within(1e-12), "the reference agrees");
    }

    private static IEnumerable<TestCaseData> BadEntropyOptions()
    {
        yield return new TestCaseData(new GrpoObjectiveOptions { EntropyCoefficient = float.NaN }, "EntropyCoefficient", "finite").SetName("NaN EntropyCoefficient");
        yield return new TestCaseData(new GrpoObjectiveOptions { EntropyCoefficient = float.PositiveInfinity }, "EntropyCoefficient", "entropy_coeff").SetName("infinite EntropyCoefficient");
        yield return new TestCaseData(new GrpoObjectiveOptions { TopEntropyQuantile = 1.5f }, "TopEntropyQuantile", "[0, 1]").SetName("TopEntropyQuantile above 1");
        yield return new TestCaseData(new GrpoObjectiveOptions { TopEntropyQuantile = -0.1f }, "TopEntropyQuantile", "[0, 1]").SetName("negative TopEntropyQuantile");
        yield return new TestCaseData(new GrpoObjectiveOptions { TopEntropyQuantile = float.NaN }, "TopEntropyQuantile", "1 turns entropy masking off").SetName("NaN TopEntropyQuantile");
    }

    [TestCaseSource(nameof(BadEntropyOptions))]
    public void BadEntropyOptionIsNamed(GrpoObjectiveOptions options, string argument, string reason)
    {
        var error = Assert.Catch<ArgumentException>(options.Validate)!;
        TestContext.Out.WriteLine(error.Message);
        Assert.That(error.ParamName, Is.EqualTo(argument));
        Assert.That(error.Message, Does.Contain(argument).And.Contain(reason));
    }

    [Test]
    public void MissingEntropyTensorsAreNamed()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var x = RandomInputs(TestRandom.Create(), 2, 5);
        using var logp = device.FromArray<float>(x.Logp, 2, 5);
        using var advantages = device.FromArray<float>(x.Advantages, 2);
        using var mask = device.FromArray<float>(x.Mask, 2, 5);
        using var dLogp = device.Allocate<float>(2, 5);
        using var entropy = device.Allocate<float>(2, 5);
        var ops = device.Operations;
        var missingForMask = Assert.Throws<ArgumentNullException>(() => ops.GrpoObjective(logp, null, null, advantages, mask,
            new GrpoObjectiveOptions { TopEntropyQuantile = 0.2f }, dLogp))!;
        Assert.That(missingForMask.ParamName, Is.EqualTo("entropy"));
        Assert.That(missingForMask.Message, Does.Contain("TopEntropyQuantile"));
        var missingGradient = Assert.Throws<ArgumentNullException>(() => ops.GrpoObjective(logp, null, null, advantages, mask,
            new GrpoObjectiveOptions { EntropyCoefficient = 0.01f }, dLogp, entropy))!;
        Assert.That(missingGradient.ParamName, Is.EqualTo("dEntropy"));
    }
}

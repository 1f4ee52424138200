using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// The newer per-token policy losses (CISPO, SAPO), TRL's two-sided clipping δ, verl's dual clip and the
/// k1/k2/k3 KL estimators: every backend against the reference on inputs where each one is active
/// (counted, not hoped for), the reference against finite differences, hand-worked values, and the
/// option checks.
/// </summary>
public sealed partial class GrpoObjectiveTests
{
    /// <summary>
    /// Rows to plant: a whole completion gets advantage <c>Sign</c>·(0.3 + |N(0, 1)|) and one ratio drawn
    /// from [<c>Low</c>, <c>High</c>] for all its tokens (so the token and the sequence ratio agree). Every
    /// range keeps 0.02 or more from each kink of the variant.
    /// </summary>
    private sealed record Plant(int Sign, double Low, double High);

    /// <summary>What must be active in a variant's inputs, counted from the reference and the ratios.</summary>
    [Flags]
    private enum Active
    {
        None = 0, ClipLow = 1, ClipHigh = 2, Delta = 4, Dual = 8, Cispo = 16, SapoBothSigns = 32,
        /// <summary>Asserts that the dual clip never fires (δ &lt; c caps first).</summary>
        NoDual = 64,
    }

    private sealed record NewVariant(string Name, GrpoObjectiveOptions Options, Plant[] Plants, Active Active)
    {
        /// <summary>Kinks of the loss in ρ besides the fixed clip boundaries: δ, c and CISPO's bound.</summary>
        public double[] Kinks =>
        [
            .. Options.Delta is { } d ? new[] { (double)d } : [],
            .. Options.DualClip is { } c ? new[] { (double)c } : [],
            .. Options.LossType == LossType.Cispo ? new[] { (double)Options.EffectiveEpsilonHigh } : [],
        ];

        public override string ToString() => Name;
    }

    private static readonly Plant HighClip = new(+1, 1.3, 1.45), LowClip = new(-1, 0.5, 0.75);

    private static readonly NewVariant[] NewVariants =
    [
        new("dapo, delta 1.6, k1", new() { LossType = LossType.Dapo, EpsilonHigh = 0.28f, Delta = 1.6f, Beta = 0.04f, KlEstimator = KlEstimator.K1 },
            [new(-1, 1.7, 2.2), HighClip, LowClip], Active.Delta | Active.ClipHigh | Active.ClipLow),
        new("grpo, dual clip 1.5, k2", new() { LossType = LossType.Grpo, DualClip = 1.5f, Beta = 0.04f, KlEstimator = KlEstimator.K2 },
            [new(-1, 1.6, 2.2), HighClip, LowClip], Active.Dual | Active.ClipHigh | Active.ClipLow),
        new("bnpo, delta 1.4 under dual clip 2: delta decides", new() { LossType = LossType.Bnpo, Delta = 1.4f, DualClip = 2f },
            [new(-1, 1.5, 1.9), new(-1, 2.1, 2.6), LowClip], Active.Delta | Active.NoDual | Active.ClipLow),
        new("dr_grpo, dual clip 1.5 under delta 2.5: dual decides", new() { LossType = LossType.DrGrpo, Delta = 2.5f, DualClip = 1.5f, Beta = 0.04f },
            [new(-1, 1.6, 2.3), new(-1, 2.6, 3.0), HighClip], Active.Dual | Active.ClipHigh),
        new("cispo, epsilon_high 1.2, k1", new() { LossType = LossType.Cispo, EpsilonHigh = 1.2f, Beta = 0.04f, KlEstimator = KlEstimator.K1 },
            [new(+1, 1.3, 2.0), new(-1, 1.3, 2.0), new(+1, 0.85, 1.1)], Active.Cispo),
        new("cispo, TRL's default epsilon_high (0.2 caps nearly every weight)", new() { LossType = LossType.Cispo },
            [new(+1, 0.9, 1.1), new(-1, 0.9, 1.1)], Active.Cispo),
        new("sapo, TRL's temperatures, k3", new() { LossType = LossType.Sapo, Beta = 0.04f },
            [new(+1, 1.3, 1.6), new(-1, 0.5, 0.75), new(-1, 1.3, 1.6)], Active.SapoBothSigns),
        new("sapo, temperatures 1.5 and 0.5, k2", new() { LossType = LossType.Sapo, SapoTemperaturePositive = 1.5f, SapoTemperatureNegative = 0.5f, Beta = 0.04f, KlEstimator = KlEstimator.K2 },
            [new(+1, 1.3, 1.6), new(-1, 0.5, 0.75), new(+1, 0.5, 0.75)], Active.SapoBothSigns),
    ];

    /// <summary>
    /// The backends' bound against the reference, relative to each value's term scale (the sum of the
    /// magnitudes it is summed from; see <see cref="Compare.WorstScaledError(string, ReadOnlySpan{double}, ReadOnlySpan{double}, ReadOnlySpan{float}, double)"/>),
    /// in units of u = 2^-24: ρ at sequence level is the exp of a T-term fp32 mean of log-ratios
    /// |L| ≤ 1.8 (asserted), ≤ 1.8·T·u = 67u at T = 37; SAPO's σ(1 − σ) multiplies ρ's relative error by
    /// at most τρ ≤ 1.5·e^1.8 = 9 (≤ 600u); each exponential ≤ 4u; k3's e − d − 1 branch (|d| ≥ 0.5)
    /// cancels by at most (e^½ + ½ + 1)/(e^½ − ½ − 1) ≈ 22 (≤ 70u); products and the term sums ≤ 10u;
    /// the loss's fp32 row and batch sums ≤ (T + N)u = 53u. Total ≤ 800u; the bound is 1024u ≈ 6.1e-5.
    /// A wrong formula, branch or weight is off by O(1) of the scale.
    /// </summary>
    private const double VariantBound = 1024.0 / (1 << 24);

    /// <summary>
    /// The largest |log-ratio| the bound above assumes: the drawn ones are limited to ±1.5 before the
    /// kinks are avoided, which moves an old log-prob by at most a few × 0.06.
    /// </summary>
    private const double MaxLogRatio = 1.8;

    private static Inputs VariantInputs(Random random, int n, int t, NewVariant variant)
    {
        Assert.That(n, Is.GreaterThan(variant.Plants.Length), "one row per plant after the (possibly empty) row 0");
        var x = RandomInputs(random, n, t, withEmptyRow: true, plant: inputs =>
        {
            for (int k = 0; k < n * t; k++)
                inputs.Old[k] = Math.Clamp(inputs.Old[k], inputs.Logp[k] - 1.5f, inputs.Logp[k] + 1.5f);
            for (int j = 0; j < variant.Plants.Length; j++)
            {
                var plant = variant.Plants[j];
                int row = 1 + j; // rows past 0 hold at least one token
                inputs.Advantages[row] = plant.Sign * (0.3f + Math.Abs(TestRandom.Normal(random, 1)[0]));
                double rho = plant.Low + (plant.High - plant.Low) * random.NextDouble();
                for (int c = 0; c < t; c++)
                    inputs.Old[row * t + c] = (float)(inputs.Logp[row * t + c] - Math.Log(rho));
            }
        }, kinks: variant.Kinks);
        for (int k = 0; k < n * t; k++)
            if (x.Mask[k] == 1)
                Assert.That(Math.Abs((double)x.Logp[k] - x.Old[k]), Is.LessThanOrEqualTo(MaxLogRatio), "the error bound's premise");
        return x;
    }

    /// <summary>(N, T) the ratio of every masked token in double, at the variant's level (NaN at padding).</summary>
    private static double[] Ratios(Inputs x, bool sequenceLevel)
    {
        var rho = new double[x.N * x.T];
        for (int i = 0; i < x.N; i++)
        {
            double sum = 0, tokens = 0;
            for (int c = 0; c < x.T; c++)
                if (x.Mask[i * x.T + c] == 1) { sum += (double)x.Logp[i * x.T + c] - x.Old[i * x.T + c]; tokens++; }
            for (int c = 0; c < x.T; c++)
            {
                int k = i * x.T + c;
                rho[k] = x.Mask[k] != 1 ? double.NaN
                    : sequenceLevel ? Math.Exp(sum / tokens) : Math.Exp((double)x.Logp[k] - x.Old[k]);
            }
        }
        return rho;
    }

    /// <summary>Counts what the variant promises to exercise and asserts each count is positive (or, for NoDual, zero).</summary>
    private static void AssertActive(NewVariant variant, Inputs x, GrpoReferenceResult expected)
    {
        var o = variant.Options;
        double[] rho = Ratios(x, o.ImportanceSamplingLevel == ImportanceSamplingLevel.Sequence);
        int Count(Func<double, float, bool> where) =>
            Enumerable.Range(0, x.N * x.T).Count(k => x.Mask[k] == 1 && where(rho[k], x.Advantages[k / x.T]));
        int deltaCapped = o.Delta is { } delta ? Count((r, a) => a < 0 && r > delta && (o.DualClip is not { } c || delta < c)) : 0;
        int positive = Count((r, a) => a > 0 && r != 1), negative = Count((r, a) => a < 0 && r != 1);
        TestContext.Out.WriteLine($"{variant} ({o.ImportanceSamplingLevel}): clip low {expected.ClipRatioLow:F3}, high {expected.ClipRatioHigh:F3}, " +
            $"dual {expected.DualClipRatio:F3}, cispo {expected.CispoClipRatio:F3}, delta-capped tokens {deltaCapped}, sapo A>0 / A<0 tokens {positive} / {negative}");
        if (variant.Active.HasFlag(Active.ClipLow)) Assert.That(expected.ClipRatioLow, Is.GreaterThan(0), $"{variant}: clipped low");
        if (variant.Active.HasFlag(Active.ClipHigh)) Assert.That(expected.ClipRatioHigh, Is.GreaterThan(0), $"{variant}: clipped high");
        if (variant.Active.HasFlag(Active.Delta)) Assert.That(deltaCapped, Is.GreaterThan(0), $"{variant}: tokens capped by delta");
        if (variant.Active.HasFlag(Active.Dual)) Assert.That(expected.DualClipRatio, Is.GreaterThan(0), $"{variant}: dual-clipped");
        if (variant.Active.HasFlag(Active.NoDual)) Assert.That(expected.DualClipRatio, Is.EqualTo(0), $"{variant}: delta < c, so the dual clip never decides");
        if (variant.Active.HasFlag(Active.Cispo)) Assert.That(expected.CispoClipRatio, Is.GreaterThan(0), $"{variant}: CISPO weights capped");
        if (variant.Active.HasFlag(Active.SapoBothSigns))
        {
            Assert.That(positive, Is.GreaterThan(0), $"{variant}: tokens gated with the positive temperature");
            Assert.That(negative, Is.GreaterThan(0), $"{variant}: tokens gated with the negative temperature");
        }
        if (o.Beta > 0) Assert.That(expected.KlScale, Is.GreaterThan(0), $"{variant}: a KL term");
    }

    private static void CheckVariantAgainstReference(string what, GrpoReferenceResult expected, GrpoObjectiveResult result, float[] gradient)
    {
        Compare.WorstScaledError($"{what} loss", [expected.Loss], [expected.LossTermScale], [result.Loss], VariantBound);
        Compare.WorstScaledError($"{what} dLogprobs", expected.Gradient, expected.GradientScale!, gradient, VariantBound);
        Compare.WorstScaledError($"{what} mean KL", [expected.MeanKl], [expected.KlScale], [result.MeanKl], VariantBound);
        // The fractions are counts over the same denominator; only fp32 division separates them (≤ u relative).
        Assert.That(result.ClipRatioLow, Is.EqualTo(expected.ClipRatioLow).Within(1e-6), $"{what} clip low");
        Assert.That(result.ClipRatioHigh, Is.EqualTo(expected.ClipRatioHigh).Within(1e-6), $"{what} clip high");
        Assert.That(result.ClipRatioRegion, Is.EqualTo(expected.ClipRatioRegion).Within(1e-6), $"{what} clip region");
        Assert.That(result.DualClipRatio, Is.EqualTo(expected.DualClipRatio).Within(1e-6), $"{what} dual clip");
        Assert.That(result.CispoClipRatio, Is.EqualTo(expected.CispoClipRatio).Within(1e-6), $"{what} cispo clip");
    }

    /// <summary>
    /// Every new variant at both ratio levels, with old log-probs planted where it clips, caps or gates
    /// (counted), and once more with μ = 1 (ρ = 1), on every backend. The ILGPU simulator gets a smaller batch.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void NewVariantsMatchTheReference(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        (int n, int t) = kind == DeviceKind.Cpu ? (16, 37) : (6, 11);
        foreach (var variant in NewVariants)
        foreach (var level in Levels)
        {
            var options = variant.Options with { ImportanceSamplingLevel = level, MaxCompletionLength = t + random.Next(3) };
            var planted = variant with { Options = options };
            var x = VariantInputs(random, n, t, planted);
            var expected = Reference(x, withOld: true, options);
            AssertActive(planted, x, expected);
            var (result, gradient) = Run(device, x, withOld: true, passRef: options.Beta > 0, options);
            CheckVariantAgainstReference($"{variant} {level}", expected, result, gradient);

            // μ = 1: ρ = 1 for every token; CISPO's loss is then −min(1, ε_high)·A·logp and SAPO's −2A.
            var (once, onceGradient) = Run(device, x, withOld: false, passRef: options.Beta > 0, options);
            CheckVariantAgainstReference($"{variant} {level} old=null", Reference(x, withOld: false, options), once, onceGradient);
        }
    }

    /// <summary>
    /// The reference's gradient of every new variant against central differences of its own loss. For
    /// CISPO, whose ratio is detached, each probe moves logp and old together, so ρ stays fixed as the
    /// detach demands. No ratio lies within 100 probe steps of a kink (asserted), so no probe straddles one.
    /// </summary>
    [Test]
    public void NewVariantsReferenceGradientMatchesFiniteDifferences()
    {
        var random = TestRandom.Create();
        const int n = 6, t = 7;
        const double h = 1e-6;
        foreach (var variant in NewVariants)
        foreach (var level in Levels)
        {
            var options = variant.Options with { ImportanceSamplingLevel = level, MaxCompletionLength = t };
            var planted = variant with { Options = options };
            var x = VariantInputs(random, n, t, planted);
            bool cispo = options.LossType == LossType.Cispo;
            double[] rho = Ratios(x, level == ImportanceSamplingLevel.Sequence);
            if (!cispo)
            {
                double[] kinks = [1 - (double)options.EpsilonLow, 1 + (double)options.EffectiveEpsilonHigh, .. variant.Kinks];
                for (int k = 0; k < n * t; k++)
                    foreach (double kink in kinks)
                        if (x.Mask[k] == 1)
                            Assert.That(Math.Abs(rho[k] - kink), Is.GreaterThan(100 * h * rho[k]), $"{variant} {level}: token {k} sits at a kink");
            }

            double[] logp = TestRandom.ToDouble(x.Logp), old = TestRandom.ToDouble(x.Old);
            double[] reference = TestRandom.ToDouble(x.Ref), adv = TestRandom.ToDouble(x.Advantages), mask = TestRandom.ToDouble(x.Mask);
            var referenceOptions = ReferenceOptions(options);
            var analytic = GrpoObjectiveReference.Compute(logp, old, reference, adv, mask, n, t, referenceOptions);
            AssertActive(planted, x, analytic);
            double Loss() => GrpoObjectiveReference.Compute(logp, old, reference, adv, mask, n, t, referenceOptions).Loss;
            var numeric = new double[n * t];
            for (int k = 0; k < n * t; k++)
            {
                if (mask[k] == 0) continue; // padding holds NaN and has gradient 0 by definition
                double savedLogp = logp[k], savedOld = old[k];
                logp[k] = savedLogp + h;
                if (cispo) old[k] = savedOld + h;
                double up = Loss();
                logp[k] = savedLogp - h;
                if (cispo) old[k] = savedOld - h;
                double down = Loss();
                logp[k] = savedLogp;
                old[k] = savedOld;
                numeric[k] = (up - down) / (2 * h);
            }

            // Absolute bound. Rounding: the double loss is a sum of K ≤ N·T terms of ≤ 20 operations each, so
            // it is off by ≤ (20 + K)·2^-53 times its term scale S, and the difference of two divided by 2h by
            // ≤ (20 + K)·2^-53·S / h. Truncation: h²/6 · |∂³L/∂logp³| with every weight ≤ 1: the clipped
            // surrogate's ≤ |A|ρ, SAPO's ≤ |A|(ρ + 1.2τρ² + 0.5τ²ρ³) ≤ |A|(1 + τ)²(1 + ρ)³, CISPO's 0 (linear
            // in logp with ρ held), k3's ≤ β e^{|ref − logp|}, k1's and k2's 0 (k2's is 0 beyond the second).
            double maxA = adv.Max(Math.Abs), maxRho = rho.Where(double.IsFinite).Max() * Math.Exp(h);
            double tau = Math.Max(options.SapoTemperaturePositive, options.SapoTemperatureNegative);
            double maxD = Enumerable.Range(0, n * t).Where(k => mask[k] == 1).Max(k => Math.Abs(reference[k] - logp[k])) + h;
            double third = maxA * (1 + tau) * (1 + tau) * Math.Pow(1 + maxRho, 3) + options.Beta * Math.Exp(maxD);
            double bound = (20 + n * t) * Math.Pow(2, -53) * analytic.LossTermScale / h + h * h / 6 * third;
            Compare.WorstScaledError($"{variant} {level}: reference gradient vs finite differences",
                numeric, Enumerable.Repeat(1.0, n * t).ToArray(), analytic.Gradient, bound);
        }
    }

    /// <summary>
    /// One token per completion, values worked by hand: ρ = 1.5 with A = +1, ρ = 2 with A = −1, ρ = 0.5
    /// with A = −1, ρ = 0.5 with A = +1; the reference 2 nats above the policy (ref − logp = ln 2).
    /// dapo over 4 tokens. Tolerance: each value is a few fp32 operations on ρ = exp(ln ρ) (≤ 16u ≈ 1e-6).
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void NewVariantsOfAHandWorkedBatch(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int n = 4, t = 1;
        double[] rho = [1.5, 2.0, 0.5, 0.5];
        float[] logp = [-1f, -2f, -0.5f, -3f], advantages = [1, -1, -1, 1], mask = [1, 1, 1, 1];
        float[] old = logp.Select((v, k) => (float)(v - Math.Log(rho[k]))).ToArray();
        float[] reference = logp.Select(v => v + MathF.Log(2)).ToArray();
        var x = new Inputs(n, t, logp, old, reference, advantages, mask);
        const double tolerance = 1e-6;
        (GrpoObjectiveResult Result, float[] Gradient) RunWith(GrpoObjectiveOptions o) => Run(device, x, withOld: true, passRef: o.Beta > 0, o);

        // Dual clip c = 1.8, ε = 0.2: token 1 (A = −1, ρ = 2) has −min(−2, −1.2) = 2 > 1.8, so its loss is 1.8 and its gradient 0.
        // Tokens: −min(1.5, 1.2) = −1.2; 1.8; −min(−0.5, −0.8) = 0.8 (clipped low); −min(0.5, 0.8) = −0.5. Gradients −A·ρ/4 unless clipped.
        var (dual, dualGradient) = RunWith(new GrpoObjectiveOptions { DualClip = 1.8f });
        Assert.That(dual.Loss, Is.EqualTo((-1.2 + 1.8 + 0.8 - 0.5) / 4).Within(tolerance));
        Assert.That(dual.DualClipRatio, Is.EqualTo(0.25).Within(tolerance));
        Assert.That(dual.ClipRatioLow, Is.EqualTo(0.25).Within(tolerance));
        Assert.That(dual.ClipRatioHigh, Is.EqualTo(0.25).Within(tolerance));
        Assert.That(dualGradient, Is.EqualTo(new[] { 0f, 0f, 0f, -0.5f / 4 }).Within(tolerance));

        // δ = 1.5 on the same batch: token 1 becomes −min(min(2, 1.5)·(−1), 1.2·(−1)) = 1.5, gradient 0 (ρ past δ).
        var (delta, deltaGradient) = RunWith(new GrpoObjectiveOptions { Delta = 1.5f });
        Assert.That(delta.Loss, Is.EqualTo((-1.2 + 1.5 + 0.8 - 0.5) / 4).Within(tolerance));
        Assert.That(delta.DualClipRatio, Is.EqualTo(0));
        Assert.That(deltaGradient, Is.EqualTo(new[] { 0f, 0f, 0f, -0.5f / 4 }).Within(tolerance));

        // CISPO with ε_high = 1.2: weights min(ρ, 1.2) = 1.2, 1.2, 0.5, 0.5; loss −w·A·logp; d/dlogp = −w·A; token 0 counts (A > 0, ρ > 1.2).
        var (cispo, cispoGradient) = RunWith(new GrpoObjectiveOptions { LossType = LossType.Cispo, EpsilonHigh = 1.2f });
        double[] w = [1.2, 1.2, 0.5, 0.5];
        Assert.That(cispo.Loss, Is.EqualTo(Enumerable.Range(0, n).Sum(k => -w[k] * advantages[k] * logp[k]) / 4).Within(tolerance));
        Assert.That(cispo.CispoClipRatio, Is.EqualTo(0.25).Within(tolerance));
        Assert.That(cispo.ClipRatioRegion, Is.EqualTo(0));
        Assert.That(cispoGradient, Is.EqualTo(Enumerable.Range(0, n).Select(k => (float)(-w[k] * advantages[k] / 4)).ToArray()).Within(tolerance));

        // SAPO, τ+ = 1, τ− = 1.05, grpo aggregation (one token per completion: the mean over completions):
        // loss −A·σ(τ(ρ − 1))·4/τ, d/dlogp = −4A·σ(1 − σ)·ρ, over N = 4.
        var (sapo, sapoGradient) = RunWith(new GrpoObjectiveOptions { LossType = LossType.Sapo });
        double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));
        double[] tau = advantages.Select(a => a > 0 ? 1.0 : 1.05).ToArray();
        double[] s = Enumerable.Range(0, n).Select(k => Sigmoid(tau[k] * (rho[k] - 1))).ToArray();
        Assert.That(sapo.Loss, Is.EqualTo(Enumerable.Range(0, n).Sum(k => -advantages[k] * s[k] * 4 / tau[k]) / 4).Within(tolerance));
        Assert.That(sapoGradient, Is.EqualTo(Enumerable.Range(0, n).Select(k => (float)(-4 * advantages[k] * s[k] * (1 - s[k]) * rho[k] / 4)).ToArray()).Within(tolerance));

        // KL estimators with d = logp − ref = −ln 2: k1 = −ln 2 (gradient 1), k2 = ½ ln² 2 (gradient −ln 2), k3 = 1 − ln 2 (gradient 1 − 2).
        foreach (var (estimator, kl, dKl) in new[] { (KlEstimator.K1, -Math.Log(2), 1.0), (KlEstimator.K2, 0.5 * Math.Log(2) * Math.Log(2), -Math.Log(2)), (KlEstimator.K3, 1 - Math.Log(2), -1.0) })
        {
            var (plain, plainGradient) = RunWith(new GrpoObjectiveOptions());
            var (result, gradient) = RunWith(new GrpoObjectiveOptions { Beta = 0.04f, KlEstimator = estimator });
            Assert.That(result.MeanKl, Is.EqualTo(kl).Within(tolerance), $"{estimator}");
            Assert.That(result.Loss - plain.Loss, Is.EqualTo(0.04 * kl).Within(tolerance), $"{estimator}");
            for (int k = 0; k < n; k++)
                Assert.That(gradient[k] - plainGradient[k], Is.EqualTo(0.04 * dKl / 4).Within(tolerance), $"{estimator} token {k}");
        }
    }

    private static IEnumerable<TestCaseData> BadVariantOptions()
    {
        yield return new TestCaseData(new GrpoObjectiveOptions { Delta = 1f }, "Delta", "greater than 1").SetName("Delta of 1");
        yield return new TestCaseData(new GrpoObjectiveOptions { Delta = 0.5f }, "Delta", "greater than 1").SetName("Delta below 1");
        yield return new TestCaseData(new GrpoObjectiveOptions { Delta = float.NaN }, "Delta", "finite").SetName("NaN Delta");
        yield return new TestCaseData(new GrpoObjectiveOptions { Delta = float.PositiveInfinity }, "Delta", "or null for none").SetName("infinite Delta");
        yield return new TestCaseData(new GrpoObjectiveOptions { DualClip = 1f }, "DualClip", "greater than 1").SetName("DualClip of 1");
        yield return new TestCaseData(new GrpoObjectiveOptions { DualClip = -3f }, "DualClip", "clip_ratio_c").SetName("negative DualClip");
        yield return new TestCaseData(new GrpoObjectiveOptions { DualClip = float.NaN }, "DualClip", "finite").SetName("NaN DualClip");
        yield return new TestCaseData(new GrpoObjectiveOptions { LossType = LossType.Sapo, SapoTemperaturePositive = -1f }, "SapoTemperaturePositive", "positive").SetName("negative SapoTemperaturePositive");
        yield return new TestCaseData(new GrpoObjectiveOptions { SapoTemperaturePositive = 0f }, "SapoTemperaturePositive", "positive").SetName("zero SapoTemperaturePositive");
        yield return new TestCaseData(new GrpoObjectiveOptions { LossType = LossType.Sapo, SapoTemperatureNegative = -1.05f }, "SapoTemperatureNegative", "positive").SetName("negative SapoTemperatureNegative");
        yield return new TestCaseData(new GrpoObjectiveOptions { SapoTemperatureNegative = float.NaN }, "SapoTemperatureNegative", "finite").SetName("NaN SapoTemperatureNegative");
        yield return new TestCaseData(new GrpoObjectiveOptions { KlEstimator = (KlEstimator)7 }, "KlEstimator", "K1, K2 or K3").SetName("unknown KlEstimator");
        yield return new TestCaseData(new GrpoObjectiveOptions { LossType = (LossType)6 }, "LossType", "Cispo or Sapo").SetName("unknown LossType lists the new ones");
    }

    [TestCaseSource(nameof(BadVariantOptions))]
    public void BadVariantOptionIsNamed(GrpoObjectiveOptions options, string argument, string reason)
    {
        foreach (var kind in TestDevices.Kinds())
        {
            var x = RandomInputs(TestRandom.Create(), 2, 5);
            var error = Assert.Catch<ArgumentException>(() => Run(TestDevices.Get(kind), x, true, false, options))!;
            TestContext.Out.WriteLine(error.Message);
            Assert.That(error.ParamName, Is.EqualTo(argument), kind.ToString());
            Assert.That(error.Message, Does.Contain(argument).And.Contain(reason));
        }
    }

    /// <summary>δ and the dual clip belong to the clipped surrogate: CISPO and SAPO ignore them, as TRL ignores δ.</summary>
    [Test]
    public void CispoAndSapoIgnoreDeltaAndDualClip()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var random = TestRandom.Create();
        var x = RandomInputs(random, 5, 9);
        foreach (var lossType in new[] { LossType.Cispo, LossType.Sapo })
        {
            var options = new GrpoObjectiveOptions { LossType = lossType, EpsilonHigh = 1.1f };
            var (plain, plainGradient) = Run(device, x, withOld: true, passRef: false, options);
            var (clipped, clippedGradient) = Run(device, x, withOld: true, passRef: false, options with { Delta = 1.05f, DualClip = 1.05f });
            Assert.That(clipped, Is.EqualTo(plain), $"{lossType}");
            Assert.That(clippedGradient, Is.EqualTo(plainGradient), $"{lossType}");
        }
    }
}

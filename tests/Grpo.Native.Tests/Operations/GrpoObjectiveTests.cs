using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>GrpoObjective on every backend against the double-precision reference and finite differences.</summary>
public sealed partial class GrpoObjectiveTests
{
    private static readonly LossType[] LossTypes = [LossType.Grpo, LossType.Bnpo, LossType.Dapo, LossType.DrGrpo];
    private static readonly ImportanceSamplingLevel[] Levels = [ImportanceSamplingLevel.Token, ImportanceSamplingLevel.Sequence];
    private static readonly float?[] EpsilonHighs = [null, 0.28f];
    private const float EpsilonLow = 0.2f;

    /// <summary>(N, T): a single token, odd lengths, N up to 64.</summary>
    private static readonly (int N, int T)[] Shapes = [(1, 1), (5, 37), (16, 37), (64, 9)];

    private static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds()
        from shape in Shapes
        select new TestCaseData(kind, shape.N, shape.T).SetArgDisplayNames(kind.ToString(), $"N={shape.N}", $"T={shape.T}");

    /// <summary>Host copies of one set of inputs. Padding positions hold NaN: no backend may read them.</summary>
    private sealed record Inputs(int N, int T, float[] Logp, float[] Old, float[] Ref, float[] Advantages, float[] Mask);

    /// <param name="plant">Edits the drawn inputs (before padding is poisoned and kinks are avoided), e.g. to put ratios where a variant clips.</param>
    /// <param name="kinks">Ratios, besides the clip boundaries of <see cref="EpsilonLow"/> and ε_high ∈ {0.2, 0.28}, that no ratio may come near.</param>
    private static Inputs RandomInputs(Random random, int n, int t, bool withEmptyRow = true, Action<Inputs>? plant = null,
        double[]? kinks = null)
    {
        float[] logp = Array.ConvertAll(TestRandom.Normal(random, n * t), v => -0.1f - 2 * Math.Abs(v));
        float[] noise = TestRandom.Normal(random, n * t, 0.3);
        float[] old = new float[n * t], reference = new float[n * t], mask = new float[n * t];
        float[] refNoise = TestRandom.Normal(random, n * t, 0.3);
        for (int k = 0; k < n * t; k++)
        {
            old[k] = logp[k] + noise[k];
            reference[k] = logp[k] + refNoise[k];
        }
        for (int i = 0; i < n; i++)
        {
            // Completion lengths from 0 (only when there is more than one row) to T.
            int length = i == n - 1 ? t : withEmptyRow && n > 1 && i == 0 ? 0 : random.Next(1, t + 1);
            for (int c = 0; c < t; c++) mask[i * t + c] = c < length ? 1f : 0f;
        }
        var inputs = new Inputs(n, t, logp, old, reference, TestRandom.Normal(random, n), mask);
        plant?.Invoke(inputs);
        AvoidClipBoundaries(random, inputs, kinks ?? []);
        for (int k = 0; k < n * t; k++)
            if (mask[k] == 0) logp[k] = old[k] = reference[k] = float.NaN;
        return inputs;
    }

    /// <summary>
    /// Moves old log-probs until no ratio (token or sequence level) is within 1e-3 of a clip
    /// boundary of any ε used here: there fp32 and double could disagree about which side of the
    /// kink a token is on, and finite differences would straddle it.
    /// </summary>
    private static void AvoidClipBoundaries(Random random, Inputs x, double[] kinks)
    {
        double[] boundaries = [1 - (double)EpsilonLow, 1 + (double)EpsilonLow, 1 + (double)0.28f, .. kinks];
        bool Near(double rho) => boundaries.Any(b => Math.Abs(rho - b) < 1e-3);
        for (int i = 0; i < x.N; i++)
        {
            while (true)
            {
                double sum = 0, tokens = 0;
                int nearToken = -1;
                for (int c = 0; c < x.T; c++)
                {
                    int k = i * x.T + c;
                    if (x.Mask[k] == 0) continue;
                    double logRatio = (double)x.Logp[k] - x.Old[k];
                    sum += logRatio;
                    tokens++;
                    if (Near(Math.Exp(logRatio))) nearToken = k;
                }
                bool sequenceNear = tokens > 0 && Near(Math.Exp(sum / tokens));
                if (nearToken < 0 && !sequenceNear) break;
                int move = nearToken >= 0 ? nearToken : i * x.T;
                x.Old[move] += (float)(0.01 + 0.05 * random.NextDouble());
            }
        }
    }

    private static GrpoReferenceResult Reference(Inputs x, bool withOld, GrpoObjectiveOptions o) =>
        GrpoObjectiveReference.Compute(TestRandom.ToDouble(x.Logp), withOld ? TestRandom.ToDouble(x.Old) : null,
            TestRandom.ToDouble(x.Ref), TestRandom.ToDouble(x.Advantages), TestRandom.ToDouble(x.Mask), x.N, x.T,
            ReferenceOptions(o));

    private static GrpoReferenceOptions ReferenceOptions(GrpoObjectiveOptions o) => new(
        o.LossType switch
        {
            LossType.Grpo => "grpo", LossType.Bnpo => "bnpo", LossType.Dapo => "dapo", LossType.DrGrpo => "dr_grpo",
            LossType.Cispo => "cispo", LossType.Sapo => "sapo",
            _ => throw new ArgumentOutOfRangeException(nameof(o)),
        },
        o.EpsilonLow, o.EffectiveEpsilonHigh, o.Beta, o.ImportanceSamplingLevel == ImportanceSamplingLevel.Sequence,
        o.MaxCompletionLength)
    {
        SapoTemperaturePositive = o.SapoTemperaturePositive,
        SapoTemperatureNegative = o.SapoTemperatureNegative,
        Delta = o.Delta,
        DualClip = o.DualClip,
        KlEstimator = o.KlEstimator switch { KlEstimator.K1 => "k1", KlEstimator.K2 => "k2", _ => "k3" },
    };

    /// <summary>Runs the objective; the reference tensor is passed only when <paramref name="passRef"/>.</summary>
    private static (GrpoObjectiveResult Result, float[] Gradient) Run(
        Device device, Inputs x, bool withOld, bool passRef, GrpoObjectiveOptions options)
    {
        using var logp = device.FromArray<float>(x.Logp, x.N, x.T);                          // (N, T)
        using var old = withOld ? device.FromArray<float>(x.Old, x.N, x.T) : null;           // (N, T)
        using var reference = passRef ? device.FromArray<float>(x.Ref, x.N, x.T) : null;     // (N, T)
        using var advantages = device.FromArray<float>(x.Advantages, x.N);                   // (N)
        using var mask = device.FromArray<float>(x.Mask, x.N, x.T);                          // (N, T)
        using var dLogp = Poison.Fill(device.Allocate<float>(x.N, x.T));                     // (N, T)
        var result = device.Operations.GrpoObjective(logp, old, reference, advantages, mask, options, dLogp);
        return (result, dLogp.ToArray());
    }

    /// <summary>
    /// A loss can cancel to nearly 0 while its terms do not; it is judged against 1e-2 × the size
    /// of its terms (the second entry sets Compare's floor) as well as against itself.
    /// </summary>
    private static void CompareLoss(string what, GrpoReferenceResult expected, float actual)
    {
        double scale = 10 * expected.AbsoluteLossScale;
        Compare.WorstRelativeError($"{what} (with its scale)", [expected.Loss, scale], [actual, (float)scale]);
    }

    private static void CheckAgainstReference(string what, GrpoReferenceResult expected, GrpoObjectiveResult result, float[] gradient)
    {
        CompareLoss($"{what} loss", expected, result.Loss);
        Compare.WorstRelativeError($"{what} dLogprobs", expected.Gradient, gradient);
        Compare.WorstRelativeError($"{what} clip low", expected.ClipRatioLow, result.ClipRatioLow, 1e-6);
        Compare.WorstRelativeError($"{what} clip high", expected.ClipRatioHigh, result.ClipRatioHigh, 1e-6);
        Compare.WorstRelativeError($"{what} clip region", expected.ClipRatioRegion, result.ClipRatioRegion, 1e-6);
        Compare.WorstRelativeError($"{what} mean KL", expected.MeanKl, result.MeanKl);
    }

    /// <summary>One combination of the options and of μ (old log-probs given or not).</summary>
    private sealed record Variant(LossType LossType, ImportanceSamplingLevel Level, float Beta, float? EpsilonHigh, bool WithOld)
    {
        public override string ToString() =>
            $"{LossType} {Level} beta={Beta} epsHigh={EpsilonHigh?.ToString() ?? "null"} old={WithOld}";
    }

    private static readonly Variant[] AllVariants =
        (from lossType in LossTypes
         from level in Levels
         from beta in new[] { 0f, 0.04f }
         from epsilonHigh in EpsilonHighs
         from withOld in new[] { true, false }
         select new Variant(lossType, level, beta, epsilonHigh, withOld)).ToArray();

    /// <summary>
    /// Every variant on every backend at the small shapes. The ILGPU CPU simulator needs about 15 ms
    /// per row group per call, so at the larger shapes it runs one random variant per loss type.
    /// </summary>
    private static IEnumerable<Variant> VariantsFor(DeviceKind kind, int n, Random random)
    {
        if (kind != DeviceKind.IlgpuCpu || n <= 5) return AllVariants;
        return LossTypes.Select(lossType =>
        {
            var ofType = AllVariants.Where(v => v.LossType == lossType).ToArray();
            return ofType[random.Next(ofType.Length)];
        }).ToArray();
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheReferenceForEveryVariant(DeviceKind kind, int n, int t)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        foreach (var variant in VariantsFor(kind, n, random))
        {
            var x = RandomInputs(random, n, t);
            var options = new GrpoObjectiveOptions
            {
                LossType = variant.LossType, ImportanceSamplingLevel = variant.Level, Beta = variant.Beta,
                EpsilonLow = EpsilonLow, EpsilonHigh = variant.EpsilonHigh, MaxCompletionLength = t + random.Next(3),
            };
            var (result, gradient) = Run(device, x, variant.WithOld, passRef: variant.Beta > 0, options);
            CheckAgainstReference(variant.ToString(), Reference(x, variant.WithOld, options), result, gradient);
            Assert.That(result.ClipRatioRegion, Is.EqualTo(result.ClipRatioLow + result.ClipRatioHigh).Within(1e-6));
        }
    }

    /// <summary>
    /// The fp32 gradient against central differences of the double reference loss, for every loss
    /// type and level with β &gt; 0. Ratios stay 1e-3 away from the clip boundaries and the step
    /// (1e-6) cannot cross one.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void GradientMatchesFiniteDifferences(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        const int n = 6, t = 7;
        const double h = 1e-6;
        foreach (var lossType in LossTypes)
        foreach (var level in Levels)
        foreach (bool withOld in new[] { true, false })
        {
            var x = RandomInputs(random, n, t);
            // μ = 1 means old = logp *detached*: the reference gets a frozen copy, so a perturbed logp moves ρ.
            var frozen = x with { Old = withOld ? x.Old : (float[])x.Logp.Clone() };
            var options = new GrpoObjectiveOptions
            {
                LossType = lossType, ImportanceSamplingLevel = level, Beta = 0.04f, EpsilonHigh = 0.28f, MaxCompletionLength = t,
            };
            var (_, gradient) = Run(device, x, withOld, passRef: true, options);

            double[] logp = TestRandom.ToDouble(frozen.Logp), old = TestRandom.ToDouble(frozen.Old);
            double[] reference = TestRandom.ToDouble(frozen.Ref), adv = TestRandom.ToDouble(frozen.Advantages);
            double[] mask = TestRandom.ToDouble(frozen.Mask);
            var referenceOptions = ReferenceOptions(options);
            double Loss(double[] lp) => GrpoObjectiveReference.Compute(lp, old, reference, adv, mask, n, t, referenceOptions).Loss;
            var numeric = new double[n * t];
            for (int k = 0; k < n * t; k++)
            {
                if (mask[k] == 0) continue; // padding holds NaN and has gradient 0 by definition
                double saved = logp[k];
                logp[k] = saved + h;
                double up = Loss(logp);
                logp[k] = saved - h;
                double down = Loss(logp);
                logp[k] = saved;
                numeric[k] = (up - down) / (2 * h);
            }
            string what = $"{lossType} {level} old={withOld}";
            Compare.WorstRelativeError($"{what}: reference gradient vs finite differences",
                numeric, GrpoObjectiveReference.Compute(logp, old, reference, adv, mask, n, t, referenceOptions).Gradient, 1e-5);
            Compare.WorstRelativeError($"{what}: {kind} gradient vs finite differences", numeric, gradient, 1e-4);
        }
    }

    /// <summary>
    /// μ = 1, β = 0: ρ = 1, so every token's loss is −A and the loss is −Σ_i c_i |o_i| A_i, which is
    /// 0 for grpo when each group's advantages sum to 0. The gradient −A·c_i is not 0 all the same.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void OnePolicyUpdateHasRatioOneAndANonZeroGradient(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        const int n = 8, t = 5;
        var x = RandomInputs(random, n, t, withEmptyRow: false);
        Array.Fill(x.Mask, 1f);
        for (int k = 0; k < n * t; k++) if (float.IsNaN(x.Logp[k])) x.Logp[k] = -1f;
        // Groups of 4 with zero-mean advantages, as ComputeAdvantages produces.
        float[] groupAdvantages = [1.5f, -0.5f, -1.25f, 0.25f];
        for (int i = 0; i < n; i++) x.Advantages[i] = groupAdvantages[i % 4] * (i < 4 ? 1 : -2);

        foreach (var level in Levels)
        {
            var options = new GrpoObjectiveOptions { LossType = LossType.Grpo, ImportanceSamplingLevel = level };
            var (result, gradient) = Run(device, x, withOld: false, passRef: false, options);
            Assert.That(result.Loss, Is.EqualTo(0f).Within(1e-6), $"{level}: zero-mean advantages, ρ = 1");
            Assert.That(result.ClipRatioRegion, Is.EqualTo(0f));
            Assert.That(result.MeanKl, Is.EqualTo(0f));
            for (int k = 0; k < n * t; k++)
            {
                float expected = -x.Advantages[k / t] / (t * n); // grpo: c_i = 1 / (|o_i| N)
                Assert.That(gradient[k], Is.EqualTo(expected).Within(1e-7), $"{level} token {k}");
                Assert.That(gradient[k], Is.Not.EqualTo(0f));
            }

            // Passing the current log-probs as old gives the same result as null.
            var (same, sameGradient) = Run(device, x with { Old = (float[])x.Logp.Clone() }, withOld: true, passRef: false, options);
            Assert.That(same, Is.EqualTo(result));
            Assert.That(sameGradient, Is.EqualTo(gradient));

            // With β > 0 the ratio part still sums to 0: the loss is the KL part alone, β Σ_i c_i Σ_t KL_t.
            float[] refNoise = TestRandom.Normal(random, n * t, 0.5);
            var withKl = x with { Ref = x.Logp.Select((v, k) => v + refNoise[k]).ToArray() };
            var klOptions = options with { Beta = 0.04f };
            var (klResult, klGradient) = Run(device, withKl, withOld: false, passRef: true, klOptions);
            double klSum = 0;
            var expectedGradient = new double[n * t];
            for (int k = 0; k < n * t; k++)
            {
                double d = (double)withKl.Ref[k] - withKl.Logp[k];
                klSum += Math.Exp(d) - d - 1;
                expectedGradient[k] = (-x.Advantages[k / t] + 0.04 * (1 - Math.Exp(d))) / (t * n);
            }
            Compare.WorstRelativeError($"{level}: μ = 1 loss = β·KL part", 0.04 * klSum / (t * n), klResult.Loss);
            Compare.WorstRelativeError($"{level}: μ = 1 mean KL", klSum / (t * n), klResult.MeanKl);
            Compare.WorstRelativeError($"{level}: μ = 1 gradient", expectedGradient, klGradient);
        }
    }

    /// <summary>
    /// Four completions of three tokens, ε = 0.2: row 0 has A = +1 and ρ = 1.5 on two masked tokens
    /// (clipped high); row 1 A = −1, ρ = 0.5 on three (clipped low); row 2 A = +1, ρ = 0.5 on one
    /// (not clipped: the ratio still moves it); row 3 A = −1, ρ = 1.5 on three (not clipped).
    /// Nine masked tokens: low 3/9, high 2/9, region 5/9. At sequence level (GSPO) TRL's clip metrics count
    /// completions: low 1/4, high 1/4, region 2/4. With ε_high = 0.6, ρ = 1.5 is inside.
    /// The reference is 2 nats above the policy everywhere, so KL_t = 1 − ln 2.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ClipRatiosAndKlOfAHandWorkedBatch(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int n = 4, t = 3;
        float up = MathF.Log(1.5f), down = MathF.Log(0.5f);
        float[] logRatio = [up, up, up, down, down, down, down, down, down, up, up, up];
        float[] mask = [1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1];
        float[] logp = [-1, -2, -3, -0.5f, -1.5f, -2.5f, -1, -1, -1, -3, -2, -1];
        float[] old = new float[n * t], reference = new float[n * t];
        for (int k = 0; k < n * t; k++)
        {
            old[k] = logp[k] - logRatio[k];
            reference[k] = logp[k] + MathF.Log(2);
        }
        var x = new Inputs(n, t, logp, old, reference, [1, -1, 1, -1], mask);
        foreach (var level in Levels) // every row's tokens share one ratio, so both levels agree on the loss
        {
            bool sequence = level == ImportanceSamplingLevel.Sequence;
            var options = new GrpoObjectiveOptions { ImportanceSamplingLevel = level, Beta = 0.04f };
            var (result, _) = Run(device, x, withOld: true, passRef: true, options);
            Assert.That(result.ClipRatioLow, Is.EqualTo(sequence ? 1f / 4 : 3f / 9).Within(1e-6), $"{level}");
            Assert.That(result.ClipRatioHigh, Is.EqualTo(sequence ? 1f / 4 : 2f / 9).Within(1e-6), $"{level}");
            Assert.That(result.ClipRatioRegion, Is.EqualTo(sequence ? 2f / 4 : 5f / 9).Within(1e-6), $"{level}");
            Assert.That(result.MeanKl, Is.EqualTo(1 - Math.Log(2)).Within(1e-6), $"{level}");
            // dapo: per-token losses −1.2 (row 0), +0.8 (row 1), −0.5 (row 2), +1.5 (row 3), over 9 tokens.
            double expectedLoss = (2 * -1.2 + 3 * 0.8 + 1 * -0.5 + 3 * 1.5) / 9 + 0.04 * (1 - Math.Log(2));
            Assert.That(result.Loss, Is.EqualTo(expectedLoss).Within(1e-5), $"{level}");

            var wide = options with { EpsilonHigh = 0.6f };
            var (wideResult, _) = Run(device, x, withOld: true, passRef: true, wide);
            Assert.That(wideResult.ClipRatioHigh, Is.EqualTo(0f), $"{level}: ρ = 1.5 < 1 + 0.6");
            Assert.That(wideResult.ClipRatioLow, Is.EqualTo(sequence ? 1f / 4 : 3f / 9).Within(1e-6));
        }
    }

    [Test]
    public void ManagedCpuResultsDoNotDependOnTheThreadCount()
    {
        var x = RandomInputs(TestRandom.Create(), 33, 37);
        var options = new GrpoObjectiveOptions { LossType = LossType.Grpo, Beta = 0.04f };
        using var oneThread = new Grpo.Native.Cpu.CpuDevice(1);
        using var threeThreads = new Grpo.Native.Cpu.CpuDevice(3);
        var (expected, expectedGradient) = Run(oneThread, x, withOld: true, passRef: true, options);
        var (result, gradient) = Run(threeThreads, x, withOld: true, passRef: true, options);
        Assert.That(result, Is.EqualTo(expected));
        Assert.That(gradient, Is.EqualTo(expectedGradient));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void WithoutBetaTheReferenceIsNeverRead(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = RandomInputs(random, 4, 9);
        var options = new GrpoObjectiveOptions();
        var (expected, expectedGradient) = Run(device, x, withOld: true, passRef: false, options);
        var poisoned = x with { Ref = Enumerable.Repeat(float.NaN, x.Ref.Length).ToArray() };
        var (result, gradient) = Run(device, poisoned, withOld: true, passRef: true, options);
        Assert.That(result, Is.EqualTo(expected));
        Assert.That(result.MeanKl, Is.EqualTo(0f));
        Assert.That(gradient, Is.EqualTo(expectedGradient));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void MaskOtherThanZeroOrOneIsNamed(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var x = RandomInputs(TestRandom.Create(), 4, 5, withEmptyRow: false);
        foreach (float bad in new[] { 0.5f, float.NaN, 2f })
        {
            var mask = (float[])x.Mask.Clone();
            mask[2 * 5 + 1] = bad;
            mask[3 * 5] = bad;
            var error = Assert.Throws<ArgumentException>(() => Run(device, x with { Mask = mask }, true, false, new GrpoObjectiveOptions()))!;
            TestContext.Out.WriteLine(error.Message);
            Assert.That(error.ParamName, Is.EqualTo("mask"));
            Assert.That(error.Message, Does.Contain("2 value(s)").And.Contain("completion 2"));
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void NonFiniteOldLogprobsOrAdvantagesAreNamed(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var x = RandomInputs(TestRandom.Create(), 4, 5, withEmptyRow: false);
        var completionMask = (float[])x.Mask.Clone();
        completionMask[2 * 5 + 3] = 1; // the position made bad below is a completion token
        x = x with { Mask = completionMask };
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var old = (float[])x.Old.Clone();
            old[2 * 5 + 3] = bad;
            var oldError = Assert.Throws<ArgumentException>(() => Run(device, x with { Old = old }, true, false, new GrpoObjectiveOptions()))!;
            Assert.That(oldError.ParamName, Is.EqualTo("oldLogprobs"));
            Assert.That(oldError.Message, Does.Contain("[2, 3]").And.Contain("finite"));
            var advantages = (float[])x.Advantages.Clone();
            advantages[1] = bad;
            var advantageError = Assert.Throws<ArgumentException>(() => Run(device, x with { Advantages = advantages }, true, false, new GrpoObjectiveOptions()))!;
            Assert.That(advantageError.ParamName, Is.EqualTo("advantages"));
            Assert.That(advantageError.Message, Does.Contain("[1]"));
        }
        // A non-finite value at a padding position is never read, so it is no error.
        var mask = (float[])x.Mask.Clone();
        var padded = (float[])x.Old.Clone();
        mask[2 * 5 + 3] = 0;
        padded[2 * 5 + 3] = float.NaN;
        Assert.DoesNotThrow(() => Run(device, x with { Old = padded, Mask = mask }, true, false, new GrpoObjectiveOptions()));
    }

    private static IEnumerable<TestCaseData> BadOptions()
    {
        yield return new TestCaseData(new GrpoObjectiveOptions { EpsilonLow = -0.1f }, "EpsilonLow").SetName("negative EpsilonLow");
        yield return new TestCaseData(new GrpoObjectiveOptions { EpsilonLow = float.NaN }, "EpsilonLow").SetName("NaN EpsilonLow");
        yield return new TestCaseData(new GrpoObjectiveOptions { EpsilonHigh = -1f }, "EpsilonHigh").SetName("negative EpsilonHigh");
        yield return new TestCaseData(new GrpoObjectiveOptions { EpsilonHigh = float.PositiveInfinity }, "EpsilonHigh").SetName("infinite EpsilonHigh");
        yield return new TestCaseData(new GrpoObjectiveOptions { Beta = -0.01f }, "Beta").SetName("negative Beta");
        yield return new TestCaseData(new GrpoObjectiveOptions { Beta = float.NaN }, "Beta").SetName("NaN Beta");
        yield return new TestCaseData(new GrpoObjectiveOptions { LossType = (LossType)9 }, "LossType").SetName("unknown LossType");
        yield return new TestCaseData(new GrpoObjectiveOptions { ImportanceSamplingLevel = (ImportanceSamplingLevel)5 }, "ImportanceSamplingLevel").SetName("unknown level");
        yield return new TestCaseData(new GrpoObjectiveOptions { LossType = LossType.DrGrpo }, "MaxCompletionLength").SetName("DrGrpo without MaxCompletionLength");
        yield return new TestCaseData(new GrpoObjectiveOptions { LossType = LossType.DrGrpo, MaxCompletionLength = 4 }, "MaxCompletionLength").SetName("MaxCompletionLength shorter than T");
        yield return new TestCaseData(new GrpoObjectiveOptions { MaxCompletionLength = -1 }, "MaxCompletionLength").SetName("negative MaxCompletionLength");
        yield return new TestCaseData(new GrpoObjectiveOptions { Beta = 0.04f }, "refLogprobs").SetName("Beta without refLogprobs");
    }

    [TestCaseSource(nameof(BadOptions))]
    public void BadOptionIsNamed(GrpoObjectiveOptions options, string argument)
    {
        foreach (var kind in TestDevices.Kinds())
        {
            var x = RandomInputs(TestRandom.Create(), 2, 5);
            var error = Assert.Catch<ArgumentException>(() => Run(TestDevices.Get(kind), x, true, false, options))!;
            TestContext.Out.WriteLine(error.Message);
            Assert.That(error.ParamName, Is.EqualTo(argument), kind.ToString());
            Assert.That(error.Message, Does.Contain(argument));
            if (argument == "refLogprobs") Assert.That(error.Message, Does.Contain("Beta = 0"), "the message gives the fix");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void WrongShapesAreNamed(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        var options = new GrpoObjectiveOptions { Beta = 0.1f };
        using var good = device.Allocate<float>(4, 5);      // (N, T)
        using var ragged = device.Allocate<float>(4, 6);    // wrong T
        using var flat = device.Allocate<float>(20);        // rank 1
        using var adv = device.Allocate<float>(4);          // (N)
        using var adv5 = device.Allocate<float>(5);
        ExpectNamed(() => ops.GrpoObjective(flat, null, good, adv, good, options, good), "logprobs");
        ExpectNamed(() => ops.GrpoObjective(good, ragged, good, adv, good, options, good), "oldLogprobs");
        ExpectNamed(() => ops.GrpoObjective(good, null, ragged, adv, good, options, good), "refLogprobs");
        ExpectNamed(() => ops.GrpoObjective(good, null, good, adv5, good, options, good), "advantages");
        ExpectNamed(() => ops.GrpoObjective(good, null, good, adv, ragged, options, good), "mask");
        ExpectNamed(() => ops.GrpoObjective(good, null, good, adv, good, options, ragged), "dLogprobs");
        ExpectNamed(() => ops.GrpoObjective(good, null, good, adv, good, null!, good), "options");
    }

    private static void ExpectNamed(TestDelegate call, string argument)
    {
        var error = Assert.Catch<ArgumentException>(call)!;
        TestContext.Out.WriteLine(error.Message);
        Assert.That(error.ParamName, Is.EqualTo(argument));
        Assert.That(error.Message, Does.Contain(argument));
    }
}

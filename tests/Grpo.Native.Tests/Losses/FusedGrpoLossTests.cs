using Grpo.Native.Devices;
using Grpo.Native.Losses;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Losses;

/// <summary>
/// The fused GRPO loss from hidden states against the chain of the two references
/// (gather forward → objective → gather backward) in double, and the chain itself against
/// finite differences of the whole loss.
/// </summary>
public sealed class FusedGrpoLossTests
{
    // The gradients flow through the gather's backward, whose elements are sums of cancelling terms (dz sums to
    // zero over the vocabulary; the entropy term's log p + H cancels), so they are judged against Σ |term|
    // (FusedGrpoLossReference's scales), which no cancellation shrinks. An element sums at most V + M = 95 terms
    // (over the vocabulary for d hidden, over the tokens for d LM head, chunked or not), each dz carrying the
    // ~10 ulps of its exp, log and the objective's gradient (no cancellation in g: MakeCase keeps |A| >= 0.5):
    // (95 + 10)·2^-24 = 6.3e-6 < 1e-5.
    // (An element-relative measure failed here: 1.36e-3 on a cancelled d LM head element, seed 8.)
    private const double GradientTolerance = 1e-5;

    private sealed record Case(
        int N, int T, int C, int V, float[] Hidden, float[] LmHead, int[] Tokens, float[] Mask, float[] Advantages,
        float[]? Old, float[]? Ref, float Temperature, GrpoObjectiveOptions Options);

    private static Case MakeCase(Random random, int n, int t, int c, int v, bool withOld, float beta,
        LossType lossType, ImportanceSamplingLevel level, float temperature, bool separatedEntropies = false)
    {
        float[] hidden = TestRandom.Normal(random, n * t * c, 0.5);   // (N, T, C)
        float[] lmHead = TestRandom.Normal(random, v * c, 0.5);       // (V, C)
        if (separatedEntropies) SeparateEntropies(random, hidden, lmHead, n * t, t, c, v, temperature);
        var tokens = new int[n * t];                                  // (N, T)
        var mask = new float[n * t];                                  // (N, T)
        for (int i = 0; i < n; i++)
        {
            int length = random.Next(1, t + 1);
            for (int s = 0; s < t; s++)
            {
                tokens[i * t + s] = random.Next(v);
                mask[i * t + s] = s < length ? 1 : 0;
            }
        }
        // (N) |A| >= 0.5: the policy term then dominates each token's gradient g, so g carries no cancellation of its own.
        // With A near 0 the KL term β(1 − e^(ref − logp)) dominates, and for ref ≈ logp it cancels: its fp32 input's
        // rounding then reads as a large relative error of g, which no bound on the backward's sums covers.
        float[] advantages = Array.ConvertAll(TestRandom.Normal(random, n), a => MathF.CopySign(0.5f + MathF.Abs(a), a));
        // Old and reference log-probs near the current ones, so ratios are near 1 but not equal.
        var current = LogSoftmaxGatherReference.Forward(TestRandom.ToDouble(hidden), TestRandom.ToDouble(lmHead), tokens,
            n * t, c, v, temperature).Logprobs;
        float[] Near(double spread) => current.Select(x => (float)(x + spread * (random.NextDouble() - 0.5))).ToArray();
        var options = new GrpoObjectiveOptions
        {
            LossType = lossType, Beta = beta, ImportanceSamplingLevel = level,
            EpsilonLow = 0.2f, EpsilonHigh = 0.28f, MaxCompletionLength = t,
        };
        return new Case(n, t, c, v, hidden, lmHead, tokens, mask, advantages,
            withOld ? Near(0.2) : null, beta > 0 ? Near(0.5) : null, temperature, options);
    }

    /// <summary>
    /// The states of <see cref="WithSeparatedEntropies"/>: every position of an even completion is 0 (logits all 0,
    /// entropy exactly log V); every position of an odd one is drawn (scale 3) until its entropy at the case's
    /// temperature is at most log V − 1. The draw is redone rather than trusted, so the gap holds for every seed
    /// (a plain scaled draw left one odd token at log V − 0.2 for seed 1439944410).
    /// </summary>
    private static void SeparateEntropies(Random random, float[] hidden, float[] lmHead, int rows, int t, int c, int v, float temperature)
    {
        for (int row = 0; row < rows; row++)
        {
            var state = hidden.AsSpan(row * c, c);                    // (C)
            if (row / t % 2 == 0) { state.Clear(); continue; }
            while (Entropy(state, lmHead, c, v, temperature) > Math.Log(v) - 1)
                TestRandom.Normal(random, c, 1.5).CopyTo(state);
        }
    }

    /// <summary>Entropy in double of softmax(W·h / T) for one state h (C) and head W (V, C).</summary>
    private static double Entropy(ReadOnlySpan<float> state, float[] lmHead, int c, int v, float temperature)
    {
        var logits = new double[v];
        for (int j = 0; j < v; j++)
        {
            double dot = 0;
            for (int k = 0; k < c; k++) dot += (double)state[k] * lmHead[j * c + k];
            logits[j] = dot / temperature;
        }
        double max = logits.Max(), sum = logits.Sum(z => Math.Exp(z - max));
        return -logits.Sum(z => Math.Exp(z - max) / sum * (z - max - Math.Log(sum)));
    }

    private static GrpoReferenceOptions ReferenceOptions(Case k) => new(
        k.Options.LossType switch
        {
            LossType.Grpo => "grpo", LossType.Bnpo => "bnpo", LossType.Dapo => "dapo", LossType.Cispo => "cispo", LossType.Sapo => "sapo",
            _ => "dr_grpo",
        },
        k.Options.EpsilonLow, k.Options.EffectiveEpsilonHigh, k.Options.Beta,
        k.Options.ImportanceSamplingLevel == ImportanceSamplingLevel.Sequence, k.Options.MaxCompletionLength)
    {
        SapoTemperaturePositive = k.Options.SapoTemperaturePositive,
        SapoTemperatureNegative = k.Options.SapoTemperatureNegative,
        Delta = k.Options.Delta,
        DualClip = k.Options.DualClip,
        KlEstimator = k.Options.KlEstimator switch { KlEstimator.K1 => "k1", KlEstimator.K2 => "k2", _ => "k3" },
        EntropyCoefficient = k.Options.EntropyCoefficient,
        TopEntropyQuantile = k.Options.TopEntropyQuantile,
    };

    /// <summary>
    /// Entropy masking whose threshold no rounding can move across a token, on a case made with
    /// <c>separatedEntropies</c>: every even completion's hidden states are 0, so its logits are all 0 and each of
    /// its tokens has entropy exactly log V; every odd one's tokens have entropy at most log V − 1
    /// (<see cref="SeparateEntropies"/>). top_entropy_quantile is set so that q·(n − 1) = n_low − ½ over the n loss
    /// tokens, n_low of them in odd rows: the threshold is the midpoint between the largest low entropy and log V,
    /// which keeps exactly the even rows' tokens, with a margin of at least ½ against fp32 errors of ~1e-6
    /// (asserted by the callers). Plus an entropy bonus, so both entropy paths run together.
    /// </summary>
    private static Case WithSeparatedEntropies(Case k)
    {
        int lowTokens = 0, tokens = 0;
        for (int i = 0; i < k.N; i++)
            for (int s = 0; s < k.T; s++)
                if (k.Mask[i * k.T + s] == 1) { tokens++; if (i % 2 == 1) lowTokens++; }
        float top = (float)(1 - (lowTokens - 0.5) / (tokens - 1));
        return k with { Options = k.Options with { TopEntropyQuantile = top, EntropyCoefficient = 0.03f } };
    }

    /// <summary>
    /// The newer options on top of a case's. Old log-probs are within ±0.1 of the current ones, so ratios lie in
    /// [0.905, 1.105]: the CISPO bound (5, TRL's recommendation), δ and c are far from every ratio, and the
    /// chain (not the clipping, which GrpoObjectiveTests exercises) is what these cases check.
    /// </summary>
    private static GrpoObjectiveOptions WithExtra(GrpoObjectiveOptions options, string extra) => extra switch
    {
        "" => options,
        "cispo" => options with { EpsilonHigh = 5f, KlEstimator = KlEstimator.K2 },
        "sapo" => options with { SapoTemperaturePositive = 1.5f, SapoTemperatureNegative = 0.7f, KlEstimator = KlEstimator.K1 },
        "delta, dual clip" => options with { Delta = 1.5f, DualClip = 2f },
        "entropy bonus" => options with { EntropyCoefficient = 0.05f },
        "entropy bonus and mask" => options, // WithSeparatedEntropies sets both, with the inputs they need
        _ => throw new ArgumentOutOfRangeException(nameof(extra), extra, "unknown extra"),
    };

    /// <summary>The whole loss in double, through the shared chain of references.</summary>
    private static FusedGrpoLossReferenceResult Reference(Case k, double[] hidden, double[] lmHead) =>
        FusedGrpoLossReference.Compute(hidden, lmHead, k.Tokens, TestRandom.ToDouble(k.Mask), TestRandom.ToDouble(k.Advantages),
            k.Old is null ? null : TestRandom.ToDouble(k.Old), k.Ref is null ? null : TestRandom.ToDouble(k.Ref),
            k.N, k.T, k.C, k.V, k.Temperature, ReferenceOptions(k));

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var kind in TestDevices.Kinds())
        {
            yield return new TestCaseData(kind, LossType.Dapo, ImportanceSamplingLevel.Token, 0f, false, 1f, "");
            yield return new TestCaseData(kind, LossType.Grpo, ImportanceSamplingLevel.Token, 0.04f, true, 0.7f, "");
            yield return new TestCaseData(kind, LossType.DrGrpo, ImportanceSamplingLevel.Sequence, 0.04f, true, 1f, "");
            yield return new TestCaseData(kind, LossType.Bnpo, ImportanceSamplingLevel.Sequence, 0f, true, 1f, "");
            yield return new TestCaseData(kind, LossType.Cispo, ImportanceSamplingLevel.Token, 0.04f, true, 0.8f, "cispo");
            yield return new TestCaseData(kind, LossType.Sapo, ImportanceSamplingLevel.Sequence, 0.04f, true, 1f, "sapo");
            yield return new TestCaseData(kind, LossType.Dapo, ImportanceSamplingLevel.Token, 0f, true, 1f, "delta, dual clip");
            yield return new TestCaseData(kind, LossType.Dapo, ImportanceSamplingLevel.Token, 0.04f, true, 0.8f, "entropy bonus");
            yield return new TestCaseData(kind, LossType.Grpo, ImportanceSamplingLevel.Sequence, 0f, true, 1f, "entropy bonus and mask");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheChainedReferences(DeviceKind kind, LossType lossType, ImportanceSamplingLevel level,
        float beta, bool withOld, float temperature, string extra)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        const int n = 6, t = 7, c = 24, v = 53;
        bool separated = extra == "entropy bonus and mask";
        var k = MakeCase(random, n, t, c, v, withOld, beta, lossType, level, temperature, separated);
        k = k with { Options = WithExtra(k.Options, extra) };
        if (separated) k = WithSeparatedEntropies(k);
        var expected = Reference(k, TestRandom.ToDouble(k.Hidden), TestRandom.ToDouble(k.LmHead));
        if (k.Options.TopEntropyQuantile < 1)
            Assert.That(expected.Objective.EntropyThreshold, Is.LessThanOrEqualTo(Math.Log(v) - 0.5 + 1e-9), "the threshold sits well below the kept tokens' log V");

        using var hidden = device.FromArray<float>(k.Hidden, n, t, c);
        using var lmHead = device.FromArray<float>(k.LmHead, v, c);
        using var tokens = device.FromArray<int>(k.Tokens, n, t);
        using var mask = device.FromArray<float>(k.Mask, n, t);
        using var advantages = device.FromArray<float>(k.Advantages, n);
        using var old = k.Old is null ? null : device.FromArray<float>(k.Old, n, t);
        using var reference = k.Ref is null ? null : device.FromArray<float>(k.Ref, n, t);
        using var dHidden = device.Allocate<float>(n, t, c);
        using var dLmHead = device.Allocate<float>(v, c);
        dHidden.Fill(0);
        dLmHead.Fill(0);
        using var loss = new FusedGrpoLoss(device, n, t);
        Poison.Fill(loss.Logprobs);
        Poison.Fill(loss.Entropy);

        var result = loss.Compute(hidden, lmHead, tokens, mask, advantages, old, reference, k.Temperature, k.Options,
            dHidden, dLmHead);

        // The loss is a sum of signed terms: judge it against the scale of its absolute terms.
        double lossError = Math.Abs(result.Loss - expected.Objective.Loss) / Math.Max(expected.Objective.AbsoluteLossScale, 1e-12);
        TestContext.Out.WriteLine($"loss {result.Loss:G9} vs {expected.Objective.Loss:G9}: relative error {lossError:E2}");
        Assert.That(lossError, Is.LessThanOrEqualTo(1e-4));
        float[] logprobs = loss.Logprobs.ToArray();
        Compare.WorstRelativeError("logprobs", expected.Logprobs, logprobs);
        Compare.WorstRelativeError("mean entropy", expected.MeanEntropy, result.MeanEntropy);
        Compare.WorstScaledError("d hidden", expected.DHidden, expected.DHiddenScale, dHidden.ToArray(), GradientTolerance);
        Compare.WorstScaledError("d lm head", expected.DLmHead, expected.DLmHeadScale, dLmHead.ToArray(), GradientTolerance);
        Assert.That(result.ClipRatioRegion, Is.EqualTo(expected.Objective.ClipRatioRegion).Within(1e-6));
        Assert.That(result.DualClipRatio, Is.EqualTo(expected.Objective.DualClipRatio).Within(1e-6));
        Assert.That(result.CispoClipRatio, Is.EqualTo(expected.Objective.CispoClipRatio).Within(1e-6));
        Assert.That(result.MeanKl, Is.EqualTo(expected.Objective.MeanKl).Within(1e-4 * Math.Max(1, expected.Objective.MeanKl)));
    }

    [Test]
    public void ChainedReferenceGradientMatchesFiniteDifferences()
    {
        var random = TestRandom.Create();
        const int n = 3, t = 4, c = 6, v = 11;
        var k = MakeCase(random, n, t, c, v, withOld: true, beta: 0.04f, LossType.Grpo, ImportanceSamplingLevel.Sequence, 0.8f);
        double[] hidden = TestRandom.ToDouble(k.Hidden), lmHead = TestRandom.ToDouble(k.LmHead);
        var analytic = Reference(k, hidden, lmHead);

        double Loss(double[] h, double[] w) => Reference(k, h, w).Objective.Loss;
        var numericHidden = new double[hidden.Length];
        var numericLmHead = new double[lmHead.Length];
        const double step = 1e-5;
        for (int i = 0; i < hidden.Length; i++)
        {
            double saved = hidden[i];
            hidden[i] = saved + step; double up = Loss(hidden, lmHead);
            hidden[i] = saved - step; double down = Loss(hidden, lmHead);
            hidden[i] = saved;
            numericHidden[i] = (up - down) / (2 * step);
        }
        for (int i = 0; i < lmHead.Length; i++)
        {
            double saved = lmHead[i];
            lmHead[i] = saved + step; double up = Loss(hidden, lmHead);
            lmHead[i] = saved - step; double down = Loss(hidden, lmHead);
            lmHead[i] = saved;
            numericLmHead[i] = (up - down) / (2 * step);
        }
        // A kink of the clipped objective between the two probes would make the difference meaningless. None can
        // occur: old log-probs are within ±0.1 of the current ones, so every ratio lies in [e^-0.1, e^0.1] =
        // [0.905, 1.105], inside the clip range (0.8, 1.28) with a margin that a 1e-5 probe cannot cross.
        Assert.That(analytic.Objective.ClipRatioRegion, Is.EqualTo(0), "no ratio may reach a clip boundary");
        Compare.WorstRelativeError("d hidden, analytic vs finite differences", numericHidden, analytic.DHidden, 1e-5);
        Compare.WorstRelativeError("d lm head, analytic vs finite differences", numericLmHead, analytic.DLmHead, 1e-5);
    }

    /// <summary>
    /// The entropy bonus's chain (objective → dEntropy → dH/dz → d hidden, d LM head) in the reference against
    /// finite differences of its loss, with the entropy mask on (its threshold is O(1) from every token, so no
    /// probe moves a token across it). Bound as in <see cref="ChainedReferenceGradientMatchesFiniteDifferences"/>.
    /// </summary>
    [Test]
    public void EntropyTermsReferenceGradientMatchesFiniteDifferences()
    {
        var random = TestRandom.Create();
        const int n = 4, t = 3, c = 6, v = 11;
        var k = WithSeparatedEntropies(MakeCase(random, n, t, c, v, withOld: true, beta: 0.04f, LossType.Dapo, ImportanceSamplingLevel.Token, 0.8f,
            separatedEntropies: true));
        k = k with { Options = k.Options with { EntropyCoefficient = 0.3f } };
        double[] hidden = TestRandom.ToDouble(k.Hidden), lmHead = TestRandom.ToDouble(k.LmHead);
        var analytic = Reference(k, hidden, lmHead);
        Assert.That(analytic.Objective.ClipRatioRegion, Is.EqualTo(0), "no ratio may reach a clip boundary");
        Assert.That(analytic.Objective.EntropyThreshold, Is.LessThanOrEqualTo(Math.Log(v) - 0.5 + 1e-9), "the threshold sits well below the kept tokens' log V");

        double Loss() => Reference(k, hidden, lmHead).Objective.Loss;
        double[] numericHidden = FiniteDifferences.Central(Loss, hidden), numericLmHead = FiniteDifferences.Central(Loss, lmHead);
        Compare.WorstRelativeError("d hidden, analytic vs finite differences", numericHidden, analytic.DHidden, 1e-5);
        Compare.WorstRelativeError("d lm head, analytic vs finite differences", numericLmHead, analytic.DLmHead, 1e-5);
    }

    [Test]
    public void WrongHiddenShapeNamesTheArgument()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        using var loss = new FusedGrpoLoss(device, 2, 3);
        using var hidden = device.Allocate<float>(2, 4, 8);
        using var lmHead = device.Allocate<float>(5, 8);
        using var tokens = device.Allocate<int>(2, 3);
        using var mask = device.Allocate<float>(2, 3);
        using var advantages = device.Allocate<float>(2);
        using var dHidden = device.Allocate<float>(2, 3, 8);
        using var dLmHead = device.Allocate<float>(5, 8);
        var error = Assert.Throws<ArgumentException>(() => loss.Compute(hidden, lmHead, tokens, mask, advantages, null, null,
            1f, new GrpoObjectiveOptions(), dHidden, dLmHead));
        Assert.That(error!.ParamName, Is.EqualTo("hidden"));
        Assert.That(error.Message, Does.Contain("[2, 4, 8]").And.Contain("[2, 3, 8]"));
    }
}

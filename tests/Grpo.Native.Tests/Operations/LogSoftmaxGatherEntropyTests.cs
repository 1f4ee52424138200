using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// The gather backward's entropy term (the entropy bonus's path into the logits): every backend against the
/// double reference, and the reference's dH/dz = −p (log p + H) against finite differences of the entropy.
/// </summary>
public sealed class LogSoftmaxGatherEntropyTests
{
    // Same cancellation as the log-prob part (LogSoftmaxGatherTests.GradientTolerance): the entropy term
    // −p_j (log p_j + H) also sums to zero over the vocabulary and its log p_j + H cancels, so gradients are judged
    // against Σ |term| (LogSoftmaxGatherReference.BackwardScales): at most max(V, M) = 1001 terms, each dz carrying
    // ~20 ulps (exp, log, the rounded log-sum-exp and entropy it is given), (1001 + 20)·2^-24 = 6.1e-5 < 1e-4.
    private const double GradientTolerance = 1e-4;

    private static readonly (int M, int C, int V, float T, int Chunk)[] Shapes =
    [
        (5, 33, 7, 0.7f, 0),
        (67, 64, 50, 0.7f, 16),
        (9, 8, 1001, 1f, 4),
    ];

    public static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds()
        from s in Shapes
        select new TestCaseData(kind, s.M, s.C, s.V, s.T, s.Chunk);

    [TestCaseSource(nameof(Cases))]
    public void EntropyGradientMatchesTheReference(DeviceKind kind, int m, int c, int v, float temperature, int chunk)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        // Logits of standard deviation about 2, as LogSoftmaxGatherTests draws them.
        float[] hiddenValues = TestRandom.Normal(random, m * c);
        float[] lmHeadValues = TestRandom.Normal(random, v * c, 2.0 / Math.Sqrt(c));
        int[] targetValues = Enumerable.Range(0, m).Select(_ => random.Next(v)).ToArray();
        float[] g = TestRandom.Normal(random, m), gEntropy = TestRandom.Normal(random, m);
        double[] h = TestRandom.ToDouble(hiddenValues), w = TestRandom.ToDouble(lmHeadValues);
        var forward = LogSoftmaxGatherReference.Forward(h, w, targetValues, m, c, v, temperature);

        using var hidden = device.FromArray<float>(hiddenValues, m, c);
        using var lmHead = device.FromArray<float>(lmHeadValues, v, c);
        using var targets = device.FromArray<int>(targetValues, m);
        using var lse = device.FromArray<float>(Array.ConvertAll(forward.LogSumExp, x => (float)x), m);
        using var entropy = device.FromArray<float>(Array.ConvertAll(forward.Entropy, x => (float)x), m);
        using var dLogprobs = device.FromArray<float>(g, m);
        using var dEntropy = device.FromArray<float>(gEntropy, m);
        using var dHidden = device.Allocate<float>(m, c);
        using var dLmHead = device.Allocate<float>(v, c);
        dHidden.Fill(0);
        dLmHead.Fill(0);
        if (chunk == 0) device.Operations.LogSoftmaxGatherBackward(hidden, lmHead, targets, temperature, lse, dLogprobs, dHidden, dLmHead, entropy, dEntropy);
        else if (device.Operations is CpuOperations cpu) cpu.LogSoftmaxGatherBackward(hidden, lmHead, targets, temperature, lse, dLogprobs, dHidden, dLmHead, chunk, entropy, dEntropy);
        else ((IlgpuOperations)device.Operations).LogSoftmaxGatherBackward(hidden, lmHead, targets, temperature, lse, dLogprobs, dHidden, dLmHead, chunk, entropy, dEntropy);
        device.Synchronize();

        var (dh, dw) = LogSoftmaxGatherReference.Backward(h, w, targetValues, m, c, v, temperature, TestRandom.ToDouble(g), TestRandom.ToDouble(gEntropy));
        var (dhScale, dwScale) = LogSoftmaxGatherReference.BackwardScales(h, w, targetValues, m, c, v, temperature,
            TestRandom.ToDouble(g), TestRandom.ToDouble(gEntropy));
        Compare.WorstScaledError("dHidden with the entropy term", dh, dhScale, dHidden.ToArray(), GradientTolerance);
        Compare.WorstScaledError("dLmHead with the entropy term", dw, dwScale, dLmHead.ToArray(), GradientTolerance);
    }

    /// <summary>L = Σ_m a_m logp_m + Σ_m b_m H_m: the reference's analytic gradient against central differences.</summary>
    [Test]
    public void ReferenceEntropyGradientMatchesFiniteDifferences()
    {
        const int m = 3, c = 5, v = 7;
        const double temperature = 0.7;
        var random = TestRandom.Create();
        double[] h = TestRandom.ToDouble(TestRandom.Normal(random, m * c));
        double[] w = TestRandom.ToDouble(TestRandom.Normal(random, v * c, 2.0 / Math.Sqrt(c)));
        int[] targets = Enumerable.Range(0, m).Select(_ => random.Next(v)).ToArray();
        double[] a = TestRandom.ToDouble(TestRandom.Normal(random, m)), b = TestRandom.ToDouble(TestRandom.Normal(random, m));
        double Loss()
        {
            var forward = LogSoftmaxGatherReference.Forward(h, w, targets, m, c, v, temperature);
            return Enumerable.Range(0, m).Sum(i => a[i] * forward.Logprobs[i] + b[i] * forward.Entropy[i]);
        }

        // Central differences in double, step 1e-5: truncation (h²/6 · a third derivative of O(10)) and
        // rounding (2^-53 · |L| / h) are both ~1e-10, far below the 1e-6 bound.
        double[] numericH = FiniteDifferences.Central(Loss, h), numericW = FiniteDifferences.Central(Loss, w);
        var (dh, dw) = LogSoftmaxGatherReference.Backward(h, w, targets, m, c, v, temperature, a, b);
        Compare.WorstRelativeError("reference dHidden vs finite differences", numericH, dh, 1e-6);
        Compare.WorstRelativeError("reference dLmHead vs finite differences", numericW, dw, 1e-6);
    }

    [Test]
    public void OnlyOneOfTheEntropyPairIsRefused()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        using var hidden = device.Allocate<float>(2, 3);
        using var lmHead = device.Allocate<float>(4, 3);
        using var targets = device.Allocate<int>(2);
        using var perToken = device.Allocate<float>(2);
        using var dHidden = device.Allocate<float>(2, 3);
        using var dLmHead = device.Allocate<float>(4, 3);
        targets.Fill(0);
        var error = Assert.Throws<ArgumentException>(() => device.Operations.LogSoftmaxGatherBackward(
            hidden, lmHead, targets, 1f, perToken, perToken, dHidden, dLmHead, entropy: perToken, dEntropy: null))!;
        Assert.That(error.ParamName, Is.EqualTo("dEntropy"));
        Assert.That(error.Message, Does.Contain("both"));
    }
}

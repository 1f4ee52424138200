using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>The fused log-softmax-gather forward and backward on every backend against the double reference.</summary>
public sealed class LogSoftmaxGatherTests
{
    // Gradient elements are sums of terms that cancel: dz_{m,j} = g (1[j = y] − p_j) sums to zero over j, so
    // dHidden_m = (g/T)(W_y − E_p[W]) is near zero whenever p_y is near one while it still carries the fp32 rounding
    // of its O(1) terms. So gradients are judged against Σ |term| (LogSoftmaxGatherReference.BackwardScales), which no
    // cancellation shrinks: an element sums at most max(V, M) = 1001 terms, each dz carrying ~20 ulps (its exp and the
    // rounded log-sum-exp it is given), (1001 + 20)·2^-24 = 6.1e-5 < 1e-4. Forward outputs keep the 1e-4 bound.
    private const double GradientTolerance = 1e-4;

    // (M, C, V, temperature, chunk tokens; 0 = the backend's own choice through the public API).
    private static readonly (int M, int C, int V, float T, int Chunk)[] Shapes =
    [
        (1, 8, 1, 1f, 0),
        (5, 33, 7, 0.7f, 0),
        (5, 8, 1001, 1f, 2),
        (67, 64, 50, 0.7f, 16),
        (67, 33, 1001, 1f, 0),
        (67, 8, 7, 0.7f, 32),
    ];

    public static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in Shapes
        select new TestCaseData(kind, s.M, s.C, s.V, s.T, s.Chunk));

    private sealed record Inputs(float[] Hidden, float[] LmHead, int[] Targets);

    private static Inputs Draw(Random random, int m, int c, int v)
    {
        // Logits of standard deviation about 2: peaked enough that the softmax is not uniform.
        float[] hidden = TestRandom.Normal(random, m * c);
        float[] lmHead = TestRandom.Normal(random, v * c, 2.0 / Math.Sqrt(c));
        var targets = new int[m];
        for (int i = 0; i < m; i++) targets[i] = random.Next(v);
        return new Inputs(hidden, lmHead, targets);
    }

    private static void Forward(Device device, Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float t,
        Tensor<float> logprobs, Tensor<float> lse, Tensor<float>? entropy, int chunk)
    {
        if (chunk == 0) device.Operations.LogSoftmaxGatherForward(hidden, lmHead, targets, t, logprobs, lse, entropy);
        else if (device.Operations is CpuOperations cpu) cpu.LogSoftmaxGatherForward(hidden, lmHead, targets, t, logprobs, lse, entropy, chunk);
        else ((IlgpuOperations)device.Operations).LogSoftmaxGatherForward(hidden, lmHead, targets, t, logprobs, lse, entropy, chunk);
        device.Synchronize();
    }

    private static void Backward(Device device, Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float t,
        Tensor<float> lse, Tensor<float> dLogprobs, Tensor<float> dHidden, Tensor<float> dLmHead, int chunk)
    {
        if (chunk == 0) device.Operations.LogSoftmaxGatherBackward(hidden, lmHead, targets, t, lse, dLogprobs, dHidden, dLmHead);
        else if (device.Operations is CpuOperations cpu) cpu.LogSoftmaxGatherBackward(hidden, lmHead, targets, t, lse, dLogprobs, dHidden, dLmHead, chunk);
        else ((IlgpuOperations)device.Operations).LogSoftmaxGatherBackward(hidden, lmHead, targets, t, lse, dLogprobs, dHidden, dLmHead, chunk);
        device.Synchronize();
    }

    [TestCaseSource(nameof(Cases))]
    public void ForwardMatchesReference(DeviceKind kind, int m, int c, int v, float temperature, int chunk)
    {
        var device = TestDevices.Get(kind);
        var input = Draw(TestRandom.Create(), m, c, v);
        using var hidden = device.FromArray<float>(input.Hidden, m, c);
        using var lmHead = device.FromArray<float>(input.LmHead, v, c);
        using var targets = device.FromArray<int>(input.Targets, m);
        using var logprobs = Poison.Fill(device.Allocate<float>(m));
        using var lse = Poison.Fill(device.Allocate<float>(m));
        using var entropy = Poison.Fill(device.Allocate<float>(m));
        Forward(device, hidden, lmHead, targets, temperature, logprobs, lse, entropy, chunk);

        var expected = LogSoftmaxGatherReference.Forward(TestRandom.ToDouble(input.Hidden), TestRandom.ToDouble(input.LmHead),
            input.Targets, m, c, v, temperature);
        // log p = z_y − lse, lse and H = lse − Σ p z all subtract O(|z|) terms (log p → 0 as p_y → 1, H → 0 as p peaks), so
        // each is judged against the size of what it subtracts plus the logits' own terms, Z = max_j Σ_c |h_c w_jc| / T:
        // the fp32 logits are within C·u·Z, and the rest adds ~10 roundings: (64 + 10)·2^-24 = 4.4e-6 < 1e-5.
        var (logprobScale, entropyScale) = ForwardScales(input, m, c, v, temperature, expected);
        Compare.WorstScaledError("logprobs", expected.Logprobs, logprobScale, logprobs.ToArray(), 1e-5);
        Compare.WorstScaledError("logSumExp", expected.LogSumExp, logprobScale, lse.ToArray(), 1e-5);
        Compare.WorstScaledError("entropy", expected.Entropy, entropyScale, entropy.ToArray(), 1e-5);

        // Without the optional entropy the other outputs are the same.
        using var logprobs2 = Poison.Fill(device.Allocate<float>(m));
        using var lse2 = Poison.Fill(device.Allocate<float>(m));
        Forward(device, hidden, lmHead, targets, temperature, logprobs2, lse2, null, chunk);
        Assert.That(logprobs2.ToArray(), Is.EqualTo(logprobs.ToArray()), "logprobs without entropy");
        Assert.That(lse2.ToArray(), Is.EqualTo(lse.ToArray()), "logSumExp without entropy");
    }

    /// <summary>Per token: Z + |z_y| + |lse| (log-prob, log-sum-exp) and Z + |lse| + Σ_j p_j |z_j| (entropy); see ForwardMatchesReference.</summary>
    private static (double[] Logprob, double[] Entropy) ForwardScales(Inputs input, int m, int c, int v, float temperature,
        LogSoftmaxGatherReference.ForwardResult expected)
    {
        double[] h = TestRandom.ToDouble(input.Hidden), w = TestRandom.ToDouble(input.LmHead);
        var z = LogSoftmaxGatherReference.Logits(h, w, m, c, v, temperature);
        var logprob = new double[m];
        var entropy = new double[m];
        for (int i = 0; i < m; i++)
        {
            double terms = 0, expectedMagnitude = 0;
            for (int j = 0; j < v; j++)
            {
                double sum = 0;
                for (int k = 0; k < c; k++) sum += Math.Abs(h[i * c + k] * w[j * c + k]);
                terms = Math.Max(terms, sum / temperature);
                expectedMagnitude += Math.Exp(z[i][j] - expected.LogSumExp[i]) * Math.Abs(z[i][j]);
            }
            logprob[i] = terms + Math.Abs(z[i][input.Targets[i]]) + Math.Abs(expected.LogSumExp[i]);
            entropy[i] = terms + Math.Abs(expected.LogSumExp[i]) + expectedMagnitude;
        }
        return (logprob, entropy);
    }

    [TestCaseSource(nameof(Cases))]
    public void BackwardAccumulatesTheReferenceGradient(DeviceKind kind, int m, int c, int v, float temperature, int chunk)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var input = Draw(random, m, c, v);
        float[] g = TestRandom.Normal(random, m);
        // Known starting values: the op must add to them, not overwrite them.
        float[] dHiddenStart = TestRandom.Normal(random, m * c, 0.1);
        float[] dLmHeadStart = TestRandom.Normal(random, v * c, 0.1);
        var h = TestRandom.ToDouble(input.Hidden);
        var w = TestRandom.ToDouble(input.LmHead);
        var forward = LogSoftmaxGatherReference.Forward(h, w, input.Targets, m, c, v, temperature);

        using var hidden = device.FromArray<float>(input.Hidden, m, c);
        using var lmHead = device.FromArray<float>(input.LmHead, v, c);
        using var targets = device.FromArray<int>(input.Targets, m);
        using var lse = device.FromArray<float>(Array.ConvertAll(forward.LogSumExp, x => (float)x), m);
        using var dLogprobs = device.FromArray<float>(g, m);
        using var dHidden = device.FromArray<float>(dHiddenStart, m, c);
        using var dLmHead = device.FromArray<float>(dLmHeadStart, v, c);
        Backward(device, hidden, lmHead, targets, temperature, lse, dLogprobs, dHidden, dLmHead, chunk);

        var (dh, dw) = LogSoftmaxGatherReference.Backward(h, w, input.Targets, m, c, v, temperature, TestRandom.ToDouble(g));
        var (dhScale, dwScale) = LogSoftmaxGatherReference.BackwardScales(h, w, input.Targets, m, c, v, temperature, TestRandom.ToDouble(g));
        for (int i = 0; i < dh.Length; i++) { dh[i] += dHiddenStart[i]; dhScale[i] += Math.Abs(dHiddenStart[i]); }
        for (int i = 0; i < dw.Length; i++) { dw[i] += dLmHeadStart[i]; dwScale[i] += Math.Abs(dLmHeadStart[i]); }
        Compare.WorstScaledError("dHidden", dh, dhScale, dHidden.ToArray(), GradientTolerance);
        Compare.WorstScaledError("dLmHead", dw, dwScale, dLmHead.ToArray(), GradientTolerance);
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void GradientMatchesFiniteDifferences(DeviceKind kind)
    {
        const int m = 3, c = 5, v = 7;
        const float temperature = 0.7f;
        var random = TestRandom.Create();
        var input = Draw(random, m, c, v);
        var h = TestRandom.ToDouble(input.Hidden);
        var w = TestRandom.ToDouble(input.LmHead);
        double[] weights = TestRandom.ToDouble(TestRandom.Normal(random, m));
        double Loss() => LogSoftmaxGatherReference.WeightedLoss(h, w, input.Targets, m, c, v, temperature, weights);

        // Central differences of L = Σ c_m logp_m in double, step 1e-5: truncation and rounding errors both ~1e-10.
        double[] Numeric(double[] x) => FiniteDifferences.Central(Loss, x);
        double[] numericH = Numeric(h), numericW = Numeric(w);
        var (dh, dw) = LogSoftmaxGatherReference.Backward(h, w, input.Targets, m, c, v, temperature, weights);
        Compare.WorstRelativeError("reference dHidden vs finite differences", numericH, dh, 1e-6);
        Compare.WorstRelativeError("reference dLmHead vs finite differences", numericW, dw, 1e-6);

        var device = TestDevices.Get(kind);
        var lse = LogSoftmaxGatherReference.Forward(h, w, input.Targets, m, c, v, temperature).LogSumExp;
        using var hidden = device.FromArray<float>(input.Hidden, m, c);
        using var lmHead = device.FromArray<float>(input.LmHead, v, c);
        using var targets = device.FromArray<int>(input.Targets, m);
        using var logSumExp = device.FromArray<float>(Array.ConvertAll(lse, x => (float)x), m);
        using var dLogprobs = device.FromArray<float>(Array.ConvertAll(weights, x => (float)x), m);
        using var dHidden = device.Allocate<float>(m, c);
        using var dLmHead = device.Allocate<float>(v, c);
        dHidden.Fill(0);
        dLmHead.Fill(0);
        device.Operations.LogSoftmaxGatherBackward(hidden, lmHead, targets, temperature, logSumExp, dLogprobs, dHidden, dLmHead);
        device.Synchronize();
        // The fp32 result is within (7 + 20)·2^-24 of the scale and the differences within ~1e-10 absolute.
        var (dhScale, dwScale) = LogSoftmaxGatherReference.BackwardScales(h, w, input.Targets, m, c, v, temperature, weights);
        Compare.WorstScaledError("fp32 dHidden vs finite differences", numericH, dhScale, dHidden.ToArray(), GradientTolerance);
        Compare.WorstScaledError("fp32 dLmHead vs finite differences", numericW, dwScale, dLmHead.ToArray(), GradientTolerance);
    }

    [Test]
    public void CpuResultsDoNotDependOnTheThreadCount()
    {
        const int m = 67, c = 33, v = 1001;
        var input = Draw(TestRandom.Create(), m, c, v);
        float[][] Run(int threads)
        {
            using var device = new CpuDevice(threads);
            using var hidden = device.FromArray<float>(input.Hidden, m, c);
            using var lmHead = device.FromArray<float>(input.LmHead, v, c);
            using var targets = device.FromArray<int>(input.Targets, m);
            using var logprobs = device.Allocate<float>(m);
            using var lse = device.Allocate<float>(m);
            using var entropy = device.Allocate<float>(m);
            using var dHidden = device.Allocate<float>(m, c);
            using var dLmHead = device.Allocate<float>(v, c);
            dHidden.Fill(0);
            dLmHead.Fill(0);
            device.Operations.LogSoftmaxGatherForward(hidden, lmHead, targets, 0.7f, logprobs, lse, entropy);
            device.Operations.LogSoftmaxGatherBackward(hidden, lmHead, targets, 0.7f, lse, logprobs, dHidden, dLmHead);
            return [logprobs.ToArray(), lse.ToArray(), entropy.ToArray(), dHidden.ToArray(), dLmHead.ToArray()];
        }
        var one = Run(1);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var many = Run(threads);
            for (int i = 0; i < one.Length; i++) Assert.That(many[i], Is.EqualTo(one[i]), $"output {i} with {threads} threads");
        }
    }

    [Test]
    public void ScratchIsOneChunkOfLogitsNotTheWholeTensor()
    {
        const int m = 2048, c = 128, v = 32000;
        var cpu = TestDevices.Get(DeviceKind.Cpu).Operations;
        var ilgpu = TestDevices.Get(DeviceKind.IlgpuCpu).Operations;
        long unfused = 4L * m * v;
        long cpuBytes = cpu.LogSoftmaxGatherScratchBytes(m, v, c);
        long ilgpuBytes = ilgpu.LogSoftmaxGatherScratchBytes(m, v, c);
        TestContext.Out.WriteLine($"unfused logits {unfused:N0} B, CPU scratch {cpuBytes:N0} B, ILGPU scratch {ilgpuBytes:N0} B");
        Assert.That(cpuBytes, Is.LessThan(unfused / 10));
        Assert.That(ilgpuBytes, Is.LessThanOrEqualTo(64L * 1024 * 1024));
        // O(chunk · V): more tokens need no more scratch.
        Assert.That(cpu.LogSoftmaxGatherScratchBytes(16 * m, v, c), Is.EqualTo(cpuBytes));
        Assert.That(ilgpu.LogSoftmaxGatherScratchBytes(16 * m, v, c), Is.EqualTo(ilgpuBytes));
    }

    private sealed class Set : IDisposable
    {
        public required Tensor<float> Hidden, LmHead, Logprobs, Lse, Entropy, DLogprobs, DHidden, DLmHead;
        public required Tensor<int> Targets;

        public void Dispose()
        {
            foreach (var t in new[] { Hidden, LmHead, Logprobs, Lse, Entropy, DLogprobs, DHidden, DLmHead }) t.Dispose();
            Targets.Dispose();
        }
    }

    private static Set Allocate(Device device, int m, int c, int v, int[] targets)
    {
        var set = new Set
        {
            Hidden = device.Allocate<float>(m, c), LmHead = device.Allocate<float>(v, c),
            Logprobs = device.Allocate<float>(m), Lse = device.Allocate<float>(m), Entropy = device.Allocate<float>(m),
            DLogprobs = device.Allocate<float>(m), DHidden = device.Allocate<float>(m, c), DLmHead = device.Allocate<float>(v, c),
            Targets = device.FromArray<int>(targets, m),
        };
        foreach (var t in new[] { set.Hidden, set.LmHead, set.DLogprobs, set.Lse }) t.Fill(0.5f);
        return set;
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsABadTemperature(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var s = Allocate(device, 2, 3, 4, [0, 3]);
        foreach (float t in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
        {
            var forward = Assert.Throws<ArgumentOutOfRangeException>(() =>
                device.Operations.LogSoftmaxGatherForward(s.Hidden, s.LmHead, s.Targets, t, s.Logprobs, s.Lse, s.Entropy))!;
            Assert.That(forward.ParamName, Is.EqualTo("temperature"));
            Assert.That(forward.Message, Does.Contain("positive and finite"));
            var backward = Assert.Throws<ArgumentOutOfRangeException>(() =>
                device.Operations.LogSoftmaxGatherBackward(s.Hidden, s.LmHead, s.Targets, t, s.Lse, s.DLogprobs, s.DHidden, s.DLmHead))!;
            Assert.That(backward.ParamName, Is.EqualTo("temperature"));
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsATargetOutsideTheVocabulary(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        foreach (int bad in new[] { -1, 4, 1000 })
        {
            using var s = Allocate(device, 3, 3, 4, [0, 3, bad]);
            var forward = Assert.Throws<ArgumentOutOfRangeException>(() =>
                device.Operations.LogSoftmaxGatherForward(s.Hidden, s.LmHead, s.Targets, 1f, s.Logprobs, s.Lse, s.Entropy))!;
            Assert.That(forward.ParamName, Is.EqualTo("targets"));
            Assert.That(forward.Message, Does.Contain("'targets'[2]").And.Contain($"is {bad}").And.Contain("[0, 4)"));
            var backward = Assert.Throws<ArgumentOutOfRangeException>(() =>
                device.Operations.LogSoftmaxGatherBackward(s.Hidden, s.LmHead, s.Targets, 1f, s.Lse, s.DLogprobs, s.DHidden, s.DLmHead))!;
            Assert.That(backward.ParamName, Is.EqualTo("targets"));
            Assert.That(backward.Message, Does.Contain("'targets'[2]").And.Contain($"is {bad}"));
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsWrongShapes(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var s = Allocate(device, 2, 3, 4, [0, 3]);
        using var wideHead = device.Allocate<float>(4, 5);
        using var flatHidden = device.Allocate<float>(6);
        using var shortOut = device.Allocate<float>(1);
        using var wrongGrad = device.Allocate<float>(3, 3);
        using var shortTargets = device.FromArray<int>([0], 1);
        var ops = device.Operations;

        void Expect(string name, TestDelegate call)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), call)!;
            Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain(name));
        }

        Expect("hidden", () => ops.LogSoftmaxGatherForward(flatHidden, s.LmHead, s.Targets, 1f, s.Logprobs, s.Lse, null));
        Expect("lmHead", () => ops.LogSoftmaxGatherForward(s.Hidden, wideHead, s.Targets, 1f, s.Logprobs, s.Lse, null));
        Expect("targets", () => ops.LogSoftmaxGatherForward(s.Hidden, s.LmHead, shortTargets, 1f, s.Logprobs, s.Lse, null));
        Expect("logprobs", () => ops.LogSoftmaxGatherForward(s.Hidden, s.LmHead, s.Targets, 1f, shortOut, s.Lse, null));
        Expect("logSumExp", () => ops.LogSoftmaxGatherForward(s.Hidden, s.LmHead, s.Targets, 1f, s.Logprobs, shortOut, null));
        Expect("entropy", () => ops.LogSoftmaxGatherForward(s.Hidden, s.LmHead, s.Targets, 1f, s.Logprobs, s.Lse, shortOut));
        Expect("logSumExp", () => ops.LogSoftmaxGatherBackward(s.Hidden, s.LmHead, s.Targets, 1f, shortOut, s.DLogprobs, s.DHidden, s.DLmHead));
        Expect("dLogprobs", () => ops.LogSoftmaxGatherBackward(s.Hidden, s.LmHead, s.Targets, 1f, s.Lse, shortOut, s.DHidden, s.DLmHead));
        Expect("dHidden", () => ops.LogSoftmaxGatherBackward(s.Hidden, s.LmHead, s.Targets, 1f, s.Lse, s.DLogprobs, wrongGrad, s.DLmHead));
        Expect("dLmHead", () => ops.LogSoftmaxGatherBackward(s.Hidden, s.LmHead, s.Targets, 1f, s.Lse, s.DLogprobs, s.DHidden, wrongGrad));
    }
}

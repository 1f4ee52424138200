using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>Causal grouped-query attention over packed sequences, forward and backward, on every backend against the double reference.</summary>
public sealed class AttentionTests
{
    // Gradients are sums of terms that cancel: dS_ij = p_ij (dO_i·v_j − D_i) sums to zero over j (so
    // dQ_i = scale Σ_j dS_ij (k_j − k̄)), dO_i·v_j − D_i subtracts two O(1) dot products, and
    // dV_j = Σ_i p_ij dO_i adds dO rows of both signs. Each term carries the fp32 rounding of the scores
    // (an absolute error δ in s_ij is a relative error δ in p_ij, ~1e-7) and of the fp32 lse, so an
    // element that cancels to ~1e-3 of the tensor's largest shows up to ~2e-4 "relative" error (measured)
    // while being right to fp32 precision. A one-token sequence cancels completely (p = 1, so dS = dO·v − dO·o
    // is rounding alone): its dK row is the starting value plus ~1e-7·|dO||v||q| of noise, which against a
    // small starting element read 1.5e-3 element-wise (seed 124128831, CUDA's group shapes). So each gradient
    // row (one token's D values of one head) is judged against its own largest value: the noise is ~1e-6 of
    // the O(1) terms, and a row's largest value is O(0.1) at least (D ≥ 3 starting values of N(0, 0.1) and
    // the gradient terms), leaving the 1e-3 bound 100× above the worst case. (The finite-difference test starts
    // from zero, where a first token's dQ row is exactly 0: it judges each gradient normwise, derived there.)
    private const double GradientTolerance = 1e-3;

    // The forward output Σ_j p_ij v_j adds values of both signs, so it is judged against Σ_j p_ij |v_j| — the reference's
    // output for |v|, since p does not depend on v — which no cancellation shrinks. The fp32 output is within
    // (2·D·Σ_c |q_c k_c|·scale + S + 10)·u of it: each score's dot product misses by at most D·u·Σ|q k|·scale, which
    // moves p (and its normaliser) by as much relatively, and the sum over S ≤ 17 keys adds S·u; with D ≤ 33 and
    // Σ|q k|·scale ≈ 4 for unit draws, (264 + 17 + 10)·2^-24 = 1.7e-5 < 5e-5. The log-sum-exp has no cancellation and
    // keeps the default 1e-4.
    private const double OutputTolerance = 5e-5;

    // Sequence lengths (0 = an empty sequence: seqStarts repeats an offset), H, KVH, D.
    private static readonly (int[] Lengths, int H, int Kvh, int D)[] Shapes =
    [
        ([1], 1, 1, 8),
        ([17], 4, 4, 16),
        ([1, 5, 17], 4, 2, 33),
        ([5, 0, 17], 6, 1, 8),
        ([0, 5, 1], 4, 4, 33),
        ([1, 5, 17], 6, 1, 16),
        ([17, 5, 0], 1, 1, 33),
        ([3, 5, 17], 4, 2, 8),
    ];

    // Sequences longer than the CPU backend's row blocks and its short-sequence cutoff, where it scores
    // blocks of rows with small matrix products (next to short ones that it still scores pair by pair).
    // Not on the ILGPU simulator: too slow at these sizes.
    private static readonly (int[] Lengths, int H, int Kvh, int D)[] LongShapes =
    [
        ([130, 1, 100, 16, 15], 4, 2, 33),
        ([97], 6, 1, 16),
        ([49, 0, 300], 2, 2, 8),
        // 36 long (sequence, kv head) pairs: the CPU backward gives each pair to one work item.
        ([17, 40, 16, 33, 20, 50, 5, 18, 25, 16], 8, 4, 9),
    ];

    public static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        (from kind in TestDevices.Kinds()
         from s in Shapes
         select new TestCaseData(kind, s.Lengths, s.H, s.Kvh, s.D))
        .Concat(
         from kind in TestDevices.Kinds()
         where kind != DeviceKind.IlgpuCpu
         from s in LongShapes
         select new TestCaseData(kind, s.Lengths, s.H, s.Kvh, s.D)));

    private static int[] Starts(int[] lengths)
    {
        var starts = new int[lengths.Length + 1];
        for (int b = 0; b < lengths.Length; b++) starts[b + 1] = starts[b] + lengths[b];
        return starts;
    }

    private sealed record Inputs(int[] Starts, int M, int H, int Kvh, int D, float Scale, float[] Q, float[] K, float[] V)
    {
        public double[] Qd => TestRandom.ToDouble(Q);
        public double[] Kd => TestRandom.ToDouble(K);
        public double[] Vd => TestRandom.ToDouble(V);
        public AttentionReference.ForwardResult Reference() => AttentionReference.Forward(Qd, Kd, Vd, Starts, M, H, Kvh, D, Scale);

        /// <summary>Σ_j p_ij |v_j| (M, H, D): the output's scale, the reference forward of |v|.</summary>
        public double[] OutputScale() => AttentionReference.Forward(Qd, Kd, Array.ConvertAll(Vd, Math.Abs), Starts, M, H, Kvh, D, Scale).Output;
    }

    private static Inputs Draw(Random random, int[] lengths, int h, int kvh, int d)
    {
        int[] starts = Starts(lengths);
        int m = starts[^1];
        // Unit-variance inputs and scale 1/sqrt(D): scores of standard deviation about 1, as in a trained transformer.
        return new Inputs(starts, m, h, kvh, d, 1f / MathF.Sqrt(d),
            TestRandom.Normal(random, m * h * d), TestRandom.Normal(random, m * kvh * d), TestRandom.Normal(random, m * kvh * d));
    }

    /// <summary>The device tensors of one attention call, forward outputs poisoned.</summary>
    private sealed class Set : IDisposable
    {
        public Set(Device device, Inputs x)
        {
            Q = device.FromArray<float>(x.Q, x.M, x.H, x.D);
            K = device.FromArray<float>(x.K, x.M, x.Kvh, x.D);
            V = device.FromArray<float>(x.V, x.M, x.Kvh, x.D);
            SeqStarts = device.FromArray<int>(x.Starts, x.Starts.Length);
            Output = Poison.Fill(device.Allocate<float>(x.M, x.H, x.D));
            Lse = Poison.Fill(device.Allocate<float>(x.M, x.H));
            DOutput = device.Allocate<float>(x.M, x.H, x.D);
            DQ = device.Allocate<float>(x.M, x.H, x.D);
            DK = device.Allocate<float>(x.M, x.Kvh, x.D);
            DV = device.Allocate<float>(x.M, x.Kvh, x.D);
            Scale = x.Scale;
        }

        public readonly Tensor<float> Q, K, V, Output, Lse, DOutput, DQ, DK, DV;
        public readonly Tensor<int> SeqStarts;
        public float Scale;

        public void Forward(Device device)
        {
            device.Operations.AttentionForward(Output, Lse, Q, K, V, SeqStarts, Scale);
            device.Synchronize();
        }

        public void Backward(Device device)
        {
            device.Operations.AttentionBackward(DQ, DK, DV, DOutput, Q, K, V, Output, Lse, SeqStarts, Scale);
            device.Synchronize();
        }

        public void Dispose()
        {
            foreach (var t in new[] { Q, K, V, Output, Lse, DOutput, DQ, DK, DV }) t.Dispose();
            SeqStarts.Dispose();
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void ForwardMatchesReference(DeviceKind kind, int[] lengths, int h, int kvh, int d)
    {
        var device = TestDevices.Get(kind);
        var x = Draw(TestRandom.Create(), lengths, h, kvh, d);
        using var s = new Set(device, x);
        s.Forward(device);
        var expected = x.Reference();
        Compare.WorstScaledError("output", expected.Output, x.OutputScale(), s.Output.ToArray(), OutputTolerance);
        Compare.WorstRelativeError("logSumExp", expected.LogSumExp, s.Lse.ToArray());
    }

    [TestCaseSource(nameof(Cases))]
    public void BackwardAccumulatesTheReferenceGradient(DeviceKind kind, int[] lengths, int h, int kvh, int d)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, lengths, h, kvh, d);
        float[] dO = TestRandom.Normal(random, x.M * h * d);
        // Known starting values: the op must add to them, not overwrite them.
        float[] dqStart = TestRandom.Normal(random, x.M * h * d, 0.1);
        float[] dkStart = TestRandom.Normal(random, x.M * kvh * d, 0.1);
        float[] dvStart = TestRandom.Normal(random, x.M * kvh * d, 0.1);
        var forward = x.Reference();

        using var s = new Set(device, x);
        // The forward's outputs from the reference, rounded to fp32: the test isolates the backward.
        s.Output.CopyFrom(Array.ConvertAll(forward.Output, y => (float)y));
        s.Lse.CopyFrom(Array.ConvertAll(forward.LogSumExp, y => (float)y));
        s.DOutput.CopyFrom(dO);
        s.DQ.CopyFrom(dqStart);
        s.DK.CopyFrom(dkStart);
        s.DV.CopyFrom(dvStart);
        s.Backward(device);

        var g = AttentionReference.Backward(x.Qd, x.Kd, x.Vd, TestRandom.ToDouble(dO), x.Starts, x.M, h, kvh, d, x.Scale);
        for (int i = 0; i < g.DQuery.Length; i++) g.DQuery[i] += dqStart[i];
        for (int i = 0; i < g.DKey.Length; i++) g.DKey[i] += dkStart[i];
        for (int i = 0; i < g.DValue.Length; i++) g.DValue[i] += dvStart[i];
        Compare.WorstRowRelativeError("dQuery", g.DQuery, s.DQ.ToArray(), d, GradientTolerance);
        Compare.WorstRowRelativeError("dKey", g.DKey, s.DK.ToArray(), d, GradientTolerance);
        Compare.WorstRowRelativeError("dValue", g.DValue, s.DV.ToArray(), d, GradientTolerance);
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void GradientMatchesFiniteDifferences(DeviceKind kind)
    {
        // Grouped-query (2 query heads per kv head), an empty sequence in the middle, an odd D.
        int[] lengths = [3, 0, 4];
        const int h = 4, kvh = 2, d = 5;
        var random = TestRandom.Create();
        var x = Draw(random, lengths, h, kvh, d);
        double[] q = x.Qd, k = x.Kd, v = x.Vd;
        double[] weights = TestRandom.ToDouble(TestRandom.Normal(random, x.M * h * d));
        double Loss() => AttentionReference.WeightedLoss(q, k, v, x.Starts, x.M, h, kvh, d, x.Scale, weights);

        // Central differences of L = Σ w ⊙ output in double, step 1e-5: truncation and rounding errors both ~1e-10.
        double[] Numeric(double[] p) => FiniteDifferences.Central(Loss, p);
        double[] numericQ = Numeric(q), numericK = Numeric(k), numericV = Numeric(v);
        var g = AttentionReference.Backward(q, k, v, weights, x.Starts, x.M, h, kvh, d, x.Scale);
        Compare.WorstRelativeError("reference dQuery vs finite differences", numericQ, g.DQuery, 1e-6);
        Compare.WorstRelativeError("reference dKey vs finite differences", numericK, g.DKey, 1e-6);
        Compare.WorstRelativeError("reference dValue vs finite differences", numericV, g.DValue, 1e-6);

        // The fp32 op end to end (its own forward's output and lse) against the reference gradient.
        var device = TestDevices.Get(kind);
        using var s = new Set(device, x);
        s.Forward(device);
        s.DOutput.CopyFrom(Array.ConvertAll(weights, w => (float)w));
        s.DQ.Fill(0);
        s.DK.Fill(0);
        s.DV.Fill(0);
        s.Backward(device);
        // From zero, a first token's dQ row is exactly 0 in the reference while fp32 leaves the ~1e-6 rounding of its
        // cancelled O(1) terms (p = 1: dS = dO·v − dO·o), which element-wise against 1e-3 × the tensor's largest read 0.79 of
        // GradientTolerance in a stress run. Normwise, no near-zero element inflates it: every element's error is at most
        // ~2e-6 (the terms' rounding, as above), so ‖error‖₂ ≤ √140 · 2e-6 ≈ 2.4e-5 for these ≤ 140 values, while ‖g‖₂ ≥ max |g|,
        // which is O(0.1) at least (N(0, 1) weights over rows that do not all cancel): ≤ 2.4e-4 < 1e-3.
        Compare.NormwiseRelativeError("fp32 dQuery vs reference", g.DQuery, s.DQ.ToArray(), GradientTolerance);
        Compare.NormwiseRelativeError("fp32 dKey vs reference", g.DKey, s.DK.ToArray(), GradientTolerance);
        Compare.NormwiseRelativeError("fp32 dValue vs reference", g.DValue, s.DV.ToArray(), GradientTolerance);
    }

    /// <summary>Forward output, lse and all three gradients (from zero) of one run.</summary>
    private static float[][] Run(Device device, Inputs x, float[] dO)
    {
        using var s = new Set(device, x);
        s.Forward(device);
        s.DOutput.CopyFrom(dO);
        s.DQ.Fill(0);
        s.DK.Fill(0);
        s.DV.Fill(0);
        s.Backward(device);
        return [s.Output.ToArray(), s.Lse.ToArray(), s.DQ.ToArray(), s.DK.ToArray(), s.DV.ToArray()];
    }

    private static readonly string[] Outputs = ["output", "logSumExp", "dQuery", "dKey", "dValue"];

    /// <summary>Asserts rows [first, end) of every output are bit-identical (same) or not (changed) between two runs.</summary>
    private static void AssertRows(float[][] before, float[][] after, Inputs x, int first, int end, bool same, string what)
    {
        for (int o = 0; o < Outputs.Length; o++)
        {
            int width = before[o].Length / x.M;
            var a = before[o].AsSpan(first * width, (end - first) * width).ToArray();
            var b = after[o].AsSpan(first * width, (end - first) * width).ToArray();
            if (same) Assert.That(b, Is.EqualTo(a), $"{Outputs[o]} rows [{first}, {end}) {what}");
            else Assert.That(b, Is.Not.EqualTo(a), $"{Outputs[o]} rows [{first}, {end}) {what}");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void SequencesDoNotSeeEachOther(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, [5, 7, 6], 4, 2, 8);
        float[] dO = TestRandom.Normal(random, x.M * x.H * x.D);
        var before = Run(device, x, dO);
        int[] st = x.Starts;
        for (int changed = 0; changed < 3; changed++)
        {
            // New keys and values (and queries) for one sequence only.
            var k = (float[])x.K.Clone();
            var v = (float[])x.V.Clone();
            var q = (float[])x.Q.Clone();
            int rowK = x.Kvh * x.D, rowQ = x.H * x.D;
            for (int i = st[changed] * rowK; i < st[changed + 1] * rowK; i++) { k[i] += 0.5f; v[i] -= 0.25f; }
            for (int i = st[changed] * rowQ; i < st[changed + 1] * rowQ; i++) q[i] *= 0.5f;
            var after = Run(device, x with { Q = q, K = k, V = v }, dO);
            for (int b = 0; b < 3; b++)
                AssertRows(before, after, x, st[b], st[b + 1], same: b != changed, $"of sequence {b} after changing sequence {changed}");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void LaterTokensNeverChangeEarlierOutputs(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, [4, 9], 4, 2, 8);
        float[] dO = TestRandom.Normal(random, x.M * x.H * x.D);
        var before = Run(device, x, dO);
        foreach (int token in new[] { 1, 6, 12 })
        {
            var k = (float[])x.K.Clone();
            var v = (float[])x.V.Clone();
            for (int i = token * x.Kvh * x.D; i < (token + 1) * x.Kvh * x.D; i++) { k[i] += 0.5f; v[i] -= 0.25f; }
            var after = Run(device, x with { K = k, V = v }, dO);
            int seqStart = token < 4 ? 0 : 4;
            // The forward of rows before the token never reads it; the token's own output does.
            for (int o = 0; o < 2; o++)
            {
                int width = before[o].Length / x.M;
                Assert.That(after[o][..(token * width)], Is.EqualTo(before[o][..(token * width)]), $"{Outputs[o]} before token {token}");
                Assert.That(after[o].AsSpan(token * width, width).ToArray(), Is.Not.EqualTo(before[o].AsSpan(token * width, width).ToArray()),
                    $"{Outputs[o]} of token {token}");
            }
            // dQ of rows before the token in its sequence cannot depend on it either.
            int dqWidth = x.H * x.D;
            Assert.That(after[2][(seqStart * dqWidth)..(token * dqWidth)], Is.EqualTo(before[2][(seqStart * dqWidth)..(token * dqWidth)]),
                $"dQuery of rows [{seqStart}, {token})");
        }
    }

    // Short sequences (pair by pair), long ones in row blocks over two passes, and enough long
    // (sequence, kv head) pairs for the backward's one-item-per-pair path.
    [TestCase(new[] { 1, 40, 17, 0, 33, 130, 5 }, 4, 2, 33)]
    [TestCase(new[] { 17, 40, 16, 33, 20, 50, 5, 18, 25, 16, 60 }, 6, 3, 16)]
    public void CpuResultsDoNotDependOnTheThreadCount(int[] lengths, int h, int kvh, int d)
    {
        var random = TestRandom.Create();
        var x = Draw(random, lengths, h, kvh, d);
        float[] dO = TestRandom.Normal(random, x.M * x.H * x.D);
        float[][] RunOn(int threads)
        {
            using var device = new CpuDevice(threads);
            return Run(device, x, dO);
        }
        var one = RunOn(1);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var many = RunOn(threads);
            for (int o = 0; o < one.Length; o++) Assert.That(many[o], Is.EqualTo(one[o]), $"{Outputs[o]} with {threads} threads");
        }
    }

    /// <summary>Zero inputs of M = 5 token rows, H = 4, KVH = 2, D = 3, with the given offsets.</summary>
    private static Set Small(Device device, int[] starts)
    {
        const int m = 5, h = 4, kvh = 2, d = 3;
        return new Set(device, new Inputs(starts, m, h, kvh, d, 0.5f, new float[m * h * d], new float[m * kvh * d], new float[m * kvh * d]));
    }

    private static void Both(Device device, Set s, Action<Exception> check, Type type)
    {
        var ops = device.Operations;
        var forward = Assert.Throws(type, () => ops.AttentionForward(s.Output, s.Lse, s.Q, s.K, s.V, s.SeqStarts, s.Scale))!;
        check(forward);
        var backward = Assert.Throws(type, () =>
            ops.AttentionBackward(s.DQ, s.DK, s.DV, s.DOutput, s.Q, s.K, s.V, s.Output, s.Lse, s.SeqStarts, s.Scale))!;
        check(backward);
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsBadSequenceOffsets(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        // (offsets over M = 5 token rows, the index the message must name, the value there)
        var cases = new (int[] Starts, int Index, int Value)[]
        {
            ([1, 5], 0, 1),
            ([0, 3, 2, 5], 2, 2),
            ([0, 2, 4], 2, 4),
            ([0, 2, 6], 2, 6),
        };
        foreach (var (starts, index, value) in cases)
        {
            using var s = Small(device, starts);
            Both(device, s, ex =>
            {
                Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo("seqStarts"), ex.Message);
                Assert.That(ex.Message, Does.Contain($"'seqStarts'[{index}] is {value}"));
            }, typeof(ArgumentOutOfRangeException));
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsABadScale(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var s = Small(device, [0, 2, 5]);
        foreach (float scale in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
        {
            s.Scale = scale;
            Both(device, s, ex =>
            {
                Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo("scale"));
                Assert.That(ex.Message, Does.Contain("positive and finite"));
            }, typeof(ArgumentOutOfRangeException));
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsWrongShapes(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var s = Small(device, [0, 2, 5]); // M = 5, H = 4, KVH = 2, D = 3
        using var flat = device.Allocate<float>(5 * 4 * 3);
        using var wrongD = device.Allocate<float>(5, 2, 4);
        using var wrongM = device.Allocate<float>(4, 2, 3);
        using var threeKvHeads = device.Allocate<float>(5, 3, 3);
        using var qShaped = device.Allocate<float>(5, 4, 3);
        using var lseWrong = device.Allocate<float>(5, 2);
        using var twoDStarts = device.FromArray<int>([0, 5], 1, 2);
        using var oneStart = device.FromArray<int>([5], 1);
        var ops = device.Operations;

        void Expect(string name, TestDelegate call)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), call)!;
            Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain(name));
        }

        Expect("query", () => ops.AttentionForward(s.Output, s.Lse, flat, s.K, s.V, s.SeqStarts, 0.5f));
        Expect("key", () => ops.AttentionForward(s.Output, s.Lse, s.Q, wrongD, s.V, s.SeqStarts, 0.5f));
        Expect("key", () => ops.AttentionForward(s.Output, s.Lse, s.Q, wrongM, s.V, s.SeqStarts, 0.5f));
        Expect("key", () => ops.AttentionForward(s.Output, s.Lse, s.Q, threeKvHeads, s.V, s.SeqStarts, 0.5f));
        Expect("value", () => ops.AttentionForward(s.Output, s.Lse, s.Q, s.K, qShaped, s.SeqStarts, 0.5f));
        Expect("seqStarts", () => ops.AttentionForward(s.Output, s.Lse, s.Q, s.K, s.V, twoDStarts, 0.5f));
        Expect("seqStarts", () => ops.AttentionForward(s.Output, s.Lse, s.Q, s.K, s.V, oneStart, 0.5f));
        Expect("output", () => ops.AttentionForward(s.K, s.Lse, s.Q, s.K, s.V, s.SeqStarts, 0.5f));
        Expect("logSumExp", () => ops.AttentionForward(s.Output, lseWrong, s.Q, s.K, s.V, s.SeqStarts, 0.5f));
        Expect("output", () => ops.AttentionBackward(s.DQ, s.DK, s.DV, s.DOutput, s.Q, s.K, s.V, s.K, s.Lse, s.SeqStarts, 0.5f));
        Expect("logSumExp", () => ops.AttentionBackward(s.DQ, s.DK, s.DV, s.DOutput, s.Q, s.K, s.V, s.Output, lseWrong, s.SeqStarts, 0.5f));
        Expect("dOutput", () => ops.AttentionBackward(s.DQ, s.DK, s.DV, s.K, s.Q, s.K, s.V, s.Output, s.Lse, s.SeqStarts, 0.5f));
        Expect("dQuery", () => ops.AttentionBackward(s.K, s.DK, s.DV, s.DOutput, s.Q, s.K, s.V, s.Output, s.Lse, s.SeqStarts, 0.5f));
        Expect("dKey", () => ops.AttentionBackward(s.DQ, qShaped, s.DV, s.DOutput, s.Q, s.K, s.V, s.Output, s.Lse, s.SeqStarts, 0.5f));
        Expect("dValue", () => ops.AttentionBackward(s.DQ, s.DK, qShaped, s.DOutput, s.Q, s.K, s.V, s.Output, s.Lse, s.SeqStarts, 0.5f));
    }
}

using Grpo.Native.Checkpoints;
using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;
using R = Grpo.Native.References.ActivationsReference;

namespace Grpo.Native.Tests.Operations;

/// <summary>GELU, SwiGLU on fused gate|up rows, the residual add and RoPE of queries and keys on every backend against the double reference.</summary>
public sealed class ActivationsTests
{
    // Odd sizes: none is a multiple of the 8-wide vectors, so every CPU call has a tail.
    private static readonly int[][] Shapes = [[1], [7], [3, 5, 7], [33, 17], [1001]];

    public static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from shape in Shapes
        select new TestCaseData(kind, shape).SetArgDisplayNames(kind.ToString(), string.Join("x", shape)));

    private static int Count(int[] shape) => shape.Aggregate(1, (a, b) => a * b);

    private static double[] D(float[] values) => TestRandom.ToDouble(values);

    private static double[] Plus(double[] a, float[] b)
    {
        var result = new double[a.Length];
        for (int i = 0; i < a.Length; i++) result[i] = a[i] + b[i];
        return result;
    }

    // ---------------------------------------------------------------- GELU

    [TestCaseSource(nameof(Cases))]
    public void GeluForwardMatchesReference(DeviceKind kind, int[] shape)
    {
        var device = TestDevices.Get(kind);
        // Scale 3: most inputs in the curved part [−6, 6], some deep in both tails.
        float[] x = TestRandom.Normal(TestRandom.Create(), Count(shape), 3.0);
        using var input = device.FromArray<float>(x, shape);
        using var output = Poison.Fill(device.Allocate<float>(shape));
        device.Operations.GeluForward(output, input);
        CompareGelu("gelu", x, output.ToArray());
    }

    /// <summary>
    /// GELU (tanh form) against the size of its terms, |x| ≥ 0.5|x|(1 + tanh(·)): deep in the negative tail 1 + tanh(·)
    /// cancels to ~1e-12 (seed 1919122441: x ≈ −7 read 3.2e-4 element-relative), which no fp32 evaluation of the formula
    /// keeps to relative precision. Against |x| the output is within ~10 ulps (the inner polynomial moves tanh by at most
    /// sech²(z)·|z|·4u ≤ 2u, tanh and the products a few more): 10·2^-24 = 6e-7 < 1e-5.
    /// </summary>
    private static void CompareGelu(string what, float[] x, float[] actual) =>
        Compare.WorstScaledError(what, R.GeluForward(D(x)), Array.ConvertAll(D(x), Math.Abs), actual, 1e-5);

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void GeluForwardInPlace(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        float[] x = TestRandom.Normal(TestRandom.Create(), 37, 3.0);
        using var values = device.FromArray<float>(x, 37);
        device.Operations.GeluForward(values, values);
        CompareGelu("gelu in place", x, values.ToArray());
    }

    [TestCaseSource(nameof(Cases))]
    public void GeluBackwardAccumulatesTheReferenceGradient(DeviceKind kind, int[] shape)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        int n = Count(shape);
        float[] x = TestRandom.Normal(random, n, 3.0), dy = TestRandom.Normal(random, n), start = TestRandom.Normal(random, n, 0.1);
        using var input = device.FromArray<float>(x, shape);
        using var dOutput = device.FromArray<float>(dy, shape);
        using var dInput = device.FromArray<float>(start, shape); // known values: the op must add to them
        device.Operations.GeluBackward(dInput, dOutput, input);
        Compare.WorstRelativeError("gelu dInput", Plus(R.GeluBackward(D(dy), D(x)), start), dInput.ToArray());
    }

    [Test]
    public void GeluDerivativeMatchesFiniteDifferences()
    {
        // A grid across the curved part and both tails, plus random points; central differences in double.
        var xs = Enumerable.Range(-80, 161).Select(k => k / 10.0).Concat(D(TestRandom.Normal(TestRandom.Create(), 50, 3.0))).ToArray();
        var numeric = xs.Select(x => (R.Gelu(x + 1e-5) - R.Gelu(x - 1e-5)) / 2e-5).ToArray();
        Compare.WorstRelativeError("reference gelu' vs finite differences", numeric, xs.Select(R.GeluDerivative).ToArray(), 1e-6);
    }

    // ---------------------------------------------------------------- SwiGLU

    // (M, I) of the output, the gate|up rows (M, 2I): widths that are no multiple of the 8-wide vectors (every CPU row
    // has a tail), one of exactly two vectors, a single gate, and a row of 1001.
    private static readonly (int M, int I)[] SwiGluShapes = [(1, 1), (1, 7), (3, 5), (4, 16), (33, 17), (1, 1001)];

    public static IEnumerable<TestCaseData> SwiGluCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in SwiGluShapes
        select new TestCaseData(kind, s.M, s.I).SetArgDisplayNames(kind.ToString(), $"{s.M}x{s.I}"));

    /// <summary>(M, 2I) gate|up rows: per row I gates of scale 3 (most in silu's curved part, some in both tails), then I ups of scale 1.</summary>
    private static float[] GateUp(Random random, int m, int width)
    {
        var values = new float[2 * m * width];
        for (int r = 0; r < m; r++)
        {
            TestRandom.Normal(random, width, 3.0).CopyTo(values, 2 * r * width);
            TestRandom.Normal(random, width).CopyTo(values, 2 * r * width + width);
        }
        return values;
    }

    [TestCaseSource(nameof(SwiGluCases))]
    public void SwiGluForwardMatchesReference(DeviceKind kind, int m, int width)
    {
        var device = TestDevices.Get(kind);
        float[] gu = GateUp(TestRandom.Create(), m, width);
        using var gateUp = device.FromArray<float>(gu, m, 2 * width);
        using var output = Poison.Fill(device.Allocate<float>(m, width));
        device.Operations.SwiGluForward(output, gateUp);
        Compare.WorstRelativeError("swiglu", R.SwiGluForward(D(gu), width), output.ToArray());
    }

    [TestCaseSource(nameof(SwiGluCases))]
    public void SwiGluBackwardAccumulatesTheReferenceGradient(DeviceKind kind, int m, int width)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] gu = GateUp(random, m, width), dO = TestRandom.Normal(random, m * width), start = TestRandom.Normal(random, 2 * m * width, 0.1);
        using var gateUp = device.FromArray<float>(gu, m, 2 * width);
        using var dOutput = device.FromArray<float>(dO, m, width);
        using var dGateUp = device.FromArray<float>(start, m, 2 * width); // known values: the op must add to them
        device.Operations.SwiGluBackward(dGateUp, dOutput, gateUp);
        Compare.WorstRelativeError("swiglu dGateUp", Plus(R.SwiGluBackward(D(dO), D(gu), width), start), dGateUp.ToArray());
    }

    /// <summary>
    /// Each element is computed from its own (gate, up) pair alone, by the same arithmetic wherever it falls in a row (the CPU's
    /// full vectors and padded tails): the (M, I) call and the (M·I, 1) call on the same pairs give the same bits.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void SwiGluValuesDoNotDependOnTheRowWidth(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        const int m = 5, width = 21;
        float[] gu = GateUp(random, m, width), dO = TestRandom.Normal(random, m * width), start = TestRandom.Normal(random, 2 * m * width, 0.1);
        var pairs = new float[gu.Length];
        var pairStart = new float[gu.Length];
        for (int r = 0; r < m; r++)
            for (int j = 0; j < width; j++)
            {
                int e = r * width + j, gate = 2 * r * width + j;
                (pairs[2 * e], pairs[2 * e + 1]) = (gu[gate], gu[gate + width]);
                (pairStart[2 * e], pairStart[2 * e + 1]) = (start[gate], start[gate + width]);
            }
        var ops = device.Operations;
        using var wide = device.FromArray<float>(gu, m, 2 * width);
        using var narrow = device.FromArray<float>(pairs, m * width, 2);
        using var wideOut = Poison.Fill(device.Allocate<float>(m, width));
        using var narrowOut = Poison.Fill(device.Allocate<float>(m * width, 1));
        ops.SwiGluForward(wideOut, wide);
        ops.SwiGluForward(narrowOut, narrow);
        Assert.That(narrowOut.ToArray(), Is.EqualTo(wideOut.ToArray()), "forward");

        using var wideGrad = device.FromArray<float>(start, m, 2 * width);
        using var narrowGrad = device.FromArray<float>(pairStart, m * width, 2);
        using var dWide = device.FromArray<float>(dO, m, width);
        using var dNarrow = device.FromArray<float>(dO, m * width, 1);
        ops.SwiGluBackward(wideGrad, dWide, wide);
        ops.SwiGluBackward(narrowGrad, dNarrow, narrow);
        float[] w = wideGrad.ToArray(), n = narrowGrad.ToArray();
        for (int r = 0; r < m; r++)
            for (int j = 0; j < width; j++)
            {
                int e = r * width + j, gate = 2 * r * width + j;
                Assert.That(n[2 * e], Is.EqualTo(w[gate]), $"d gate ({r}, {j})");
                Assert.That(n[2 * e + 1], Is.EqualTo(w[gate + width]), $"d up ({r}, {j})");
            }
    }

    [Test]
    public void SwiGluGradientMatchesFiniteDifferences()
    {
        var random = TestRandom.Create();
        const int m = 3, width = 13;
        double[] gu = D(GateUp(random, m, width)), w = D(TestRandom.Normal(random, m * width));
        double Loss()
        {
            var y = R.SwiGluForward(gu, width);
            double loss = 0;
            for (int i = 0; i < y.Length; i++) loss += w[i] * y[i];
            return loss;
        }
        Compare.WorstRelativeError("reference dGateUp vs finite differences", FiniteDifferences.Central(Loss, gu),
            R.SwiGluBackward(w, gu, width), 1e-6);

        var xs = Enumerable.Range(-80, 161).Select(k => k / 10.0).ToArray();
        var numeric = xs.Select(x => (R.Silu(x + 1e-5) - R.Silu(x - 1e-5)) / 2e-5).ToArray();
        Compare.WorstRelativeError("reference silu' vs finite differences", numeric, xs.Select(R.SiluDerivative).ToArray(), 1e-6);
    }

    // ---------------------------------------------------------------- extreme inputs

    private static readonly float[] Extremes =
        [-1e30f, -1e4f, -100f, -88f, -30f, -10f, -1f, -1e-3f, -0f, 0f, 1e-3f, 1f, 10f, 30f, 88f, 100f, 1e4f, 1e30f];

    /// <summary>
    /// Every value finite and within 1e-5 relative or 1e-6 absolute of the reference, element by element:
    /// the inputs span 60 orders of magnitude, so a tensor-wide error scale would hide the small ones.
    /// </summary>
    private static void AssertCloseEach(string what, double[] expected, float[] actual)
    {
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.That(float.IsFinite(actual[i]), $"{what}: input {Extremes[i]} gave {actual[i]}");
            double error = Math.Abs(actual[i] - expected[i]) / (1e-5 * Math.Abs(expected[i]) + 1e-6);
            worst = Math.Max(worst, error);
            Assert.That(error, Is.LessThanOrEqualTo(1), $"{what}: input {Extremes[i]}: expected {expected[i]:G9}, got {actual[i]:G9}");
        }
        TestContext.Out.WriteLine($"{what}: worst error {worst:F3} of the bound (1e-5 relative + 1e-6 absolute)");
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ExtremeInputsStayFiniteAndRight(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        int n = Extremes.Length;
        double[] x = D(Extremes);
        var ones = Enumerable.Repeat(1.0, n).ToArray();
        using var input = device.FromArray<float>(Extremes, n);
        using var onesTensor = device.FromArray<float>(Enumerable.Repeat(1f, n).ToArray(), n);
        using var output = Poison.Fill(device.Allocate<float>(n));
        using var grad = device.Allocate<float>(n);
        var ops = device.Operations;

        ops.GeluForward(output, input);
        AssertCloseEach("gelu", R.GeluForward(x), output.ToArray());
        grad.Fill(0);
        ops.GeluBackward(grad, onesTensor, input);
        AssertCloseEach("gelu'", R.GeluBackward(ones, x), grad.ToArray());

        // One gate|up row, gates x and ups 1, and dOutput = 1: the SwiGLU outputs are silu(x), and its gradients silu'(x) and silu(x).
        using var gateUp = device.FromArray<float>([.. Extremes, .. Enumerable.Repeat(1f, n)], 1, 2 * n);
        using var swiglu = Poison.Fill(device.Allocate<float>(1, n));
        using var dGateUp = device.Allocate<float>(1, 2 * n);
        dGateUp.Fill(0);
        double[] gu = [.. x, .. ones];
        ops.SwiGluForward(swiglu, gateUp);
        AssertCloseEach("silu", R.SwiGluForward(gu, n), swiglu.ToArray());
        ops.SwiGluBackward(dGateUp, onesTensor.Reshape(1, n), gateUp);
        double[] expected = R.SwiGluBackward(ones, gu, n);
        float[] got = dGateUp.ToArray();
        AssertCloseEach("silu'", expected[..n], got[..n]);
        AssertCloseEach("swiglu d up", expected[n..], got[n..]);
    }

    // ---------------------------------------------------------------- Add

    [TestCaseSource(nameof(Cases))]
    public void AddMatchesReference(DeviceKind kind, int[] shape)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        int n = Count(shape);
        float[] a = TestRandom.Normal(random, n), b = TestRandom.Normal(random, n);
        using var x = device.FromArray<float>(a, shape);
        using var y = device.FromArray<float>(b, shape);
        using var output = Poison.Fill(device.Allocate<float>(shape));
        device.Operations.Add(output, x, y);
        // fp32 a + b is the correctly rounded sum: exact to half an ulp.
        Compare.WorstRelativeError("a + b", R.Add(D(a), D(b)), output.ToArray(), 1e-7);
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void AddWritesInPlaceIntoEitherAddend(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        const int n = 29;
        float[] a = TestRandom.Normal(random, n), b = TestRandom.Normal(random, n);
        var expected = R.Add(D(a), D(b));
        using (var x = device.FromArray<float>(a, n))
        using (var y = device.FromArray<float>(b, n))
        {
            device.Operations.Add(x, x, y); // the residual stream updated in place
            Compare.WorstRelativeError("a += b", expected, x.ToArray(), 1e-7);
        }
        using (var x = device.FromArray<float>(a, n))
        using (var y = device.FromArray<float>(b, n))
        {
            device.Operations.Add(y, x, y);
            Compare.WorstRelativeError("b = a + b", expected, y.ToArray(), 1e-7);
        }
        using (var x = device.FromArray<float>(a, n))
        {
            device.Operations.Add(x, x, x);
            Compare.WorstRelativeError("a += a", R.Add(D(a), D(a)), x.ToArray(), 0);
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void SlicesLeaveTheRestOfTheirBufferAlone(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        // Three (3, 2, 6) tensors at odd offsets inside one buffer, as a model's activations would be.
        const int m = 3, heads = 2, d = 6, n = m * heads * d, total = 3 * n + 11;
        float[] initial = TestRandom.Normal(random, total);
        using var buffer = device.FromArray<float>(initial, total);
        var a = buffer.Slice(3, m, heads, d);
        var b = buffer.Slice(3 + n + 1, m, heads, d);
        var o = buffer.Slice(3 + 2 * n + 5, m, heads, d);
        using var positions = device.FromArray<int>([5, 0, 17], m);
        var ops = device.Operations;
        ops.Add(o, a, b);
        ops.GeluForward(a, a);
        ops.GeluBackward(b, o, a);
        ops.SwiGluForward(o.Slice(0, m, heads * d / 2), a.Reshape(m, heads * d));              // the first half of o
        ops.SwiGluBackward(b.Reshape(m, heads * d), o.Slice(0, m, heads * d / 2), a.Reshape(m, heads * d));
        ops.Rope(o, b, positions, 10000f, inverse: false);
        float[] after = buffer.ToArray();
        foreach (var (begin, end) in new[] { (0, 3), (3 + n, 3 + n + 1), (3 + 2 * n + 1, 3 + 2 * n + 5), (3 + 3 * n + 5, total) })
            Assert.That(after[begin..end], Is.EqualTo(initial[begin..end]), $"elements [{begin}, {end}) outside the slices");

        // And the slices themselves were computed from their own windows: the sum, checked directly.
        using var a2 = device.FromArray<float>(initial.AsSpan(3, n), m, heads, d);
        using var b2 = device.FromArray<float>(initial.AsSpan(3 + n + 1, n), m, heads, d);
        using var o2 = device.Allocate<float>(m, heads, d);
        ops.Add(o2, a2, b2);
        Compare.WorstRelativeError("a + b from slices", R.Add(D(initial[3..(3 + n)]), D(initial[(3 + n + 1)..(3 + 2 * n + 1)])), o2.ToArray(), 1e-7);
    }

    // ---------------------------------------------------------------- RoPE

    // (rows, heads, key heads, D, θ, positions): packed sequences restarting at 0, odd D/2 (no full vector), D = 128 as in Llama,
    // positions in the thousands where the fp32 rounding of the angle matters; key heads 0 rotate the queries alone.
    private static readonly (int M, int Heads, int KeyHeads, int D, float Theta, int[] Positions)[] RopeShapes =
    [
        (1, 1, 1, 2, 10000f, [0]),
        (5, 3, 1, 6, 10000f, [0, 1, 2, 3, 4]),
        (7, 2, 0, 16, 1e6f, [0, 1, 2, 0, 1, 2, 3]),
        (4, 2, 2, 10, 10000f, [4000, 4001, 3999, 17]),
        (3, 4, 2, 128, 1e6f, [4000, 1, 2047]),
        (4, 1, 0, 128, 10000f, [4000, 4095, 3001, 2]),
        (6, 2, 1, 34, 500000f, [9, 9, 300, 0, 5000, 4321]),
    ];

    public static IEnumerable<TestCaseData> RopeCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in RopeShapes
        from inverse in new[] { false, true }
        select new TestCaseData(kind, s.M, s.Heads, s.KeyHeads, s.D, s.Theta, s.Positions, inverse)
            .SetArgDisplayNames(kind.ToString(), $"{s.M}x{s.Heads}x{s.D}", s.KeyHeads == 0 ? "no key" : $"key {s.M}x{s.KeyHeads}x{s.D}",
                $"theta={s.Theta}", $"max position {s.Positions.Max()}", inverse ? "inverse" : "forward"));

    [TestCaseSource(nameof(RopeCases))]
    public void RopeMatchesReference(DeviceKind kind, int m, int heads, int keyHeads, int d, float theta, int[] positions, bool inverse)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] x = TestRandom.Normal(random, m * heads * d), y = TestRandom.Normal(random, m * keyHeads * d);
        using var query = device.FromArray<float>(x, m, heads, d);
        using var key = keyHeads == 0 ? null : device.FromArray<float>(y, m, keyHeads, d);
        using var pos = device.FromArray<int>(positions, m);
        device.Operations.Rope(query, key, pos, theta, inverse);
        string what = $"rope{(inverse ? " inverse" : "")}";
        Compare.WorstRelativeError($"{what} q", R.Rope(D(x), positions, m, heads, d, theta, inverse), query.ToArray());
        if (key is not null)
            Compare.WorstRelativeError($"{what} k", R.Rope(D(y), positions, m, keyHeads, d, theta, inverse), key.ToArray());
    }

    // (rows, heads, key heads, D, positions, Llama 3 scaling?): GQA and MHA, plain and scaled, positions past the table's first size.
    private static readonly (int M, int Heads, int KeyHeads, int D, int[] Positions, bool Scaled)[] RopePairShapes =
    [
        (5, 4, 2, 16, [0, 1, 2, 3, 4], false),
        (3, 2, 2, 128, [4000, 1, 2047], false),
        (4, 6, 1, 34, [9, 300, 65537, 5], true),
    ];

    public static IEnumerable<TestCaseData> RopePairCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in RopePairShapes
        from inverse in new[] { false, true }
        select new TestCaseData(kind, s.M, s.Heads, s.KeyHeads, s.D, s.Positions, s.Scaled, inverse)
            .SetArgDisplayNames(kind.ToString(), $"q {s.M}x{s.Heads}x{s.D}", $"k {s.M}x{s.KeyHeads}x{s.D}", s.Scaled ? "llama3 scaling" : "plain",
                inverse ? "inverse" : "forward"), count: 2);

    /// <summary>
    /// Rotating the queries and keys in one call (one launch on the ILGPU backend) gives exactly the bits of rotating each in a
    /// call of its own: the same table entries and the same two products and a sum per element.
    /// </summary>
    [TestCaseSource(nameof(RopePairCases))]
    public void RopeOfQueryAndKeyInOneCallEqualsTwoCallsBitForBit(DeviceKind kind, int m, int heads, int keyHeads, int d, int[] positions,
        bool scaled, bool inverse)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var scaling = scaled ? new RopeScaling { Factor = 8, LowFrequencyFactor = 1, HighFrequencyFactor = 4, OriginalMaxPositions = 16 } : null;
        const float theta = 500000f;
        float[] x = TestRandom.Normal(random, m * heads * d), y = TestRandom.Normal(random, m * keyHeads * d);
        using var pos = device.FromArray<int>(positions, m);
        using var query = device.FromArray<float>(x, m, heads, d);
        using var key = device.FromArray<float>(y, m, keyHeads, d);
        using var queryAlone = device.FromArray<float>(x, m, heads, d);
        using var keyAlone = device.FromArray<float>(y, m, keyHeads, d);
        var ops = device.Operations;
        ops.Rope(query, key, pos, theta, inverse, scaling);
        ops.Rope(queryAlone, null, pos, theta, inverse, scaling);
        ops.Rope(keyAlone, null, pos, theta, inverse, scaling);
        float[] q = query.ToArray(), k = key.ToArray();
        Assert.That(q, Is.EqualTo(queryAlone.ToArray()), "queries");
        Assert.That(k, Is.EqualTo(keyAlone.ToArray()), "keys");
        Assert.That(q, Is.Not.EqualTo(x), "the queries were rotated");
        Assert.That(k, Is.Not.EqualTo(y), "the keys were rotated");
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RopeRoundsTheAngleAsHuggingFaceDoes(DeviceKind kind)
    {
        // At position ~4000 the fp32 angle is off the exact one by up to half an ulp of 4000 (2.4e-4 rad),
        // larger than the tolerance: the op must match the fp32-rounded definition, not the exact angle.
        var device = TestDevices.Get(kind);
        const int m = 4, heads = 2, d = 128;
        int[] positions = [4000, 4093, 4095, 3001];
        foreach (float theta in new[] { 10000f, 1e6f })
        {
            float[] x = TestRandom.Normal(TestRandom.Create(), m * heads * d);
            using var values = device.FromArray<float>(x, m, heads, d);
            using var pos = device.FromArray<int>(positions, m);
            device.Operations.Rope(values, null, pos, theta, inverse: false);
            float[] got = values.ToArray();
            Compare.WorstRelativeError($"rope θ={theta} at positions ~4000", R.Rope(D(x), positions, m, heads, d, theta, false), got);

            var exactAngles = ExactAngleRope(D(x), positions, m, heads, d, theta);
            var (worst, _) = ErrorMeasure.WorstRelativeError(exactAngles, got);
            TestContext.Out.WriteLine($"against exact (unrounded) angles: worst relative error {worst:E2}");
            Assert.That(worst, Is.GreaterThan(Compare.DefaultRelativeTolerance),
                "the exact-angle rotation should differ measurably: otherwise this test does not check the rounding");
        }
    }

    /// <summary>RoPE with the angle position · θ^(−2i/D) in double, no fp32 rounding: what the op must NOT match.</summary>
    private static double[] ExactAngleRope(double[] x, int[] positions, int m, int heads, int d, double theta)
    {
        var result = (double[])x.Clone();
        int half = d / 2;
        for (int r = 0; r < m; r++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < half; i++)
                {
                    double angle = positions[r] * Math.Pow(theta, -2.0 * i / d);
                    int at = (r * heads + h) * d + i;
                    result[at] = x[at] * Math.Cos(angle) - x[at + half] * Math.Sin(angle);
                    result[at + half] = x[at + half] * Math.Cos(angle) + x[at] * Math.Sin(angle);
                }
        return result;
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RopeInverseUndoesTheForward(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int m = 6, heads = 3, d = 20;
        int[] positions = [0, 1, 7, 4000, 123, 2];
        float[] x = TestRandom.Normal(TestRandom.Create(), m * heads * d);
        using var values = device.FromArray<float>(x, m, heads, d);
        using var pos = device.FromArray<int>(positions, m);
        device.Operations.Rope(values, null, pos, 10000f, inverse: false);
        device.Operations.Rope(values, null, pos, 10000f, inverse: true);
        // Two rotations by fp32 cos/sin (cos² + sin² = 1 only to ~1e-7) and two roundings per element: an
        // element near zero keeps ~1e-7 of its pair partner's magnitude, up to ~3e-5 against Compare's floor.
        Compare.WorstRelativeError("inverse(forward(x)) vs x", D(x), values.ToArray(), 1e-4);
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RopeBackwardIsTheInverseRotation(DeviceKind kind)
    {
        var random = TestRandom.Create();
        const int m = 3, heads = 2, d = 10;
        const float theta = 10000f;
        int[] positions = [3, 0, 4000];
        double[] x = D(TestRandom.Normal(random, m * heads * d));
        float[] w = TestRandom.Normal(random, m * heads * d);
        double Loss()
        {
            var y = R.Rope(x, positions, m, heads, d, theta, inverse: false);
            double loss = 0;
            for (int i = 0; i < y.Length; i++) loss += w[i] * y[i];
            return loss;
        }
        // ∂/∂x of L = Σ w · rope(x), by central differences in double.
        var numeric = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double saved = x[i];
            x[i] = saved + 1e-5;
            double plus = Loss();
            x[i] = saved - 1e-5;
            double minus = Loss();
            x[i] = saved;
            numeric[i] = (plus - minus) / 2e-5;
        }
        Compare.WorstRelativeError("reference inverse rotation of w vs finite differences",
            numeric, R.Rope(D(w), positions, m, heads, d, theta, inverse: true), 1e-6);

        var device = TestDevices.Get(kind);
        using var gradient = device.FromArray<float>(w, m, heads, d);
        using var pos = device.FromArray<int>(positions, m);
        device.Operations.Rope(gradient, null, pos, theta, inverse: true);
        Compare.WorstRelativeError("op's inverse rotation of w vs finite differences", numeric, gradient.ToArray());
    }

    // ---------------------------------------------------------------- determinism

    [Test]
    public void CpuResultsDoNotDependOnTheThreadCount()
    {
        var random = TestRandom.Create();
        const int n = 3 * 65536 + 5; // several parallel chunks and a tail
        float[] x = TestRandom.Normal(random, n, 3.0), u = TestRandom.Normal(random, n), dO = TestRandom.Normal(random, n);
        // SwiGLU's (3, 2I) gate|up rows with I = 65613: its (3, I) outputs span several chunks, and chunks end inside rows.
        const int rows = 3, width = 65613;
        float[] gu = GateUp(random, rows, width), dOut = TestRandom.Normal(random, rows * width);
        const int m = 300, heads = 2, keyHeads = 1, d = 34;
        float[] q = TestRandom.Normal(random, m * heads * d), k = TestRandom.Normal(random, m * keyHeads * d);
        int[] positions = Enumerable.Range(0, m).Select(r => r * 13 % 997).ToArray();

        float[][] RunOn(int threads)
        {
            using var device = new CpuDevice(threads);
            var ops = device.Operations;
            using var input = device.FromArray<float>(x, n);
            using var up = device.FromArray<float>(u, n);
            using var dOutput = device.FromArray<float>(dO, n);
            using var gelu = device.Allocate<float>(n);
            using var dGelu = device.FromArray<float>(u, n);
            using var gateUp = device.FromArray<float>(gu, rows, 2 * width);
            using var swiglu = device.Allocate<float>(rows, width);
            using var dSwiglu = device.FromArray<float>(dOut, rows, width);
            using var dGateUp = device.FromArray<float>(gu, rows, 2 * width);
            using var sum = device.Allocate<float>(n);
            using var query = device.FromArray<float>(q, m, heads, d);
            using var key = device.FromArray<float>(k, m, keyHeads, d);
            using var pos = device.FromArray<int>(positions, m);
            ops.GeluForward(gelu, input);
            ops.GeluBackward(dGelu, dOutput, input);
            ops.SwiGluForward(swiglu, gateUp);
            ops.SwiGluBackward(dGateUp, dSwiglu, gateUp);
            ops.Add(sum, input, up);
            ops.Rope(query, key, pos, 10000f, inverse: false);
            return [gelu.ToArray(), dGelu.ToArray(), swiglu.ToArray(), dGateUp.ToArray(), sum.ToArray(), query.ToArray(), key.ToArray()];
        }
        string[] names = ["gelu", "dGelu", "swiglu", "dGateUp", "sum", "rope q", "rope k"];
        var one = RunOn(1);
        var four = RunOn(4);
        for (int o = 0; o < one.Length; o++) Assert.That(four[o], Is.EqualTo(one[o]), $"{names[o]} with 4 threads");
    }

    // ---------------------------------------------------------------- validation

    private static void Expect<TException>(string name, TestDelegate call, string? contains = null) where TException : ArgumentException
    {
        var ex = Assert.Throws(Is.InstanceOf<TException>(), call)!;
        Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
        Assert.That(ex.Message, Does.Contain($"'{name}'"));
        if (contains is not null) Assert.That(ex.Message, Does.Contain(contains));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ElementwiseOpsRejectMismatchedShapes(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        using var t = device.Allocate<float>(4, 6);
        using var t2 = device.Allocate<float>(4, 6);
        using var t3 = device.Allocate<float>(4, 6);
        using var flat = device.Allocate<float>(24); // same count, other shape: still rejected
        using var small = device.Allocate<float>(4, 5);

        Expect<ArgumentException>("output", () => ops.GeluForward(flat, t));
        Expect<ArgumentException>("dOutput", () => ops.GeluBackward(t, small, t2));
        Expect<ArgumentException>("dInput", () => ops.GeluBackward(flat, t, t2));
        Expect<ArgumentException>("b", () => ops.Add(t, t2, flat));
        Expect<ArgumentException>("output", () => ops.Add(small, t2, t3));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void SwiGluRejectsBadShapesAndOverlaps(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        using var gateUp = device.Allocate<float>(4, 12);      // I = 6
        using var dGateUp = device.Allocate<float>(4, 12);
        using var output = device.Allocate<float>(4, 6);
        using var oddColumns = device.Allocate<float>(4, 11);
        using var rank3 = device.Allocate<float>(4, 2, 6);
        using var narrow = device.Allocate<float>(4, 5);
        using var fewRows = device.Allocate<float>(3, 6);
        using var fewRowsGateUp = device.Allocate<float>(3, 12);
        using var flat = device.Allocate<float>(24);
        using var shared = device.Allocate<float>(4 * 12 + 4 * 6);
        var sharedGateUp = shared.Slice(0, 4, 12);              // elements [0, 48)
        var overlappingOutput = shared.Slice(40, 4, 6);         // elements [40, 64): overlaps it

        Expect<ArgumentException>("gateUp", () => ops.SwiGluForward(output, oddColumns), "odd");
        Expect<ArgumentException>("gateUp", () => ops.SwiGluForward(output, rank3), "rank-2");
        Expect<ArgumentException>("output", () => ops.SwiGluForward(narrow, gateUp), "half its columns");
        Expect<ArgumentException>("output", () => ops.SwiGluForward(fewRows, gateUp), "row counts differ");
        Expect<ArgumentException>("output", () => ops.SwiGluForward(flat, gateUp), "rank-2");
        Expect<ArgumentException>("output", () => ops.SwiGluForward(overlappingOutput, sharedGateUp), "shares memory with 'gateUp'");

        Expect<ArgumentException>("gateUp", () => ops.SwiGluBackward(dGateUp, output, oddColumns), "odd");
        Expect<ArgumentException>("dOutput", () => ops.SwiGluBackward(dGateUp, narrow, gateUp), "half its columns");
        Expect<ArgumentException>("dOutput", () => ops.SwiGluBackward(dGateUp, fewRows, gateUp), "row counts differ");
        Expect<ArgumentException>("dGateUp", () => ops.SwiGluBackward(rank3, output, gateUp), "rank-2");
        Expect<ArgumentException>("dGateUp", () => ops.SwiGluBackward(fewRowsGateUp, output, gateUp), "shape");
        Expect<ArgumentException>("dGateUp", () => ops.SwiGluBackward(gateUp, output, gateUp), "shares memory with 'gateUp'");
        Expect<ArgumentException>("dGateUp", () => ops.SwiGluBackward(sharedGateUp, overlappingOutput, gateUp), "shares memory with 'dOutput'");
    }

    [Test]
    public void ElementwiseOpsRejectATensorOnAnotherDevice()
    {
        var cpu = TestDevices.Get(DeviceKind.Cpu);
        var simulator = TestDevices.Get(DeviceKind.IlgpuCpu);
        using var here = cpu.Allocate<float>(5);
        using var there = simulator.Allocate<float>(5);
        Expect<ArgumentException>("b", () => cpu.Operations.Add(here, here, there));
        Expect<ArgumentException>("input", () => simulator.Operations.GeluForward(there, here));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RopeRejectsBadArguments(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        using var values = device.Allocate<float>(3, 2, 8);
        using var oddD = device.Allocate<float>(3, 2, 7);
        using var flat = device.Allocate<float>(48);
        using var positions = device.FromArray<int>([0, 1, 2], 3);
        using var fewPositions = device.FromArray<int>([0, 1], 2);
        using var matrixPositions = device.FromArray<int>([0, 1, 2], 3, 1);

        Expect<ArgumentException>("query", () => ops.Rope(oddD, null, positions, 10000f, false), "odd");
        Expect<ArgumentException>("query", () => ops.Rope(flat, null, positions, 10000f, false), "rank-3");
        Expect<ArgumentException>("positions", () => ops.Rope(values, null, fewPositions, 10000f, false), "one position per row");
        Expect<ArgumentException>("positions", () => ops.Rope(values, null, matrixPositions, 10000f, true));
        foreach (float theta in new[] { 0f, -10000f, float.NaN, float.PositiveInfinity })
            Expect<ArgumentOutOfRangeException>("theta", () => ops.Rope(values, null, positions, theta, false), "positive and finite");

        using var negative = device.FromArray<int>([0, -3, 2], 3);
        Expect<ArgumentOutOfRangeException>("positions", () => ops.Rope(values, null, negative, 10000f, false), "'positions'[1] is -3");
        int tooLarge = (1 << 20) + 1;
        using var huge = device.FromArray<int>([0, 1, tooLarge], 3);
        Expect<ArgumentOutOfRangeException>("positions", () => ops.Rope(values, null, huge, 10000f, true), $"'positions'[2] is {tooLarge}");
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RopeRejectsAKeyThatDoesNotFitTheQuery(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        using var query = device.Allocate<float>(3, 4, 8);
        using var key = device.Allocate<float>(3, 2, 8);
        using var flatKey = device.Allocate<float>(3, 16);
        using var fewRows = device.Allocate<float>(2, 2, 8);
        using var otherD = device.Allocate<float>(3, 2, 6);
        using var positions = device.FromArray<int>([0, 1, 2], 3);
        using var shared = device.Allocate<float>(3 * 4 * 8 + 3 * 2 * 8);
        var sharedQuery = shared.Slice(0, 3, 4, 8);   // elements [0, 96)
        var overlappingKey = shared.Slice(90, 3, 2, 8); // elements [90, 138): overlaps it

        Expect<ArgumentException>("key", () => ops.Rope(query, flatKey, positions, 10000f, false), "rank-3");
        Expect<ArgumentException>("key", () => ops.Rope(query, fewRows, positions, 10000f, false), "rows and head dimension");
        Expect<ArgumentException>("key", () => ops.Rope(query, otherD, positions, 10000f, true), "rows and head dimension");
        Expect<ArgumentException>("key", () => ops.Rope(sharedQuery, overlappingKey, positions, 10000f, false), "shares memory with 'query'");
        Expect<ArgumentException>("key", () => ops.Rope(query, query, positions, 10000f, false), "shares memory with 'query'");
        // The queries are checked first: an odd D is reported against them even when the key is fine.
        using var oddQuery = device.Allocate<float>(3, 4, 7);
        Expect<ArgumentException>("query", () => ops.Rope(oddQuery, key, positions, 10000f, false), "odd");
    }
}

using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>The linear layer (nn.Linear layout), forward and backward, on every backend against the double reference.</summary>
public sealed class LinearTests
{
    // (M, K, N): odd sizes (never multiples of 8 or 16), a single row, M > 64 (two bias row blocks on ILGPU).
    private static readonly (int M, int K, int N)[] Shapes =
    [
        (1, 3, 5),
        (7, 33, 65),
        (37, 3, 65),
        (37, 33, 5),
        (70, 5, 9),
    ];

    // Larger, managed CPU only (the simulator is slow): K crosses CpuGemm's k block, M and N its tiles,
    // N the dBias column chunk.
    private static readonly (int M, int K, int N)[] CpuShapes = [(131, 300, 270)];

    public static IEnumerable<TestCaseData> ForwardCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in kind == DeviceKind.Cpu ? Shapes.Concat(CpuShapes) : Shapes
        from bias in new[] { true, false }
        select new TestCaseData(kind, s.M, s.K, s.N, bias));

    public static IEnumerable<TestCaseData> BackwardCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in kind == DeviceKind.Cpu ? Shapes.Concat(CpuShapes) : Shapes
        from flags in new[] { (Bias: true, DInput: true), (Bias: false, DInput: true), (Bias: true, DInput: false), (Bias: false, DInput: false) }
        select new TestCaseData(kind, s.M, s.K, s.N, flags.Bias, flags.DInput));

    private sealed record Inputs(int M, int K, int N, float[] X, float[] W, float[] B)
    {
        public double[] Xd => TestRandom.ToDouble(X);
        public double[] Wd => TestRandom.ToDouble(W);
        public double[] Bd => TestRandom.ToDouble(B);
    }

    // Entries of mean 1 (as CpuGemmTests): with zero-mean draws some K-, N- or M-long sums cancel to
    // near zero, and the fp32 rounding of their O(sqrt(length)) partial sums then reads as up to
    // 2.7e-4 against Compare's floor (1e-3 × the largest element; measured at K = 33, N = 65) with no
    // indexing mistake. Mean-1 sums are well conditioned, so 1e-4 still catches every wrong element.
    private static Inputs Draw(Random random, int m, int k, int n) =>
        new(m, k, n, Shifted(TestRandom.Normal(random, m * k)), Shifted(TestRandom.Normal(random, n * k)), Shifted(TestRandom.Normal(random, n)));

    private static float[] Shifted(float[] values)
    {
        for (int i = 0; i < values.Length; i++) values[i] += 1f;
        return values;
    }

    /// <summary>The device tensors of one linear call; the output is poisoned, the gradients zero.</summary>
    private sealed class Set : IDisposable
    {
        public Set(Device device, Inputs x)
        {
            Input = device.FromArray<float>(x.X, x.M, x.K);
            Weight = device.FromArray<float>(x.W, x.N, x.K);
            Bias = device.FromArray<float>(x.B, x.N);
            Output = Poison.Fill(device.Allocate<float>(x.M, x.N));
            DOutput = device.Allocate<float>(x.M, x.N);
            DInput = device.Allocate<float>(x.M, x.K);
            DWeight = device.Allocate<float>(x.N, x.K);
            DBias = device.Allocate<float>(x.N);
            foreach (var g in new[] { DInput, DWeight, DBias }) g.Fill(0);
        }

        public readonly Tensor<float> Input, Weight, Bias, Output, DOutput, DInput, DWeight, DBias;

        public void Dispose()
        {
            foreach (var t in new[] { Input, Weight, Bias, Output, DOutput, DInput, DWeight, DBias }) t.Dispose();
        }
    }

    [TestCaseSource(nameof(ForwardCases))]
    public void ForwardMatchesReference(DeviceKind kind, int m, int k, int n, bool withBias)
    {
        var device = TestDevices.Get(kind);
        var x = Draw(TestRandom.Create(), m, k, n);
        using var s = new Set(device, x);
        device.Operations.LinearForward(s.Output, s.Input, s.Weight, withBias ? s.Bias : null);
        device.Synchronize();
        var expected = LinearReference.Forward(x.Xd, x.Wd, withBias ? x.Bd : null, m, k, n);
        Compare.WorstRelativeError("output", expected, s.Output.ToArray());
    }

    [TestCaseSource(nameof(BackwardCases))]
    public void BackwardAccumulatesTheReferenceGradient(DeviceKind kind, int m, int k, int n, bool withBias, bool withDInput)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, m, k, n);
        float[] dO = Shifted(TestRandom.Normal(random, m * n));
        // Known starting values: the op must add to them, not overwrite them.
        float[] dxStart = TestRandom.Normal(random, m * k, 0.1);
        float[] dwStart = TestRandom.Normal(random, n * k, 0.1);
        float[] dbStart = TestRandom.Normal(random, n, 0.1);
        using var s = new Set(device, x);
        s.DOutput.CopyFrom(dO);
        s.DInput.CopyFrom(dxStart);
        s.DWeight.CopyFrom(dwStart);
        s.DBias.CopyFrom(dbStart);
        device.Operations.LinearBackward(withDInput ? s.DInput : null, s.DWeight, withBias ? s.DBias : null, s.DOutput, s.Input, s.Weight);
        device.Synchronize();

        var g = LinearReference.Backward(x.Xd, x.Wd, TestRandom.ToDouble(dO), m, k, n);
        if (withDInput) Compare.WorstRelativeError("dInput", Add(g.DInput, dxStart), s.DInput.ToArray());
        else Assert.That(s.DInput.ToArray(), Is.EqualTo(dxStart), "dInput was not passed, so nothing may write there");
        Compare.WorstRelativeError("dWeight", Add(g.DWeight, dwStart), s.DWeight.ToArray());
        if (withBias) Compare.WorstRelativeError("dBias", Add(g.DBias, dbStart), s.DBias.ToArray());
        else Assert.That(s.DBias.ToArray(), Is.EqualTo(dbStart), "dBias was not passed, so nothing may write there");
    }

    private static double[] Add(double[] gradient, float[] start)
    {
        var sum = new double[gradient.Length];
        for (int i = 0; i < sum.Length; i++) sum[i] = gradient[i] + start[i];
        return sum;
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void GradientMatchesFiniteDifferences(DeviceKind kind)
    {
        const int m = 3, k = 5, n = 7;
        var random = TestRandom.Create();
        var x = Draw(random, m, k, n);
        double[] input = x.Xd, weight = x.Wd, bias = x.Bd;
        double[] weights = TestRandom.ToDouble(Shifted(TestRandom.Normal(random, m * n)));
        double Loss() => LinearReference.WeightedLoss(input, weight, bias, m, k, n, weights);

        // Central differences of L = Σ w ⊙ output in double; L is linear in each parameter, so only rounding (~1e-11) remains.
        double[] Numeric(double[] p) => FiniteDifferences.Central(Loss, p);
        var g = LinearReference.Backward(input, weight, weights, m, k, n);
        Compare.WorstRelativeError("reference dInput vs finite differences", Numeric(input), g.DInput, 1e-6);
        Compare.WorstRelativeError("reference dWeight vs finite differences", Numeric(weight), g.DWeight, 1e-6);
        Compare.WorstRelativeError("reference dBias vs finite differences", Numeric(bias), g.DBias, 1e-6);

        var device = TestDevices.Get(kind);
        using var s = new Set(device, x);
        s.DOutput.CopyFrom(Array.ConvertAll(weights, w => (float)w));
        device.Operations.LinearBackward(s.DInput, s.DWeight, s.DBias, s.DOutput, s.Input, s.Weight);
        device.Synchronize();
        Compare.WorstRelativeError("fp32 dInput vs reference", g.DInput, s.DInput.ToArray());
        Compare.WorstRelativeError("fp32 dWeight vs reference", g.DWeight, s.DWeight.ToArray());
        Compare.WorstRelativeError("fp32 dBias vs reference", g.DBias, s.DBias.ToArray());
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void WorksOnSlicesOfOneParameterBuffer(DeviceKind kind)
    {
        // A model keeps every parameter in one buffer: the weight and bias are views at odd offsets.
        const int m = 7, k = 33, n = 5;
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, m, k, n);
        float[] dO = Shifted(TestRandom.Normal(random, m * n));
        int weightAt = 3, biasAt = weightAt + n * k + 1, length = biasAt + n + 2;
        var parameters = new float[length];
        var gradients = new float[length];
        x.W.CopyTo(parameters, weightAt);
        x.B.CopyTo(parameters, biasAt);
        using var p = device.FromArray<float>(parameters, length);
        using var dp = device.FromArray<float>(gradients, length);
        using var input = device.FromArray<float>(x.X, m, k);
        using var dOutput = device.FromArray<float>(dO, m, n);
        using var outputs = Poison.Fill(device.Allocate<float>(m * n + 5));
        var output = outputs.Slice(5, m, n);
        device.Operations.LinearForward(output, input, p.Slice(weightAt, n, k), p.Slice(biasAt, n));
        device.Operations.LinearBackward(null, dp.Slice(weightAt, n, k), dp.Slice(biasAt, n), dOutput, input, p.Slice(weightAt, n, k));
        device.Synchronize();

        Compare.WorstRelativeError("output", LinearReference.Forward(x.Xd, x.Wd, x.Bd, m, k, n), output.ToArray());
        var g = LinearReference.Backward(x.Xd, x.Wd, TestRandom.ToDouble(dO), m, k, n);
        float[] all = dp.ToArray();
        Compare.WorstRelativeError("dWeight", g.DWeight, all.AsSpan(weightAt, n * k));
        Compare.WorstRelativeError("dBias", g.DBias, all.AsSpan(biasAt, n));
        Assert.That(all[..weightAt].Concat(all[(weightAt + n * k)..biasAt]).Concat(all[(biasAt + n)..]), Is.All.EqualTo(0f),
            "gradient elements outside the slices");
        Assert.That(outputs.ToArray()[..5], Is.All.NaN, "output elements before the slice");
    }

    [Test]
    public void CpuResultsDoNotDependOnTheThreadCount()
    {
        const int m = 131, k = 300, n = 270;
        var random = TestRandom.Create();
        var x = Draw(random, m, k, n);
        float[] dO = TestRandom.Normal(random, m * n);
        float[][] RunOn(int threads)
        {
            using var device = new CpuDevice(threads);
            using var s = new Set(device, x);
            device.Operations.LinearForward(s.Output, s.Input, s.Weight, s.Bias);
            s.DOutput.CopyFrom(dO);
            device.Operations.LinearBackward(s.DInput, s.DWeight, s.DBias, s.DOutput, s.Input, s.Weight);
            return [s.Output.ToArray(), s.DInput.ToArray(), s.DWeight.ToArray(), s.DBias.ToArray()];
        }
        string[] names = ["output", "dInput", "dWeight", "dBias"];
        var one = RunOn(1);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var many = RunOn(threads);
            for (int o = 0; o < one.Length; o++) Assert.That(many[o], Is.EqualTo(one[o]), $"{names[o]} with {threads} threads");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsWrongShapes(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int m = 4, k = 3, n = 5;
        using var s = new Set(device, new Inputs(m, k, n, new float[m * k], new float[n * k], new float[n]));
        using var flat = device.Allocate<float>(m * k);
        using var batched = device.Allocate<float>(2, 2, k);
        using var wrongK = device.Allocate<float>(n, k + 1);
        using var bias4 = device.Allocate<float>(n - 1);
        using var bias2D = device.Allocate<float>(1, n);
        using var mk = device.Allocate<float>(m, k);
        using var nk = device.Allocate<float>(n, k);
        using var mn = device.Allocate<float>(m, n);
        var ops = device.Operations;

        ArgumentException Expect(string name, TestDelegate call)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), call)!;
            Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain($"'{name}'"));
            return (ArgumentException)ex;
        }

        Expect("input", () => ops.LinearForward(s.Output, flat, s.Weight, s.Bias));
        Expect("input", () => ops.LinearForward(s.Output, batched, s.Weight, s.Bias));
        var weight = Expect("weight", () => ops.LinearForward(s.Output, s.Input, wrongK, s.Bias));
        Assert.That(weight.Message, Does.Contain("'input' has 3 columns"));
        Expect("weight", () => ops.LinearForward(s.Output, s.Input, flat, s.Bias));
        Expect("bias", () => ops.LinearForward(s.Output, s.Input, s.Weight, bias4));
        Expect("bias", () => ops.LinearForward(s.Output, s.Input, s.Weight, bias2D));
        Expect("output", () => ops.LinearForward(mk, s.Input, s.Weight, s.Bias));

        Expect("input", () => ops.LinearBackward(s.DInput, s.DWeight, s.DBias, s.DOutput, flat, s.Weight));
        Expect("weight", () => ops.LinearBackward(s.DInput, s.DWeight, s.DBias, s.DOutput, s.Input, wrongK));
        Expect("dBias", () => ops.LinearBackward(s.DInput, s.DWeight, bias4, s.DOutput, s.Input, s.Weight));
        Expect("dOutput", () => ops.LinearBackward(s.DInput, s.DWeight, s.DBias, mk, s.Input, s.Weight));
        Expect("dWeight", () => ops.LinearBackward(s.DInput, mn, s.DBias, s.DOutput, s.Input, s.Weight));
        Expect("dInput", () => ops.LinearBackward(nk, s.DWeight, s.DBias, s.DOutput, s.Input, s.Weight));
    }
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsAnOutputThatOverlapsWhatTheCallReads(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int m = 4, k = 3, n = 5;
        using var s = new Set(device, new Inputs(m, k, n, new float[m * k], new float[n * k], new float[n]));
        using var buffer = device.Allocate<float>(64);
        var ops = device.Operations;

        void Expect(string name, string other, TestDelegate call)
        {
            var ex = Assert.Throws<ArgumentException>(call)!;
            Assert.That(ex.ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain($"'{name}' shares memory with '{other}'"));
        }

        // In place (output over its own input) and a gradient overlapping another by one element.
        Expect("output", "input", () => ops.LinearForward(buffer.Slice(0, m, n), buffer.Slice(2, m, k), s.Weight, s.Bias));
        Expect("output", "bias", () => ops.LinearForward(buffer.Slice(0, m, n), s.Input, s.Weight, buffer.Slice(m * n - 1, n)));
        Expect("dInput", "dOutput", () => ops.LinearBackward(buffer.Slice(0, m, k), s.DWeight, s.DBias, buffer.Slice(5, m, n), s.Input, s.Weight));
        Expect("dWeight", "dBias", () => ops.LinearBackward(s.DInput, buffer.Slice(0, n, k), buffer.Slice(n * k - 1, n), s.DOutput, s.Input, s.Weight));
        // Neighbouring slices of one buffer are fine.
        ops.LinearBackward(s.DInput, buffer.Slice(0, n, k), buffer.Slice(n * k, n), s.DOutput, s.Input, s.Weight);
        device.Synchronize();
    }

    /// <summary>
    /// More rows than CUDA's grid Y allows (65,535): the bias reaches every row, added by the GEMM kernel as it writes (its grid
    /// has one Y per tile of rows) or, where cuBLAS runs the product, broadcast first over one flat dimension.
    /// With a zero input every output is the bias exactly (the product adds exact zeros), so equality is the bound.
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void BiasReachesEveryRowPastCudasGridYLimit(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int m = 65_600, k = 1, n = 2;
        var random = TestRandom.Create();
        float[] bias = TestRandom.Normal(random, n);
        using var input = device.Allocate<float>(m, k);
        input.Fill(0f);
        using var weight = device.FromArray<float>(TestRandom.Normal(random, n * k), n, k);
        using var biasTensor = device.FromArray<float>(bias, n);
        using var output = device.Allocate<float>(m, n);
        output.Fill(float.NaN);
        device.Operations.LinearForward(output, input, weight, biasTensor);
        float[] y = output.ToArray();
        for (int row = 0; row < m; row++)
            for (int j = 0; j < n; j++)
                if (y[row * n + j] != bias[j]) Assert.Fail($"output[{row}, {j}] is {y[row * n + j]}, not the bias {bias[j]}");
    }
}

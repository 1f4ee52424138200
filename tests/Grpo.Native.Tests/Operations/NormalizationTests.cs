using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>LayerNorm and RMSNorm, forward and backward, on every backend against the double reference.</summary>
public sealed partial class NormalizationTests
{
    /// <summary>Which normalisation a test runs; both share the test bodies.</summary>
    public enum Norm
    {
        LayerNorm,
        RmsNorm,
    }

    // dInput = rstd·(dnorm − mean(dnorm) − norm·mean(dnorm ⊙ norm)) subtracts O(1) terms of both signs:
    // an element that cancels to a small fraction of the row's largest keeps their ~1e-7 absolute
    // rounding, which reads as up to a few 1e-5 against Compare's floor (1e-3 × the largest gradient).
    // dWeight adds dy ⊙ norm of both signs over M rows, with the same effect. 1e-3 as for the other
    // families' cancelling gradients; forward outputs keep the default 1e-4.
    private const double GradientTolerance = 1e-3;

    // A LayerNorm output y = (x − mean)·rstd·w + b adds terms of opposite signs (x − mean with mean ≈ 3, then + b), so
    // it is judged against its terms' size, (|x| + |mean|)·rstd·|w| + |b|: the fp32 output is within (C + 6)·u of it
    // (rstd from a sum of C squares, one rounding each for x − mean, the two products and the add):
    // (128 + 6)·2^-24 = 8e-6 < 2e-5. RMSNorm's x·rstd·w does not cancel and keeps the default element-relative 1e-4.
    private const double LayerNormOutputTolerance = 2e-5;

    /// <summary>The output against the reference: LayerNorm against its terms' size (above), RMSNorm element by element.</summary>
    private static void CompareOutput(Inputs x, (double[] Output, double[] Mean, double[] Rstd) expected, float[] actual)
    {
        if (x.Norm != Norm.LayerNorm)
        {
            Compare.WorstRelativeError("output", expected.Output, actual);
            return;
        }
        var scale = new double[x.M * x.C];                                  // (M, C)
        for (int r = 0; r < x.M; r++)
            for (int j = 0; j < x.C; j++)
                scale[r * x.C + j] = (Math.Abs(x.X[r * x.C + j]) + Math.Abs(expected.Mean[r])) * expected.Rstd[r] * Math.Abs(x.Weight[j])
                                     + Math.Abs(x.Bias[j]);
        Compare.WorstScaledError("output", expected.Output, scale, actual, LayerNormOutputTolerance);
    }

    private static readonly int[] Rows = [1, 7, 64];
    private static readonly int[] Channels = [8, 33, 128];

    public static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from norm in new[] { Norm.LayerNorm, Norm.RmsNorm }
        from m in Rows
        from c in Channels
        select new TestCaseData(kind, norm, m, c).SetArgDisplayNames(kind.ToString(), norm.ToString(), $"M={m}", $"C={c}"));

    public static IEnumerable<TestCaseData> KindsAndNorms() =>
        from kind in TestDevices.Kinds()
        from norm in new[] { Norm.LayerNorm, Norm.RmsNorm }
        select new TestCaseData(kind, norm).SetArgDisplayNames(kind.ToString(), norm.ToString());

    /// <summary>Host inputs of one call: rows of mean 3 and spread 2, so the mean subtraction matters.</summary>
    private sealed record Inputs(Norm Norm, int M, int C, float Epsilon, float[] X, float[] Weight, float[] Bias)
    {
        public double[] Xd => TestRandom.ToDouble(X);
        public double[] Wd => TestRandom.ToDouble(Weight);
        public double[] Bd => TestRandom.ToDouble(Bias);

        /// <summary>The reference forward: output, mean (zeros for RMSNorm) and rstd.</summary>
        public (double[] Output, double[] Mean, double[] Rstd) Forward()
        {
            if (Norm == Norm.LayerNorm)
            {
                var r = NormalizationReference.LayerNormForward(Xd, Wd, Bd, M, C, Epsilon);
                return (r.Output, r.Mean, r.Rstd);
            }
            var rms = NormalizationReference.RmsNormForward(Xd, Wd, M, C, Epsilon);
            return (rms.Output, new double[M], rms.Rstd);
        }

        /// <summary>The reference gradients for upstream gradient dy.</summary>
        public NormalizationReference.Gradients Backward(double[] dy) => Norm == Norm.LayerNorm
            ? NormalizationReference.LayerNormBackward(Xd, Wd, dy, M, C, Epsilon)
            : NormalizationReference.RmsNormBackward(Xd, Wd, dy, M, C, Epsilon);
    }

    private static Inputs Draw(Random random, Norm norm, int m, int c)
    {
        float[] x = TestRandom.Normal(random, m * c, 2.0);
        for (int i = 0; i < x.Length; i++) x[i] += 3f;
        float[] w = TestRandom.Normal(random, c, 0.3);
        for (int j = 0; j < c; j++) w[j] += 1f;
        // GPT-2's layer_norm_epsilon and Qwen2's rms_norm_eps.
        return new Inputs(norm, m, c, norm == Norm.LayerNorm ? 1e-5f : 1e-6f, x, w, TestRandom.Normal(random, c, 0.5));
    }

    /// <summary>The device tensors of one call, forward outputs poisoned, gradients zero.</summary>
    private sealed class Set : IDisposable
    {
        public Set(Device device, Inputs x)
        {
            Norm = x.Norm;
            Epsilon = x.Epsilon;
            Input = device.FromArray<float>(x.X, x.M, x.C);
            Weight = device.FromArray<float>(x.Weight, x.C);
            Bias = device.FromArray<float>(x.Bias, x.C);
            Output = Poison.Fill(device.Allocate<float>(x.M, x.C));
            Mean = Poison.Fill(device.Allocate<float>(x.M));
            Rstd = Poison.Fill(device.Allocate<float>(x.M));
            DOutput = device.Allocate<float>(x.M, x.C);
            DInput = device.Allocate<float>(x.M, x.C);
            DWeight = device.Allocate<float>(x.C);
            DBias = device.Allocate<float>(x.C);
            foreach (var t in new[] { DOutput, DInput, DWeight, DBias }) t.Fill(0);
        }

        public readonly Norm Norm;
        public float Epsilon;
        public readonly Tensor<float> Input, Weight, Bias, Output, Mean, Rstd, DOutput, DInput, DWeight, DBias;

        public void Forward(Device device)
        {
            if (Norm == Norm.LayerNorm) device.Operations.LayerNormForward(Output, Mean, Rstd, Input, Weight, Bias, Epsilon);
            else device.Operations.RmsNormForward(Output, Rstd, Input, Weight, Epsilon);
            device.Synchronize();
        }

        public void Backward(Device device)
        {
            if (Norm == Norm.LayerNorm) device.Operations.LayerNormBackward(DInput, DWeight, DBias, DOutput, Input, Weight, Mean, Rstd);
            else device.Operations.RmsNormBackward(DInput, DWeight, DOutput, Input, Weight, Rstd);
            device.Synchronize();
        }

        public void Dispose()
        {
            foreach (var t in new[] { Input, Weight, Bias, Output, Mean, Rstd, DOutput, DInput, DWeight, DBias }) t.Dispose();
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void ForwardMatchesReference(DeviceKind kind, Norm norm, int m, int c)
    {
        var device = TestDevices.Get(kind);
        var x = Draw(TestRandom.Create(), norm, m, c);
        using var s = new Set(device, x);
        s.Forward(device);
        var expected = x.Forward();
        CompareOutput(x, expected, s.Output.ToArray());
        Compare.WorstRelativeError("rstd", expected.Rstd, s.Rstd.ToArray());
        if (norm == Norm.LayerNorm) Compare.WorstRelativeError("mean", expected.Mean, s.Mean.ToArray());
    }

    [TestCaseSource(nameof(Cases))]
    public void BackwardAccumulatesTheReferenceGradient(DeviceKind kind, Norm norm, int m, int c)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, norm, m, c);
        float[] dy = TestRandom.Normal(random, m * c);
        // Known starting values: the op must add to them, not overwrite them.
        float[] dxStart = TestRandom.Normal(random, m * c, 0.1);
        float[] dwStart = TestRandom.Normal(random, c, 0.1);
        float[] dbStart = TestRandom.Normal(random, c, 0.1);
        var forward = x.Forward();

        using var s = new Set(device, x);
        // The forward's statistics from the reference, rounded to fp32: the test isolates the backward.
        s.Mean.CopyFrom(Array.ConvertAll(forward.Mean, v => (float)v));
        s.Rstd.CopyFrom(Array.ConvertAll(forward.Rstd, v => (float)v));
        s.DOutput.CopyFrom(dy);
        s.DInput.CopyFrom(dxStart);
        s.DWeight.CopyFrom(dwStart);
        s.DBias.CopyFrom(dbStart);
        s.Backward(device);

        var g = x.Backward(TestRandom.ToDouble(dy));
        for (int i = 0; i < g.DInput.Length; i++) g.DInput[i] += dxStart[i];
        for (int j = 0; j < c; j++) g.DWeight[j] += dwStart[j];
        for (int j = 0; j < c; j++) g.DBias[j] += dbStart[j];
        Compare.WorstRelativeError("dInput", g.DInput, s.DInput.ToArray(), GradientTolerance);
        Compare.WorstRelativeError("dWeight", g.DWeight, s.DWeight.ToArray(), GradientTolerance);
        // RMSNorm has no bias: its dBias tensor is never passed and must keep the starting values.
        if (norm == Norm.LayerNorm) Compare.WorstRelativeError("dBias", g.DBias, s.DBias.ToArray(), GradientTolerance);
        else Assert.That(s.DBias.ToArray(), Is.EqualTo(dbStart));
    }

    [TestCaseSource(nameof(KindsAndNorms))]
    public void GradientMatchesFiniteDifferences(DeviceKind kind, Norm norm)
    {
        const int m = 3, c = 7;
        var random = TestRandom.Create();
        var x = Draw(random, norm, m, c);
        double[] xd = x.Xd, wd = x.Wd, bd = x.Bd;
        double[] lossWeights = TestRandom.ToDouble(TestRandom.Normal(random, m * c));
        double Loss() => norm == Norm.LayerNorm
            ? NormalizationReference.LayerNormWeightedLoss(xd, wd, bd, m, c, x.Epsilon, lossWeights)
            : NormalizationReference.RmsNormWeightedLoss(xd, wd, m, c, x.Epsilon, lossWeights);

        // Central differences of L = Σ lossWeights ⊙ output in double, step 1e-5: truncation and rounding both ~1e-10.
        double[] Numeric(double[] p) => FiniteDifferences.Central(Loss, p);
        double[] numericX = Numeric(xd), numericW = Numeric(wd), numericB = Numeric(bd);
        var g = x.Backward(lossWeights);
        Compare.WorstRelativeError("reference dInput vs finite differences", numericX, g.DInput, 1e-6);
        Compare.WorstRelativeError("reference dWeight vs finite differences", numericW, g.DWeight, 1e-6);
        if (norm == Norm.LayerNorm) Compare.WorstRelativeError("reference dBias vs finite differences", numericB, g.DBias, 1e-6);
        else Assert.That(numericB, Is.All.EqualTo(0), "RMSNorm has no bias");

        // The fp32 op end to end (its own forward's statistics) against the reference gradient.
        var device = TestDevices.Get(kind);
        using var s = new Set(device, x);
        s.Forward(device);
        s.DOutput.CopyFrom(Array.ConvertAll(lossWeights, w => (float)w));
        s.Backward(device);
        Compare.WorstRelativeError("fp32 dInput vs reference", g.DInput, s.DInput.ToArray(), GradientTolerance);
        Compare.WorstRelativeError("fp32 dWeight vs reference", g.DWeight, s.DWeight.ToArray(), GradientTolerance);
        if (norm == Norm.LayerNorm) Compare.WorstRelativeError("fp32 dBias vs reference", g.DBias, s.DBias.ToArray(), GradientTolerance);
    }

    [TestCaseSource(nameof(KindsAndNorms))]
    public void ConstantRowsStayFinite(DeviceKind kind, Norm norm)
    {
        // Variance zero (LayerNorm) or an all-zero row (RMSNorm): epsilon alone keeps rstd finite.
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, norm, 2, 9);
        var constant = x with { X = [.. Enumerable.Repeat(norm == Norm.LayerNorm ? 2.5f : 0f, 9), .. x.X.AsSpan(9, 9)] };
        using var s = new Set(device, constant);
        s.Forward(device);
        s.DOutput.CopyFrom(TestRandom.Normal(random, 18));
        s.Backward(device);
        var expected = constant.Forward();
        CompareOutput(constant, expected, s.Output.ToArray());
        Compare.WorstRelativeError("rstd", expected.Rstd, s.Rstd.ToArray());
        var g = constant.Backward(TestRandom.ToDouble(s.DOutput.ToArray()));
        Compare.WorstRelativeError("dInput", g.DInput, s.DInput.ToArray(), GradientTolerance);
    }

    /// <summary>Forward outputs and the gradients (from zero) of one run.</summary>
    private static float[][] Run(Device device, Inputs x, float[] dy)
    {
        using var s = new Set(device, x);
        s.Forward(device);
        s.DOutput.CopyFrom(dy);
        s.Backward(device);
        var result = new List<float[]> { s.Output.ToArray(), s.Rstd.ToArray(), s.DInput.ToArray(), s.DWeight.ToArray() };
        if (x.Norm == Norm.LayerNorm) result.AddRange([s.Mean.ToArray(), s.DBias.ToArray()]);
        return result.ToArray();
    }

    private static readonly string[] Outputs = ["output", "rstd", "dInput", "dWeight", "mean", "dBias"];

    [TestCase(Norm.LayerNorm)]
    [TestCase(Norm.RmsNorm)]
    public void CpuResultsDoNotDependOnTheThreadCount(Norm norm)
    {
        var random = TestRandom.Create();
        // 203 rows: 26 blocks of 8 rows (a ragged last one) for the weight-gradient partial sums.
        var x = Draw(random, norm, 203, 65);
        float[] dy = TestRandom.Normal(random, x.M * x.C);
        float[][] RunOn(int threads)
        {
            using var device = new CpuDevice(threads);
            return Run(device, x, dy);
        }
        var one = RunOn(1);
        foreach (int threads in new[] { 2, 3, 4 })
        {
            var many = RunOn(threads);
            for (int o = 0; o < one.Length; o++) Assert.That(many[o], Is.EqualTo(one[o]), $"{Outputs[o]} with {threads} threads");
        }
    }

    [TestCaseSource(nameof(KindsAndNorms))]
    public void RepeatedRunsAreBitIdentical(DeviceKind kind, Norm norm)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, norm, 50, 20); // 7 row blocks, the last one ragged (2 rows)
        float[] dy = TestRandom.Normal(random, x.M * x.C);
        var first = Run(device, x, dy);
        var second = Run(device, x, dy);
        for (int o = 0; o < first.Length; o++) Assert.That(second[o], Is.EqualTo(first[o]), Outputs[o]);
        // And right: every block's partial sums, the ragged one included, reach the weight gradients.
        var g = x.Backward(TestRandom.ToDouble(dy));
        Compare.WorstRelativeError("dInput", g.DInput, first[2], GradientTolerance);
        Compare.WorstRelativeError("dWeight", g.DWeight, first[3], GradientTolerance);
        if (norm == Norm.LayerNorm) Compare.WorstRelativeError("dBias", g.DBias, first[5], GradientTolerance);
    }

    [TestCase(Norm.LayerNorm)]
    [TestCase(Norm.RmsNorm)]
    public void ManyRowsUseLongerBlocks(Norm norm)
    {
        // Past 512 × 8 rows the blocks grow (here 10 rows, 500 blocks) so the partial sums stay bounded.
        var device = TestDevices.Get(DeviceKind.Cpu);
        var random = TestRandom.Create();
        var x = Draw(random, norm, 5000, 8);
        float[] dy = TestRandom.Normal(random, x.M * x.C);
        using var s = new Set(device, x);
        s.Forward(device);
        s.DOutput.CopyFrom(dy);
        s.Backward(device);
        var g = x.Backward(TestRandom.ToDouble(dy));
        CompareOutput(x, x.Forward(), s.Output.ToArray());
        Compare.WorstRelativeError("dInput", g.DInput, s.DInput.ToArray(), GradientTolerance);
        Compare.WorstRelativeError("dWeight", g.DWeight, s.DWeight.ToArray(), GradientTolerance);
        if (norm == Norm.LayerNorm) Compare.WorstRelativeError("dBias", g.DBias, s.DBias.ToArray(), GradientTolerance);
    }

    [TestCaseSource(nameof(KindsAndNorms))]
    public void SlicesOfOneBufferTouchOnlyTheirWindows(DeviceKind kind, Norm norm)
    {
        // Weights and activations as named views inside one buffer, as a model lays them out.
        const int m = 5, c = 11;
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, norm, m, c);
        float[] dy = TestRandom.Normal(random, m * c);
        // Layout: gap, input, gap, weight, bias, gap, output, mean, rstd, dOutput, dInput, dWeight, dBias, gap.
        int[] sizes = [3, m * c, 2, c, c, 1, m * c, m, m, m * c, m * c, c, c, 4];
        var offsets = new int[sizes.Length + 1];
        for (int i = 0; i < sizes.Length; i++) offsets[i + 1] = offsets[i] + sizes[i];
        var initial = TestRandom.Normal(random, offsets[^1]);
        using var buffer = device.FromArray<float>(initial, offsets[^1]);
        Tensor<float> View(int part, params int[] shape) => buffer.Slice(offsets[part], shape);
        var input = View(1, m, c);
        var weight = View(3, c);
        var bias = View(4, c);
        var output = View(6, m, c);
        var mean = View(7, m);
        var rstd = View(8, m);
        var dOutput = View(9, m, c);
        var dInput = View(10, m, c);
        var dWeight = View(11, c);
        var dBias = View(12, c);
        input.CopyFrom(x.X);
        weight.CopyFrom(x.Weight);
        bias.CopyFrom(x.Bias);
        dOutput.CopyFrom(dy);
        foreach (var t in new[] { dInput, dWeight, dBias }) t.Fill(0);
        float[] before = buffer.ToArray();

        var ops = device.Operations;
        if (norm == Norm.LayerNorm)
        {
            ops.LayerNormForward(output, mean, rstd, input, weight, bias, x.Epsilon);
            ops.LayerNormBackward(dInput, dWeight, dBias, dOutput, input, weight, mean, rstd);
        }
        else
        {
            ops.RmsNormForward(output, rstd, input, weight, x.Epsilon);
            ops.RmsNormBackward(dInput, dWeight, dOutput, input, weight, rstd);
        }
        device.Synchronize();

        var expected = x.Forward();
        var g = x.Backward(TestRandom.ToDouble(dy));
        CompareOutput(x, expected, output.ToArray());
        Compare.WorstRelativeError("dInput", g.DInput, dInput.ToArray(), GradientTolerance);
        Compare.WorstRelativeError("dWeight", g.DWeight, dWeight.ToArray(), GradientTolerance);
        // Everything outside the outputs' windows is untouched.
        var written = new HashSet<int> { 6, 8, 10, 11 };
        if (norm == Norm.LayerNorm) written.UnionWith([7, 12]);
        float[] after = buffer.ToArray();
        for (int part = 0; part < sizes.Length; part++)
            if (!written.Contains(part))
                Assert.That(after[offsets[part]..offsets[part + 1]], Is.EqualTo(before[offsets[part]..offsets[part + 1]]), $"part {part}");
    }

    [TestCaseSource(nameof(KindsAndNorms))]
    public void RejectsABadEpsilon(DeviceKind kind, Norm norm)
    {
        var device = TestDevices.Get(kind);
        using var s = new Set(device, Draw(TestRandom.Create(), norm, 2, 3));
        foreach (float epsilon in new[] { 0f, -1e-5f, float.NaN, float.PositiveInfinity })
        {
            s.Epsilon = epsilon;
            var ex = Assert.Throws<ArgumentOutOfRangeException>(() => s.Forward(device))!;
            Assert.That(ex.ParamName, Is.EqualTo("epsilon"));
            Assert.That(ex.Message, Does.Contain("positive and finite").And.Contain(norm == Norm.LayerNorm ? "layer_norm_epsilon" : "rms_norm_eps"));
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsWrongShapes(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var s = new Set(device, Draw(TestRandom.Create(), Norm.LayerNorm, 2, 3)); // M = 2, C = 3
        using var flat = device.Allocate<float>(6);
        using var transposed = device.Allocate<float>(3, 2);
        using var four = device.Allocate<float>(4);
        using var three = device.Allocate<float>(3);
        using var two = device.Allocate<float>(2);
        using var threeD = device.Allocate<float>(1, 2, 3);
        var ops = device.Operations;
        const float eps = 1e-5f;

        void Expect(string name, TestDelegate call)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), call)!;
            Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain(name));
        }

        Expect("input", () => ops.LayerNormForward(s.Output, s.Mean, s.Rstd, flat, s.Weight, s.Bias, eps));
        Expect("input", () => ops.RmsNormForward(s.Output, s.Rstd, threeD, s.Weight, eps));
        Expect("weight", () => ops.LayerNormForward(s.Output, s.Mean, s.Rstd, s.Input, four, s.Bias, eps));
        Expect("bias", () => ops.LayerNormForward(s.Output, s.Mean, s.Rstd, s.Input, s.Weight, two, eps));
        Expect("output", () => ops.LayerNormForward(transposed, s.Mean, s.Rstd, s.Input, s.Weight, s.Bias, eps));
        Expect("mean", () => ops.LayerNormForward(s.Output, three, s.Rstd, s.Input, s.Weight, s.Bias, eps));
        Expect("rstd", () => ops.LayerNormForward(s.Output, s.Mean, three, s.Input, s.Weight, s.Bias, eps));
        Expect("weight", () => ops.RmsNormForward(s.Output, s.Rstd, s.Input, two, eps));
        Expect("output", () => ops.RmsNormForward(flat, s.Rstd, s.Input, s.Weight, eps));
        Expect("rstd", () => ops.RmsNormForward(s.Output, four, s.Input, s.Weight, eps));

        Expect("input", () => ops.LayerNormBackward(s.DInput, s.DWeight, s.DBias, s.DOutput, flat, s.Weight, s.Mean, s.Rstd));
        Expect("weight", () => ops.LayerNormBackward(s.DInput, s.DWeight, s.DBias, s.DOutput, s.Input, two, s.Mean, s.Rstd));
        Expect("mean", () => ops.LayerNormBackward(s.DInput, s.DWeight, s.DBias, s.DOutput, s.Input, s.Weight, three, s.Rstd));
        Expect("rstd", () => ops.LayerNormBackward(s.DInput, s.DWeight, s.DBias, s.DOutput, s.Input, s.Weight, s.Mean, three));
        Expect("dOutput", () => ops.LayerNormBackward(s.DInput, s.DWeight, s.DBias, transposed, s.Input, s.Weight, s.Mean, s.Rstd));
        Expect("dInput", () => ops.LayerNormBackward(flat, s.DWeight, s.DBias, s.DOutput, s.Input, s.Weight, s.Mean, s.Rstd));
        Expect("dWeight", () => ops.LayerNormBackward(s.DInput, two, s.DBias, s.DOutput, s.Input, s.Weight, s.Mean, s.Rstd));
        Expect("dBias", () => ops.LayerNormBackward(s.DInput, s.DWeight, four, s.DOutput, s.Input, s.Weight, s.Mean, s.Rstd));
        Expect("input", () => ops.RmsNormBackward(s.DInput, s.DWeight, s.DOutput, transposed.Reshape(6), s.Weight, s.Rstd));
        Expect("weight", () => ops.RmsNormBackward(s.DInput, s.DWeight, s.DOutput, s.Input, four, s.Rstd));
        Expect("rstd", () => ops.RmsNormBackward(s.DInput, s.DWeight, s.DOutput, s.Input, s.Weight, three));
        Expect("dOutput", () => ops.RmsNormBackward(s.DInput, s.DWeight, flat, s.Input, s.Weight, s.Rstd));
        Expect("dInput", () => ops.RmsNormBackward(transposed, s.DWeight, s.DOutput, s.Input, s.Weight, s.Rstd));
        Expect("dWeight", () => ops.RmsNormBackward(s.DInput, two, s.DOutput, s.Input, s.Weight, s.Rstd));
    }

    [Test]
    public void RejectsATensorOfAnotherDevice()
    {
        using var other = new CpuDevice(1);
        var device = TestDevices.Get(DeviceKind.Cpu);
        using var s = new Set(device, Draw(TestRandom.Create(), Norm.RmsNorm, 2, 3));
        using var foreignWeight = other.Allocate<float>(3);
        var ex = Assert.Throws<ArgumentException>(() => device.Operations.RmsNormForward(s.Output, s.Rstd, s.Input, foreignWeight, 1e-6f))!;
        Assert.That(ex.ParamName, Is.EqualTo("weight"));
    }
}

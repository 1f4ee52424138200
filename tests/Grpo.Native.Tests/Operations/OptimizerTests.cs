using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>AdamW, SumOfSquares, Scale and global-norm clipping on every backend against the double reference.</summary>
public sealed class OptimizerTests
{
    private static readonly int[] Sizes = [1, 7, 1000, 4099];

    private static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from size in Sizes
        select new TestCaseData(kind, size).SetArgDisplayNames(kind.ToString(), $"P={size}"));

    [TestCaseSource(nameof(Cases))]
    public void AdamWMatchesTheReferenceOverFiveSteps(DeviceKind kind, int size)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        foreach (float weightDecay in new[] { 0f, 0.1f })
        {
            var options = new AdamWOptions { Beta1 = 0.9f, Beta2 = 0.95f, Epsilon = 1e-8f, WeightDecay = weightDecay };
            float[] p0 = TestRandom.Normal(random, size);
            double[] p = TestRandom.ToDouble(p0), m = new double[size], v = new double[size];
            // m_t = β1·m + (1 − β1)·g adds gradients of both signs, so it is judged against the same recurrence over |g|,
            // which no cancellation shrinks: each step rounds within 3u of it, t ≤ 5 steps: 15·2^-24 = 9e-7 < 1e-5.
            var mScale = new double[size];
            using var parameters = device.FromArray<float>(p0, size);        // (P)
            using var gradients = device.Allocate<float>(size);              // (P)
            using var firstMoment = device.Allocate<float>(size);            // (P)
            using var secondMoment = device.Allocate<float>(size);           // (P)
            firstMoment.Fill(0);
            secondMoment.Fill(0);
            for (int t = 1; t <= 5; t++)
            {
                float lr = 1e-2f * t;
                float[] g = TestRandom.Normal(random, size, 0.5);
                gradients.CopyFrom(g);
                float[] before = parameters.ToArray();
                double[] referenceBefore = (double[])p.Clone();
                device.Operations.AdamWStep(parameters, gradients, firstMoment, secondMoment, t, lr, options);
                OptimizerReference.AdamWStep(p, TestRandom.ToDouble(g), m, v, t, lr,
                    options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
                float[] after = parameters.ToArray();
                // In place, so no poison: every element the reference moves by more than fp32 resolution must have moved.
                for (int i = 0; i < size; i++)
                    if (Math.Abs(p[i] - referenceBefore[i]) > 1e-6 * Math.Abs(referenceBefore[i]))
                        Assert.That(after[i], Is.Not.EqualTo(before[i]), $"wd={weightDecay} t={t}: parameter {i} did not change");
                Compare.WorstRelativeError($"wd={weightDecay} t={t} parameters", p, after);
                for (int i = 0; i < size; i++) mScale[i] = options.Beta1 * mScale[i] + (1 - options.Beta1) * Math.Abs(g[i]);
                Compare.WorstScaledError($"wd={weightDecay} t={t} first moment", m, mScale, firstMoment.ToArray(), 1e-5);
                Compare.WorstRelativeError($"wd={weightDecay} t={t} second moment", v, secondMoment.ToArray());
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void SumOfSquaresAndScaleMatchTheReference(DeviceKind kind, int size)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] x = TestRandom.Normal(random, size, 3);
        using var values = device.FromArray<float>(x, size); // (P)
        double sum = device.Operations.SumOfSquares(values);
        Compare.WorstRelativeError("sum of squares", [OptimizerReference.SumOfSquares(TestRandom.ToDouble(x))], [sum], 1e-5);

        device.Operations.Scale(values, 0.37f);
        Compare.WorstRelativeError("scaled", Array.ConvertAll(x, e => e * 0.37), values.ToArray());
    }

    [Test]
    public void SumOfSquaresIsIndependentOfTheThreadCount()
    {
        var random = TestRandom.Create();
        const int size = 300_001; // many blocks, odd tail
        float[] x = TestRandom.Normal(random, size);
        using var one = new CpuDevice(1);
        using var all = new CpuDevice();
        using var a = one.FromArray<float>(x, size); // (P)
        using var b = all.FromArray<float>(x, size); // (P)
        double serial = one.Operations.SumOfSquares(a), parallel = all.Operations.SumOfSquares(b);
        Assert.That(BitConverter.DoubleToInt64Bits(parallel), Is.EqualTo(BitConverter.DoubleToInt64Bits(serial)));
        Compare.WorstRelativeError("sum of squares", [OptimizerReference.SumOfSquares(TestRandom.ToDouble(x))], [serial], 1e-6);
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ClippingBelowTheLimitLeavesGradientsUntouched(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        float[] g = TestRandom.Normal(TestRandom.Create(), 1000, 0.01);
        using var gradients = device.FromArray<float>(g, 1000); // (P)
        float norm = GradientClipping.ClipGlobalNorm(device.Operations, gradients, 1f);
        Compare.WorstRelativeError("norm", Math.Sqrt(OptimizerReference.SumOfSquares(TestRandom.ToDouble(g))), norm, 1e-5);
        Assert.That(gradients.ToArray(), Is.EqualTo(g), "gradients below the limit must be bit-identical");
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ClippingAboveTheLimitScalesToTheLimit(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        float[] g = TestRandom.Normal(TestRandom.Create(), 4099, 2);
        using var gradients = device.FromArray<float>(g, 4099); // (P)
        float norm = GradientClipping.ClipGlobalNorm(device.Operations, gradients, 1.5f);
        Assert.That(norm, Is.GreaterThan(1.5f));
        double after = Math.Sqrt(OptimizerReference.SumOfSquares(TestRandom.ToDouble(gradients.ToArray())));
        Compare.WorstRelativeError("clipped norm", 1.5, (float)after, 1e-5);
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ClippingRefusesANonFiniteNorm(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        float[] g = TestRandom.Normal(TestRandom.Create(), 100);
        g[37] = float.NaN;
        using var gradients = device.FromArray<float>(g, 100); // (P)
        var error = Assert.Throws<ArgumentException>(() => GradientClipping.ClipGlobalNorm(device.Operations, gradients, 1f));
        Assert.That(error!.ParamName, Is.EqualTo("gradients"));
        Assert.That(error.Message, Does.Contain("gradients"));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void AdamWRejectsBadArguments(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var p = device.Allocate<float>(8);     // (P)
        using var g = device.Allocate<float>(8);     // (P)
        using var m = device.Allocate<float>(8);     // (P)
        using var v = device.Allocate<float>(8);     // (P)
        using var wrong = device.Allocate<float>(9); // (P + 1)
        var ops = device.Operations;
        var ok = new AdamWOptions();
        void Expect(string name, TestDelegate call)
        {
            var error = Assert.Throws(Is.InstanceOf<ArgumentException>(), call) as ArgumentException;
            Assert.That(error!.ParamName, Is.EqualTo(name));
            Assert.That(error.Message, Does.Contain(name));
        }
        Expect("gradients", () => ops.AdamWStep(p, wrong, m, v, 1, 1e-3f, ok));
        Expect("firstMoment", () => ops.AdamWStep(p, g, wrong, v, 1, 1e-3f, ok));
        Expect("secondMoment", () => ops.AdamWStep(p, g, m, wrong, 1, 1e-3f, ok));
        Expect("step", () => ops.AdamWStep(p, g, m, v, 0, 1e-3f, ok));
        Expect("learningRate", () => ops.AdamWStep(p, g, m, v, 1, -1e-3f, ok));
        Expect("learningRate", () => ops.AdamWStep(p, g, m, v, 1, float.NaN, ok));
        Expect("Beta1", () => ops.AdamWStep(p, g, m, v, 1, 1e-3f, ok with { Beta1 = 1f }));
        Expect("Beta1", () => ops.AdamWStep(p, g, m, v, 1, 1e-3f, ok with { Beta1 = -0.1f }));
        Expect("Beta2", () => ops.AdamWStep(p, g, m, v, 1, 1e-3f, ok with { Beta2 = 1f }));
        Expect("Epsilon", () => ops.AdamWStep(p, g, m, v, 1, 1e-3f, ok with { Epsilon = -1e-8f }));
        Expect("WeightDecay", () => ops.AdamWStep(p, g, m, v, 1, 1e-3f, ok with { WeightDecay = -0.01f }));
        Expect("scale", () => ops.Scale(p, float.PositiveInfinity));
        Expect("maxNorm", () => GradientClipping.ClipGlobalNorm(ops, g, 0f));
    }
}

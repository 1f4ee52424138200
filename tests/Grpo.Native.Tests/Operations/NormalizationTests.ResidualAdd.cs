using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// The residual add fused with the norm after it (AddLayerNormForward, AddRmsNormForward): the sum and the norm of it
/// against the double reference, the same bits as Add followed by the norm, in place or not, and one launch.
/// </summary>
public sealed partial class NormalizationTests
{
    /// <summary>Where the fused operation writes input + addend.</summary>
    public enum SumPlacement
    {
        OwnBuffer,
        OverInput,
        OverAddend,
    }

    public static IEnumerable<TestCaseData> ResidualAddCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from norm in new[] { Norm.LayerNorm, Norm.RmsNorm }
        from placement in new[] { SumPlacement.OwnBuffer, SumPlacement.OverInput, SumPlacement.OverAddend }
        select new TestCaseData(kind, norm, placement).SetArgDisplayNames(kind.ToString(), norm.ToString(), placement.ToString()));

    private static void AddThenNorm(Device device, Norm norm, Tensor<float> sum, Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float> addend, Tensor<float> weight, Tensor<float> bias, float epsilon)
    {
        if (norm == Norm.LayerNorm) device.Operations.AddLayerNormForward(sum, output, mean, rstd, input, addend, weight, bias, epsilon);
        else device.Operations.AddRmsNormForward(sum, output, rstd, input, addend, weight, epsilon);
    }

    [TestCaseSource(nameof(ResidualAddCases))]
    public void AddThenNormGivesTheReferenceAndTheBitsOfAddThenNorm(DeviceKind kind, Norm norm, SumPlacement placement)
    {
        const int m = 7, c = 65;
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, norm, m, c);
        float[] addendValues = TestRandom.Normal(random, m * c); // (M, C) what a block half adds to the stream

        // The two operations the fused one replaces, on the same device.
        using var separate = new Set(device, x);
        using var addendForAdd = device.FromArray<float>(addendValues, m, c);
        device.Operations.Add(separate.Input, separate.Input, addendForAdd); // the set's input becomes the sum
        separate.Forward(device);

        using var input = device.FromArray<float>(x.X, m, c);
        using var addend = device.FromArray<float>(addendValues, m, c);
        using var ownSum = Poison.Fill(device.Allocate<float>(m, c));
        var sum = placement switch { SumPlacement.OverInput => input, SumPlacement.OverAddend => addend, _ => ownSum };
        using var fused = new Set(device, x); // poisoned outputs; its weight and bias are x's
        AddThenNorm(device, norm, sum, fused.Output, fused.Mean, fused.Rstd, input, addend, fused.Weight, fused.Bias, x.Epsilon);

        // The sum is each pair's fp32 sum: the sum of two floats is exact in double, then rounded once.
        float[] expectedSum = new float[m * c];
        for (int i = 0; i < expectedSum.Length; i++) expectedSum[i] = (float)((double)x.X[i] + addendValues[i]);
        Assert.That(sum.ToArray(), Is.EqualTo(expectedSum), "sum");
        var ofSum = x with { X = expectedSum };
        var expected = ofSum.Forward();
        CompareOutput(ofSum, expected, fused.Output.ToArray());
        Compare.WorstRelativeError("rstd", expected.Rstd, fused.Rstd.ToArray());
        if (norm == Norm.LayerNorm) Compare.WorstRelativeError("mean", expected.Mean, fused.Mean.ToArray());

        // Bit for bit what Add and the norm give: the model's forward did not change when it fused them.
        Assert.That(fused.Output.ToArray(), Is.EqualTo(separate.Output.ToArray()), "output");
        Assert.That(fused.Rstd.ToArray(), Is.EqualTo(separate.Rstd.ToArray()), "rstd");
        if (norm == Norm.LayerNorm) Assert.That(fused.Mean.ToArray(), Is.EqualTo(separate.Mean.ToArray()), "mean");
        Assert.That(sum.ToArray(), Is.EqualTo(separate.Input.ToArray()), "sum against Add");
    }

    /// <summary>On the ILGPU backend the add and the norm are one kernel: one launch where Add and the norm took two.</summary>
    [TestCase(Norm.LayerNorm)]
    [TestCase(Norm.RmsNorm)]
    public void AddThenNormIsOneLaunch(Norm norm)
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var x = Draw(TestRandom.Create(), norm, 3, 16);
        using var s = new Set(device, x);
        using var addend = device.FromArray<float>(x.X, 3, 16);
        using var sum = device.Allocate<float>(3, 16);
        var before = device.Stats.Snapshot();
        AddThenNorm(device, norm, sum, s.Output, s.Mean, s.Rstd, s.Input, addend, s.Weight, s.Bias, x.Epsilon);
        Assert.That((device.Stats.Snapshot() - before).KernelLaunches, Is.EqualTo(1));
    }

    [TestCaseSource(nameof(KindsAndNorms))]
    public void AddThenNormRejectsBadShapesAndOverlaps(DeviceKind kind, Norm norm)
    {
        var device = TestDevices.Get(kind);
        using var s = new Set(device, Draw(TestRandom.Create(), norm, 2, 3)); // M = 2, C = 3
        using var addend = device.Allocate<float>(2, 3);
        using var sum = device.Allocate<float>(2, 3);
        using var transposed = device.Allocate<float>(3, 2);
        using var wide = device.Allocate<float>(2, 6);
        var ops = device.Operations;

        void Expect(string name, string says, Action<Tensor<float>, Tensor<float>, Tensor<float>, Tensor<float>> call,
            Tensor<float> sumArg, Tensor<float> outputArg, Tensor<float> inputArg, Tensor<float> addendArg)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), () => call(sumArg, outputArg, inputArg, addendArg))!;
            Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain(says));
        }

        void Call(Tensor<float> sumArg, Tensor<float> outputArg, Tensor<float> inputArg, Tensor<float> addendArg) =>
            AddThenNorm(device, norm, sumArg, outputArg, s.Mean, s.Rstd, inputArg, addendArg, s.Weight, s.Bias, s.Epsilon);

        Expect("addend", "was expected", Call, sum, s.Output, s.Input, transposed);
        Expect("sum", "was expected", Call, transposed, s.Output, s.Input, addend);
        Expect("output", "was expected", Call, sum, transposed, s.Input, addend);
        // The sum may be exactly the input or the addend, but not a shifted window over one.
        var input = wide.Slice(0, 2, 3);
        Expect("sum", "shares memory with 'input'", Call, wide.Slice(1, 2, 3), s.Output, input, addend);
        Expect("output", "shares memory with 'sum'", Call, sum, sum, s.Input, addend);
        Expect("output", "shares memory with 'input'", Call, sum, s.Input, s.Input, addend);
        Expect("output", "shares memory with 'addend'", Call, sum, addend, s.Input, addend);
    }
}

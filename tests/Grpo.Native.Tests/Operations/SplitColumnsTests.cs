using Grpo.Native.Devices;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// SplitColumns (a fused Q/K/V projection's output into Q, K and V) and JoinColumns (their gradients back into one) on every
/// backend: copies, so exact.
/// </summary>
public sealed class SplitColumnsTests
{
    private static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from shape in new[] { (M: 1, A: 4, B: 2, C: 2), (M: 7, A: 64, B: 16, C: 16), (M: 300, A: 96, B: 32, C: 40) }
        select new TestCaseData(kind, shape.M, shape.A, shape.B, shape.C)
            .SetArgDisplayNames(kind.ToString(), $"M={shape.M}", $"A={shape.A}", $"B={shape.B}", $"C={shape.C}"));

    [TestCaseSource(nameof(Cases))]
    public void EachColumnReachesItsPart(DeviceKind kind, int m, int a, int b, int c)
    {
        var device = TestDevices.Get(kind);
        float[] values = TestRandom.Normal(TestRandom.Create(), m * (a + b + c));
        using var source = device.FromArray<float>(values, m, a + b + c);  // (M, A + B + C)
        using var first = Poison.Fill(device.Allocate<float>(m, a));        // (M, A)
        using var second = Poison.Fill(device.Allocate<float>(m, b));       // (M, B)
        using var third = Poison.Fill(device.Allocate<float>(m, c));        // (M, C)
        device.Operations.SplitColumns(source, first, second, third);
        // The reference: row by row, columns [0, A), [A, A + B), [A + B, A + B + C).
        var expectedFirst = new float[m * a];
        var expectedSecond = new float[m * b];
        var expectedThird = new float[m * c];
        for (int row = 0; row < m; row++)
            for (int column = 0; column < a + b + c; column++)
            {
                float value = values[row * (a + b + c) + column];
                if (column < a) expectedFirst[row * a + column] = value;
                else if (column < a + b) expectedSecond[row * b + column - a] = value;
                else expectedThird[row * c + column - a - b] = value;
            }
        Assert.That(first.ToArray(), Is.EqualTo(expectedFirst), "first");
        Assert.That(second.ToArray(), Is.EqualTo(expectedSecond), "second");
        Assert.That(third.ToArray(), Is.EqualTo(expectedThird), "third");
    }

    [TestCaseSource(nameof(Cases))]
    public void JoinPutsEachPartBackInItsColumns(DeviceKind kind, int m, int a, int b, int c)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] firstValues = TestRandom.Normal(random, m * a), secondValues = TestRandom.Normal(random, m * b);
        float[] thirdValues = TestRandom.Normal(random, m * c);
        using var first = device.FromArray<float>(firstValues, m, a);                   // (M, A)
        using var second = device.FromArray<float>(secondValues, m, b);                 // (M, B)
        using var third = device.FromArray<float>(thirdValues, m, c);                   // (M, C)
        using var destination = Poison.Fill(device.Allocate<float>(m, a + b + c));      // (M, A + B + C)
        device.Operations.JoinColumns(destination, first, second, third);
        // The reference: each row is the first part's row, then the second's, then the third's.
        var expected = new float[m * (a + b + c)];
        for (int row = 0; row < m; row++)
        {
            Array.Copy(firstValues, row * a, expected, row * (a + b + c), a);
            Array.Copy(secondValues, row * b, expected, row * (a + b + c) + a, b);
            Array.Copy(thirdValues, row * c, expected, row * (a + b + c) + a + b, c);
        }
        Assert.That(destination.ToArray(), Is.EqualTo(expected));
    }

    [TestCaseSource(nameof(Cases))]
    public void SplitAddsEachColumnsBias(DeviceKind kind, int m, int a, int b, int c)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        int width = a + b + c;
        float[] values = TestRandom.Normal(random, m * width), biasValues = TestRandom.Normal(random, width);
        using var source = device.FromArray<float>(values, m, width);     // (M, A + B + C)
        using var bias = device.FromArray<float>(biasValues, width);      // (A + B + C)
        using var first = Poison.Fill(device.Allocate<float>(m, a));      // (M, A)
        using var second = Poison.Fill(device.Allocate<float>(m, b));     // (M, B)
        using var third = Poison.Fill(device.Allocate<float>(m, c));      // (M, C)
        device.Operations.SplitColumns(source, first, second, third, bias);
        // Each value plus its column's bias, one fp32 addition: two floats add exactly in double, then round once.
        var expected = new[] { new float[m * a], new float[m * b], new float[m * c] };
        int[] starts = [0, a, a + b], widths = [a, b, c];
        for (int row = 0; row < m; row++)
            for (int part = 0; part < 3; part++)
                for (int j = 0; j < widths[part]; j++)
                {
                    int column = starts[part] + j;
                    expected[part][row * widths[part] + j] = (float)((double)values[row * width + column] + biasValues[column]);
                }
        Assert.That(first.ToArray(), Is.EqualTo(expected[0]), "first");
        Assert.That(second.ToArray(), Is.EqualTo(expected[1]), "second");
        Assert.That(third.ToArray(), Is.EqualTo(expected[2]), "third");
    }

    /// <summary>
    /// On the ILGPU backend a GEMM without its bias, split with the bias, gives the bits of the GEMM with the bias: the kernel
    /// (and cuBLAS with beta = 1) adds the finished dot product to the bias in one rounding, and so does the split. The CPU
    /// GEMM adds its K panels one by one into a bias-initialised output, so there the bias joins the sum at another place.
    /// </summary>
    [TestCase(DeviceKind.IlgpuCpu)]
    [TestCase(DeviceKind.IlgpuCpuCudaShapes)]
    public void SplitWithTheBiasGivesTheBitsOfTheBiasedGemm(DeviceKind kind)
    {
        const int m = 9, k = 520, a = 64, b = 16, c = 16;
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        using var input = device.FromArray<float>(TestRandom.Normal(random, m * k), m, k);                   // (M, K)
        using var weight = device.FromArray<float>(TestRandom.Normal(random, (a + b + c) * k), a + b + c, k); // (A + B + C, K)
        using var bias = device.FromArray<float>(TestRandom.Normal(random, a + b + c), a + b + c);            // (A + B + C)
        using var withBias = device.Allocate<float>(m, a + b + c);
        using var withoutBias = device.Allocate<float>(m, a + b + c);
        device.Operations.LinearForward(withBias, input, weight, bias);
        device.Operations.LinearForward(withoutBias, input, weight, null);
        float[][] Split(Tensor<float> fused, Tensor<float>? splitBias)
        {
            using var first = device.Allocate<float>(m, a);
            using var second = device.Allocate<float>(m, b);
            using var third = device.Allocate<float>(m, c);
            device.Operations.SplitColumns(fused, first, second, third, splitBias);
            return [first.ToArray(), second.ToArray(), third.ToArray()];
        }
        Assert.That(Split(withoutBias, bias), Is.EqualTo(Split(withBias, null)));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void WrongShapesAndOverlapsAreNamed(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        using var source = device.Allocate<float>(3, 8);
        using var first = device.Allocate<float>(3, 4);
        using var second = device.Allocate<float>(3, 2);
        using var third = device.Allocate<float>(3, 2);
        using var wide = device.Allocate<float>(3, 3);
        using var tall = device.Allocate<float>(4, 2);
        void Expect(string name, TestDelegate call) =>
            Assert.That(Assert.Throws(Is.InstanceOf<ArgumentException>(), call)!.Message, Does.Contain(name));
        Expect("source", () => ops.SplitColumns(source, first, second, wide));
        Expect("third", () => ops.SplitColumns(source, first, second, tall));
        Expect("first", () => ops.SplitColumns(source, source.Slice(0, 3, 4), second, third));
        using var bias = device.Allocate<float>(8);
        Expect("bias", () => ops.SplitColumns(source, first, second, third, bias.Slice(0, 7)));
        using var shared = device.Allocate<float>(20);
        Expect("first", () => ops.SplitColumns(source, shared.Slice(0, 3, 4), second, third, shared.Slice(8, 8))); // the bias over first's last row
        Expect("destination", () => ops.JoinColumns(source, first, second, wide));
        Expect("third", () => ops.JoinColumns(source, first, second, tall));
        Expect("second", () => ops.JoinColumns(source, first, source.Slice(0, 3, 2), third));
    }
}

using Grpo.Kernels;
using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tests.Support;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using NUnit.Framework;

namespace Grpo.Native.Tests.Kernels;

/// <summary>The group reduction every row kernel builds on, checked on the ILGPU CPU accelerator.</summary>
public sealed class GroupReduceTests
{
    // One group per row: thread t strides over the row, then the group combines the partials.
    private static void RowSumAndMax(ArrayView<float> input, int columns, ArrayView<float> sums, ArrayView<float> maxima)
    {
        int row = Grid.IdxX;
        float sum = 0, max = float.NegativeInfinity;
        for (int c = Group.IdxX; c < columns; c += Group.DimX)
        {
            float v = input[row * columns + c];
            sum += v;
            max = XMath.Max(max, v);
        }
        sum = GroupReduce.Sum(sum);
        max = GroupReduce.Max(max);
        if (Group.IdxX == 0)
        {
            sums[row] = sum;
            maxima[row] = max;
        }
    }

    // Per row: the count of positive values (int sum) and the first column holding the row maximum.
    private static void RowCountAndArgMax(ArrayView<float> input, int columns, ArrayView<int> counts, ArrayView<int> argMax)
    {
        int row = Grid.IdxX;
        int count = 0, bestIndex = int.MaxValue;
        float best = float.NegativeInfinity;
        for (int c = Group.IdxX; c < columns; c += Group.DimX)
        {
            float v = input[row * columns + c];
            if (v > 0) count++;
            if (v > best) { best = v; bestIndex = c; } // a thread visits its columns in increasing order
        }
        count = GroupReduce.Sum(count);
        int index = GroupReduce.ArgMax(best, bestIndex);
        if (Group.IdxX == 0)
        {
            counts[row] = count;
            argMax[row] = index;
        }
    }

    [TestCase(3, 1)]
    [TestCase(4, 37)]
    [TestCase(5, 1000)]
    public void IntegerSumsAndLowestIndexArgMaxMatchTheReference(int rows, int columns)
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        // Few distinct values, so the maximum is tied across columns and the lowest index must win.
        float[] data = Enumerable.Range(0, rows * columns).Select(_ => (float)random.Next(-3, 4)).ToArray();
        using var input = device.FromArray<float>(data, rows, columns);
        using var counts = Poison.Fill(device.Allocate<int>(rows));
        using var argMax = Poison.Fill(device.Allocate<int>(rows));
        var kernel = device.Accelerator.LoadStreamKernel<ArrayView<float>, int, ArrayView<int>, ArrayView<int>>(RowCountAndArgMax);
        var ops = (IlgpuOperations)device.Operations;
        kernel(new KernelConfig(rows, device.RowGroupSize), ops.View(input, "input").BaseView, columns,
            ops.View(counts, "counts").BaseView, ops.View(argMax, "argMax").BaseView);
        device.Synchronize();

        for (int r = 0; r < rows; r++)
        {
            var row = data.AsSpan(r * columns, columns).ToArray();
            Assert.That(counts.ToArray()[r], Is.EqualTo(row.Count(v => v > 0)), $"count of row {r}");
            Assert.That(argMax.ToArray()[r], Is.EqualTo(Array.IndexOf(row, row.Max())), $"argmax of row {r}");
        }
    }

    [TestCase(1, 1)]
    [TestCase(5, 3)]
    [TestCase(7, 1000)]
    public void RowSumsAndMaximaMatchTheReference(int rows, int columns)
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        float[] data = TestRandom.Normal(random, rows * columns);
        using var input = device.FromArray<float>(data, rows, columns);
        using var sums = Poison.Fill(device.Allocate<float>(rows));
        using var maxima = Poison.Fill(device.Allocate<float>(rows));
        var kernel = device.Accelerator.LoadStreamKernel<ArrayView<float>, int, ArrayView<float>, ArrayView<float>>(RowSumAndMax);
        var ops = (IlgpuOperations)device.Operations;
        kernel(new KernelConfig(rows, device.RowGroupSize), ops.View(input, "input").BaseView, columns,
            ops.View(sums, "sums").BaseView, ops.View(maxima, "maxima").BaseView);
        device.Synchronize();

        var expectedSums = new double[rows];
        var expectedMax = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            expectedMax[r] = double.NegativeInfinity;
            for (int c = 0; c < columns; c++)
            {
                expectedSums[r] += data[r * columns + c];
                expectedMax[r] = Math.Max(expectedMax[r], data[r * columns + c]);
            }
        }
        TestContext.Out.WriteLine($"group size {device.RowGroupSize}");
        Compare.WorstRelativeError("row sums", expectedSums, sums.ToArray(), 1e-4);
        Compare.WorstRelativeError("row maxima", expectedMax, maxima.ToArray(), 0);
    }
}

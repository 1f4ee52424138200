using Grpo.Kernels;
using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Kernels;

/// <summary>The tiled shared-memory matmul on the ILGPU CPU simulator (and CUDA when visible), every form.</summary>
public sealed class MatmulKernelTests
{
    public enum Form { TransposedB, Plain, TransposedA }

    public static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds().Where(k => k != DeviceKind.Cpu)
        from form in Enum.GetValues<Form>()
        from size in new[] { (1, 1, 1), (5, 17, 33), (19, 3, 40), (33, 20, 7) }
        from accumulate in new[] { false, true }
        select new TestCaseData(kind, form, size.Item1, size.Item2, size.Item3, accumulate);

    [TestCaseSource(nameof(Cases))]
    public void MatchesNaiveLoop(DeviceKind kind, Form form, int m, int n, int k, bool accumulate)
    {
        var device = (IlgpuDevice)TestDevices.Get(kind);
        var ops = (IlgpuOperations)device.Operations;
        var random = TestRandom.Create();
        const float alpha = 0.75f;
        var (aRows, aColumns) = form == Form.TransposedA ? (k, m) : (m, k);
        var (bRows, bColumns) = form == Form.TransposedB ? (n, k) : (k, n);
        int lda = aColumns + 2, ldb = bColumns + 1, ldc = n + 3; // padded rows exercise the strides
        // Entries of mean 1: a zero-mean draw makes some of the K-long sums cancel to near zero, and
        // fp32 rounding of ~sqrt(K)-sized partial sums then exceeds 1e-4 relative to the result scale
        // (we saw 2e-4 at K = 255) without any indexing mistake. Mean-1 entries keep the sums well
        // conditioned, so 1e-4 still catches every wrong element (those are off by O(1)).
        float[] a = Shifted(TestRandom.Normal(random, aRows * lda)); // (aRows, lda)
        float[] b = Shifted(TestRandom.Normal(random, bRows * ldb)); // (bRows, ldb)
        float[] start = TestRandom.Normal(random, m * ldc); // (M, ldc)

        double A(int i, int kk) => form == Form.TransposedA ? a[kk * lda + i] : a[i * lda + kk];
        double B(int kk, int j) => form == Form.TransposedB ? b[j * ldb + kk] : b[kk * ldb + j];
        var expected = new double[m * ldc];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < ldc; j++)
            {
                if (j >= n) { expected[i * ldc + j] = start[i * ldc + j]; continue; }
                double sum = 0;
                for (int kk = 0; kk < k; kk++) sum += A(i, kk) * B(kk, j);
                expected[i * ldc + j] = alpha * sum + (accumulate ? start[i * ldc + j] : 0);
            }
        }

        var args = form switch
        {
            Form.TransposedB => MatmulArgs.TransposedB(m, n, k, lda, ldb, ldc, alpha, accumulate),
            Form.Plain => MatmulArgs.Plain(m, n, k, lda, ldb, ldc, alpha, accumulate),
            _ => MatmulArgs.TransposedA(m, n, k, lda, ldb, ldc, alpha, accumulate),
        };
        using var aTensor = device.FromArray<float>(a, a.Length);
        using var bTensor = device.FromArray<float>(b, b.Length);
        using var cTensor = device.FromArray<float>(start, start.Length);
        ops.Matmul(args, ops.View(aTensor, "a").BaseView, ops.View(bTensor, "b").BaseView, ops.View(cTensor, "c").BaseView);
        device.Synchronize();
        TestContext.Out.WriteLine($"group side {ops.MatmulGroupSide}");
        Compare.WorstRelativeError($"{form} {m}x{n}x{k}", expected, cTensor.ToArray());
    }

    private static float[] Shifted(float[] values)
    {
        for (int i = 0; i < values.Length; i++) values[i] += 1f;
        return values;
    }
}

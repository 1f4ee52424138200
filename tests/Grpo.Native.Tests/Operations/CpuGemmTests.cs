using Grpo.Native.Cpu;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>The managed backend's blocked GEMM, every form against a naive double loop.</summary>
public sealed class CpuGemmTests
{
    public enum Form { TransposedB, Plain, TransposedA }

    // Odd sizes around the 6 x 16 register tile, the 96 x 256 task tile, the 256-deep k block, the 8-deep packing
    // transposes and the 2048-long K slices.
    private static readonly (int M, int N, int K)[] Sizes =
    [
        (1, 1, 1), (3, 17, 129), (17, 255, 3), (129, 3, 255), (255, 129, 17), (255, 255, 255), (17, 33, 600), (1, 300, 257),
        (5, 7, 5000), (17, 300, 4099), // small C, long K: the split-K path
        (200, 530, 521), // several tiles both ways and three k blocks: both operands packed once and shared
        // A·Bᵀ of at most NarrowMaxRows rows takes the narrow path: one short row vector, a full one, a pair with a
        // short second vector, a full pair; N off its 8- and 4-column groups; two k blocks, then split-K slices.
        (8, 13, 300), (9, 70, 257), (16, 29, 513), (12, 4, 4099),
    ];

    public static IEnumerable<TestCaseData> Cases() =>
        from form in Enum.GetValues<Form>()
        from size in Sizes
        from accumulate in new[] { false, true }
        select new TestCaseData(form, size.M, size.N, size.K, accumulate);

    // Stored shapes (rows, columns) of A and B for each form; leading dimensions are padded by 3 to test strides.
    private static (int Rows, int Columns) StoredA(Form form, int m, int k) => form == Form.TransposedA ? (k, m) : (m, k);

    private static (int Rows, int Columns) StoredB(Form form, int n, int k) => form == Form.TransposedB ? (n, k) : (k, n);

    private static void Run(Form form, ParallelOptions parallelism, int m, int n, int k, float[] a, int lda, float[] b, int ldb,
        float[] c, int ldc, bool accumulate)
    {
        switch (form)
        {
            case Form.TransposedB: CpuGemm.MultiplyTransposedB(parallelism, m, n, k, a, lda, b, ldb, c, ldc, accumulate); break;
            case Form.Plain: CpuGemm.Multiply(parallelism, m, n, k, a, lda, b, ldb, c, ldc, accumulate); break;
            default: CpuGemm.MultiplyTransposedA(parallelism, m, n, k, a, lda, b, ldb, c, ldc, accumulate); break;
        }
    }

    /// <summary>Padded random operands of one product and its naive double result; shared with the ILGPU matmul tests.</summary>
    internal sealed record Problem(float[] A, int Lda, float[] B, int Ldb, float[] Start, int Ldc, double[] Expected);

    /// <summary>
    /// Draws A, B (rows padded by <paramref name="pad"/> to exercise leading dimensions) and a start C,
    /// and computes expected = alpha · A·B [+ start] in double; C's padding columns must stay untouched.
    /// </summary>
    internal static Problem Draw(Random random, Form form, int m, int n, int k, int pad, double alpha, bool accumulate)
    {
        var (aRows, aColumns) = StoredA(form, m, k);
        var (bRows, bColumns) = StoredB(form, n, k);
        int lda = aColumns + pad, ldb = bColumns + pad, ldc = n + pad;
        // Entries of mean 1: a zero-mean draw makes some of the K-long sums cancel to near zero, and
        // fp32 rounding of ~sqrt(K)-sized partial sums then exceeds 1e-4 relative to the result scale
        // (we saw 2e-4 at K = 255) without any indexing mistake. Mean-1 entries keep the sums well
        // conditioned, so 1e-4 still catches every wrong element (those are off by O(1)).
        float[] a = Shifted(TestRandom.Normal(random, aRows * lda)); // (aRows, lda)
        float[] b = Shifted(TestRandom.Normal(random, bRows * ldb)); // (bRows, ldb)
        float[] start = TestRandom.Normal(random, m * ldc);          // (M, ldc)

        double A(int i, int kk) => form == Form.TransposedA ? a[kk * lda + i] : a[i * lda + kk];
        double B(int kk, int j) => form == Form.TransposedB ? b[j * ldb + kk] : b[kk * ldb + j];
        var expected = new double[m * ldc]; // (M, ldc)
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < ldc; j++)
            {
                if (j >= n) { expected[i * ldc + j] = start[i * ldc + j]; continue; } // padding is never touched
                double sum = 0;
                for (int kk = 0; kk < k; kk++) sum += A(i, kk) * B(kk, j);
                expected[i * ldc + j] = alpha * sum + (accumulate ? start[i * ldc + j] : 0);
            }
        }
        return new Problem(a, lda, b, ldb, start, ldc, expected);
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesNaiveLoopAndIgnoresThreadCount(Form form, int m, int n, int k, bool accumulate)
    {
        var (a, lda, b, ldb, start, ldc, expected) = Draw(TestRandom.Create(), form, m, n, k, 3, 1.0, accumulate);

        float[] Compute(int threads)
        {
            var c = (float[])start.Clone();
            Run(form, new ParallelOptions { MaxDegreeOfParallelism = threads }, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
            return c;
        }
        float[] single = Compute(1);
        Compare.WorstRelativeError($"{form} {m}x{n}x{k}", expected, single);
        foreach (int threads in new[] { -1, 3, 8 })
            Assert.That(Compute(threads), Is.EqualTo(single), $"{threads} threads vs 1 thread");
    }

    /// <summary>
    /// A product of at most <see cref="CpuGemm.NarrowMaxRows"/> rows against B stored (N, K) takes the narrow
    /// path; with more rows the same product is tiled. Each element is summed in one documented order either
    /// way, so the rows of the small product must equal the same rows of a larger one, to the bit.
    /// </summary>
    [Test]
    public void AFewRowsGiveTheBitsOfTheSameRowsInATiledProduct(
        [Values(1, 7, 8, 9, 15, 16)] int m, [Values(13, 70)] int n, [Values(300, 4099)] int k, [Values] bool accumulate)
    {
        const int tiledRows = CpuGemm.NarrowMaxRows + 7;
        var (a, lda, b, ldb, start, ldc, _) = Draw(TestRandom.Create(), Form.TransposedB, tiledRows, n, k, 3, 1.0, accumulate);
        var parallelism = new ParallelOptions();
        var tiled = (float[])start.Clone(); // (tiledRows, ldc)
        CpuGemm.MultiplyTransposedB(parallelism, tiledRows, n, k, a, lda, b, ldb, tiled, ldc, accumulate);
        var narrow = start[..(m * ldc)]; // (m, ldc): the first m rows of A against the same B
        CpuGemm.MultiplyTransposedB(parallelism, m, n, k, a.AsSpan(0, m * lda), lda, b, ldb, narrow, ldc, accumulate);
        Assert.That(narrow, Is.EqualTo(tiled[..(m * ldc)]), $"{m} rows against the same rows of {tiledRows}");
    }

    [Test]
    public void RejectsTooShortSpansAndLeadingDimensions()
    {
        var p = new ParallelOptions();
        var ex = Assert.Throws<ArgumentException>(() => CpuGemm.Multiply(p, 2, 2, 2, new float[3], 2, new float[4], 2, new float[4], 2, false))!;
        Assert.That(ex.ParamName, Is.EqualTo("a"));
        var ld = Assert.Throws<ArgumentOutOfRangeException>(() =>
            CpuGemm.MultiplyTransposedB(p, 2, 2, 3, new float[6], 3, new float[6], 2, new float[4], 2, false))!;
        Assert.That(ld.ParamName, Is.EqualTo("b"));
        var c = Assert.Throws<ArgumentException>(() =>
            CpuGemm.MultiplyTransposedA(p, 2, 2, 2, new float[4], 2, new float[4], 2, new float[3], 2, false))!;
        Assert.That(c.ParamName, Is.EqualTo("c"));
    }

    private static float[] Shifted(float[] values)
    {
        for (int i = 0; i < values.Length; i++) values[i] += 1f;
        return values;
    }
}

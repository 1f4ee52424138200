using Grpo.Kernels;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Devices;

/// <summary>
/// The column-major Sgemm each row-major product becomes on cuBLAS (<see cref="SgemmCall.For"/>): the op and leading
/// dimension of each form, and, through <see cref="EmulatedCuBlas"/>, that every form at every edge shape passes the
/// checks cuBLAS makes and computes the product.
/// </summary>
public sealed class SgemmCallTests
{
    private const int OpN = SgemmCall.OpN, OpT = SgemmCall.OpT;

    /// <summary>Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: a row-major operand is already its transpose for cuBLAS (op N, ld = row stride).</summary>
    [Test]
    public void EachRowMajorFormMapsToTheCuBlasOpAndLeadingDimension()
    {
        // A·Bᵀ (LinearForward): A (M, K) row-major, B (N, K) row-major read as (K, N) by column.
        var tb = SgemmCall.For(MatmulArgs.TransposedB(m: 5, n: 7, k: 3, lda: 3, ldb: 3, ldc: 7, 0.5f, accumulate: false));
        Assert.That(tb, Is.EqualTo(new SgemmCall(OpT, OpN, M: 7, N: 5, K: 3, Alpha: 0.5f, Lda: 3, Ldb: 3, Beta: 0, Ldc: 7)));
        // A·B (dInput): both row-major.
        var plain = SgemmCall.For(MatmulArgs.Plain(m: 5, n: 3, k: 7, lda: 7, ldb: 3, ldc: 3, 1f, accumulate: true));
        Assert.That(plain, Is.EqualTo(new SgemmCall(OpN, OpN, M: 3, N: 5, K: 7, Alpha: 1, Lda: 3, Ldb: 7, Beta: 1, Ldc: 3)));
        // Aᵀ·B (dWeight): A stored (K, M).
        var ta = SgemmCall.For(MatmulArgs.TransposedA(m: 7, n: 3, k: 5, lda: 7, ldb: 3, ldc: 3, 1f, accumulate: true));
        Assert.That(ta, Is.EqualTo(new SgemmCall(OpN, OpT, M: 3, N: 7, K: 5, Alpha: 1, Lda: 3, Ldb: 7, Beta: 1, Ldc: 3)));
    }

    /// <summary>
    /// Every form with dense operands at sizes of 1 and more, through cuBLAS's checks and the emulated Sgemm, against the
    /// row-major product in double. The shapes with a dimension of 1 are the ones a stride-only mapping got wrong: B (N, 1)
    /// stored with both strides 1 read as op N with ld 1, which cuBLAS refuses for N > 1.
    /// </summary>
    [Test]
    public void EveryFormAndEdgeShapePassesCuBlasChecksAndComputesTheProduct()
    {
        var random = TestRandom.Create();
        int cases = 0;
        double worst = 0;
        foreach (string form in new[] { "A·Bᵀ", "A·B", "Aᵀ·B" })
        foreach (int m in new[] { 1, 2, 5 })
        foreach (int n in new[] { 1, 3 })
        foreach (int k in new[] { 1, 4 })
        foreach (bool accumulate in new[] { false, true })
        {
            // A (M, K) and B (K, N) as the product reads them, stored as the form stores them.
            double[,] a = new double[m, k], b = new double[k, n];
            float[] storedA = new float[m * k], storedB = new float[k * n];
            for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
                a[i, p] = storedA[form == "Aᵀ·B" ? p * m + i : i * k + p] = (float)(random.NextDouble() - 0.5);
            for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++)
                b[p, j] = storedB[form == "A·Bᵀ" ? j * k + p : p * n + j] = (float)(random.NextDouble() - 0.5);
            float[] c = TestRandom.Normal(random, m * n);
            float[] before = (float[])c.Clone();
            var args = form switch
            {
                "A·Bᵀ" => MatmulArgs.TransposedB(m, n, k, lda: k, ldb: k, ldc: n, 0.75f, accumulate),
                "A·B" => MatmulArgs.Plain(m, n, k, lda: k, ldb: n, ldc: n, 0.75f, accumulate),
                _ => MatmulArgs.TransposedA(m, n, k, lda: m, ldb: n, ldc: n, 0.75f, accumulate),
            };
            var call = SgemmCall.For(args);
            EmulatedCuBlas.Compute(call, storedB, storedA, c); // BLAS's A is the product's B
            for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double expected = (accumulate ? before[i * n + j] : 0);
                double dot = 0;
                for (int p = 0; p < k; p++) dot += a[i, p] * b[p, j];
                expected += 0.75 * dot;
                // Both sides sum the same float products in double (exactly, at K ≤ 4) and round once: within half an ulp.
                double error = Math.Abs(c[i * n + j] - expected) / Math.Max(1e-30, Math.Abs(expected));
                worst = Math.Max(worst, error);
                Assert.That(c[i * n + j], Is.EqualTo(expected).Within(Math.Pow(2, -24) * Math.Abs(expected)),
                    $"{form} M={m} N={n} K={k} accumulate={accumulate}: C[{i}, {j}] ({call})");
            }
            cases++;
        }
        TestContext.Out.WriteLine($"{cases} products, worst relative error {worst:E2}");
    }

    [Test]
    public void ABiasIsRefusedByName()
    {
        var args = MatmulArgs.TransposedB(m: 2, n: 3, k: 4, lda: 4, ldb: 4, ldc: 3, 1f, accumulate: false).WithBias();
        var error = Assert.Throws<ArgumentException>(() => SgemmCall.For(args))!;
        Assert.That(error.Message, Does.Contain("BiasFromOutput"));
    }

    [Test]
    public void OverlappingRowsAreRefused()
    {
        // A (3, 4) whose rows are 2 apart: not a matrix BLAS can read.
        var args = MatmulArgs.TransposedB(m: 3, n: 2, k: 4, lda: 2, ldb: 4, ldc: 2, 1f, accumulate: false);
        Assert.That(() => SgemmCall.For(args), Throws.ArgumentException.With.Message.Contains("3 x 4"));
    }
}

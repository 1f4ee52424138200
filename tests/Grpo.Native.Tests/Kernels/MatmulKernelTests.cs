using Grpo.Kernels;
using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tests.Operations;
using Grpo.Native.Tests.Support;
using Form = Grpo.Native.Tests.Operations.CpuGemmTests.Form;
using NUnit.Framework;

namespace Grpo.Native.Tests.Kernels;

/// <summary>The tiled shared-memory matmul on the ILGPU CPU simulator (and CUDA when visible), every form.</summary>
public sealed class MatmulKernelTests
{
    public static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds().Where(k => k != DeviceKind.Cpu)
        from form in Enum.GetValues<Form>()
        from size in new[] { (1, 1, 1), (5, 17, 33), (19, 3, 40), (33, 20, 7) }
        from accumulate in new[] { false, true }
        select new TestCaseData(kind, form, size.Item1, size.Item2, size.Item3, accumulate);

    [TestCaseSource(nameof(Cases))]
    public void MatchesNaiveLoop(DeviceKind kind, Form form, int m, int n, int k, bool accumulate) =>
        Check(kind, form, m, n, k, accumulate, splits: 1, chunk: k);

    /// <summary>
    /// Split-K: K cut into slices (the last one short) whose partial products are added in slice order; the first size in
    /// every form also with CUDA's 16 × 16 groups. The bound is the unsplit kernel's: each slice and the sum of slices add
    /// fewer terms in sequence than one K-long loop.
    /// </summary>
    public static IEnumerable<TestCaseData> SplitCases() => TestDevices.PlusCudaShapes(
        from split in new[] { (5, 17, 70, 3, 32), (19, 3, 40, 2, 32), (4, 130, 200, 4, 64) }
        from kind in TestDevices.Kinds().Where(k => k != DeviceKind.Cpu)
        from form in Enum.GetValues<Form>()
        from accumulate in new[] { false, true }
        select new TestCaseData(kind, form, split.Item1, split.Item2, split.Item3, accumulate, split.Item4, split.Item5), count: 6);

    [TestCaseSource(nameof(SplitCases))]
    public void SplitKMatchesNaiveLoop(DeviceKind kind, Form form, int m, int n, int k, bool accumulate, int splits, int chunk) =>
        Check(kind, form, m, n, k, accumulate, splits, chunk);

    /// <summary>Decode's projections on an H100 (132 multiprocessors) are split; training's and the LM head's are not.</summary>
    [Test]
    public void OnlyProductsWithTooFewTilesAreSplit()
    {
        Assert.That(MatmulSplitPlan.For(8, 896, 896, 64, 132), Is.EqualTo((14, 64)), "Qwen2.5-0.5B decode, 8 sequences: 14 tiles");
        Assert.That(MatmulSplitPlan.For(64, 4864, 896, 64, 132), Is.EqualTo((4, 224)), "its MLP, 64 sequences: 76 tiles");
        Assert.That(MatmulSplitPlan.For(8, 151936, 896, 64, 132), Is.EqualTo((1, 896)), "the LM head: 2,374 tiles");
        Assert.That(MatmulSplitPlan.For(1024, 896, 896, 64, 132), Is.EqualTo((1, 896)), "a training micro-batch: 224 tiles");
        Assert.That(MatmulSplitPlan.For(8, 64, 100, 64, 132), Is.EqualTo((1, 100)), "K too short to cut");
        Assert.That(MatmulSplitPlan.For(1, 1, 100000, 64, 132).Splits, Is.EqualTo(MatmulSplitPlan.MaxSplits));
        for (int k = 128; k < 5000; k += 37)
        {
            var (splits, chunk) = MatmulSplitPlan.For(8, 256, k, 64, 132);
            Assert.That(chunk % MatmulKernels.KTile == 0 && (splits - 1) * chunk < k && splits * chunk >= k, $"K = {k}: {splits} x {chunk}");
        }
    }

    /// <summary>(M, N, K, K slices, slice length): one tile, several tiles with ragged edges, and a split K.</summary>
    public static IEnumerable<TestCaseData> BiasCases() => TestDevices.PlusCudaShapes(
        from size in new[] { (1, 1, 1, 1, 1), (37, 70, 33, 1, 33), (5, 130, 200, 4, 64) }
        from kind in TestDevices.Kinds().Where(k => k != DeviceKind.Cpu)
        select new TestCaseData(kind, size.Item1, size.Item2, size.Item3, size.Item4, size.Item5), count: 3);

    /// <summary>
    /// A linear layer's bias added as the kernel writes C (and, split, as the slices are summed) gives exactly the bits of C
    /// filled with the bias and accumulated into (the broadcast it replaces, still what the cuBLAS route does): one rounding
    /// of bias + alpha · product either way. Rows of C past its N columns (Ldc > N) must stay untouched.
    /// </summary>
    [TestCaseSource(nameof(BiasCases))]
    public void ABiasAddedAsCIsWrittenGivesTheBitsOfABroadcastThenAccumulate(DeviceKind kind, int m, int n, int k, int splits, int chunk)
    {
        var device = (IlgpuDevice)TestDevices.Get(kind);
        var ops = (IlgpuOperations)device.Operations;
        var random = TestRandom.Create();
        const float alpha = 0.75f;
        int ldc = n + 3;
        float[] a = TestRandom.Normal(random, m * k), b = TestRandom.Normal(random, n * k), bias = TestRandom.Normal(random, n);
        float[] start = TestRandom.Normal(random, m * ldc); // (M, Ldc): the padding columns must keep these
        var filled = (float[])start.Clone();
        for (int i = 0; i < m; i++) bias.CopyTo(filled, i * ldc);
        var product = MatmulArgs.TransposedB(m, n, k, k, k, ldc, alpha, accumulate: false);
        float[] Run(MatmulArgs args, float[] initial)
        {
            using var aTensor = device.FromArray<float>(a, a.Length);
            using var bTensor = device.FromArray<float>(b, b.Length);
            using var biasTensor = device.FromArray<float>(bias, n);
            using var cTensor = device.FromArray<float>(initial, initial.Length);
            ops.KernelMatmul(args, ops.View(aTensor, "a").BaseView, ops.View(bTensor, "b").BaseView, ops.View(cTensor, "c").BaseView, splits,
                chunk, ops.View(biasTensor, "bias").BaseView);
            device.Synchronize();
            return cTensor.ToArray();
        }
        float[] epilogue = Run(product.WithBias(), start), broadcast = Run(product.BiasFromOutput(), filled);
        Assert.That(epilogue, Is.EqualTo(broadcast));
        for (int i = 0; i < m; i++)
            Assert.That(epilogue.AsSpan(i * ldc + n, ldc - n).ToArray(), Is.EqualTo(start.AsSpan(i * ldc + n, ldc - n).ToArray()), $"row {i}'s padding");
    }

    private static void Check(DeviceKind kind, Form form, int m, int n, int k, bool accumulate, int splits, int chunk)
    {
        var device = (IlgpuDevice)TestDevices.Get(kind);
        var ops = (IlgpuOperations)device.Operations;
        const float alpha = 0.75f;
        var (a, lda, b, ldb, start, ldc, expected) = CpuGemmTests.Draw(TestRandom.Create(), form, m, n, k, 2, alpha, accumulate);

        var args = form switch
        {
            Form.TransposedB => MatmulArgs.TransposedB(m, n, k, lda, ldb, ldc, alpha, accumulate),
            Form.Plain => MatmulArgs.Plain(m, n, k, lda, ldb, ldc, alpha, accumulate),
            _ => MatmulArgs.TransposedA(m, n, k, lda, ldb, ldc, alpha, accumulate),
        };
        using var aTensor = device.FromArray<float>(a, a.Length);
        using var bTensor = device.FromArray<float>(b, b.Length);
        using var cTensor = device.FromArray<float>(start, start.Length);
        ops.KernelMatmul(args, ops.View(aTensor, "a").BaseView, ops.View(bTensor, "b").BaseView, ops.View(cTensor, "c").BaseView, splits, chunk);
        device.Synchronize();
        TestContext.Out.WriteLine($"group side {ops.MatmulGroupSide}, {splits} K slice(s) of {chunk}");
        Compare.WorstRelativeError($"{form} {m}x{n}x{k}", expected, cTensor.ToArray());
    }
}

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
    public void MatchesNaiveLoop(DeviceKind kind, Form form, int m, int n, int k, bool accumulate)
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
        ops.Matmul(args, ops.View(aTensor, "a").BaseView, ops.View(bTensor, "b").BaseView, ops.View(cTensor, "c").BaseView);
        device.Synchronize();
        TestContext.Out.WriteLine($"group side {ops.MatmulGroupSide}");
        Compare.WorstRelativeError($"{form} {m}x{n}x{k}", expected, cTensor.ToArray());
    }
}

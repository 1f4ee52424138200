using Grpo.Cli;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Devices;

/// <summary>
/// The path every GEMM takes to cuBLAS, run on the simulator with cuBLAS emulated (<see cref="EmulatedCuBlas"/>): the whole
/// selfcheck, which is what the device check runs first on a GPU, goes through it and must pass. Every linear layer forward
/// and backward, the bias broadcast with β = 1, the LM head's chunked products and each family's model forward, backward
/// and decode then reach Sgemm with arguments cuBLAS accepts and views it may touch.
/// </summary>
[NonParallelizable]
public sealed class CuBlasPathTests
{
    [Test]
    public void SelfcheckPassesWithEveryGemmThroughTheCuBlasPath()
    {
        using var device = IlgpuDevice.CreateCpuSimulator();
        var blas = new EmulatedCuBlas(device.Accelerator);
        device.UseGemmLibrary(blas);
        var before = device.Stats.LaunchesByKernel();
        // GPT-2's linear layers have biases (broadcast into C, then β = 1); Qwen2's q/k/v bias is added in the split.
        var results = SelfCheck.Run(device, seed: TestRandom.Create().Next(), modelFamilies: ["gpt2", "qwen2"]);
        var launches = KernelLaunches.Between(before, device.Stats.LaunchesByKernel());
        foreach (var r in results)
            TestContext.Out.WriteLine($"{(r.Skipped ? "skip" : r.Passed ? "ok  " : "FAIL")} {r.Operation,-50} worst {r.WorstError:E2} (limit {r.Tolerance:E0}) {r.Detail}");
        TestContext.Out.WriteLine($"{blas.Calls} Sgemm calls; launches: {launches.Describe()}");
        Assert.That(results.Where(r => !r.Passed).Select(r => r.Operation), Is.Empty, "checks that failed through the cuBLAS path");
        Assert.That(blas.Calls, Is.GreaterThan(100), "the GEMMs went to the emulated cuBLAS");
        Assert.That(launches.Of("BroadcastBias"), Is.GreaterThan(1), "biased products broadcast their bias for β = 1");
        Assert.That(launches.Of("Matmul"), Is.Zero, "no GEMM took the ILGPU kernel");
        Assert.That(device.GemmPath, Does.Contain("emulated"));
    }

    [Test]
    public void ASecondGemmLibraryIsRefused()
    {
        using var device = IlgpuDevice.CreateCpuSimulator();
        device.UseGemmLibrary(new EmulatedCuBlas(device.Accelerator));
        Assert.That(() => device.UseGemmLibrary(new EmulatedCuBlas(device.Accelerator)), Throws.InvalidOperationException);
    }
}

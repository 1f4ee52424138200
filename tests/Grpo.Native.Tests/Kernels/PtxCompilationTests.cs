using System.Reflection;
using System.Text.RegularExpressions;
using Grpo.Kernels;
using Grpo.Native.Ilgpu;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NUnit.Framework;

namespace Grpo.Native.Tests.Kernels;

/// <summary>
/// Compiles every kernel in Grpo.Kernels to PTX for current NVIDIA architectures, with the same
/// context settings as IlgpuDevice.CreateCuda, without a GPU. The CPU simulator accepts code that
/// CUDA does not (a missing intrinsic, an unsupported construct); this catches it on every machine.
/// Convention: every public static void method in Grpo.Kernels is a kernel entry point;
/// it is implicitly grouped when its first parameter is an index (Index1D/2D/3D).
/// </summary>
public sealed class PtxCompilationTests
{
    private static IEnumerable<MethodInfo> KernelEntryPoints() =>
        typeof(GroupReduce).Assembly.GetExportedTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(m => m.ReturnType == typeof(void) && !m.IsSpecialName)
            .OrderBy(m => m.DeclaringType!.Name + "." + m.Name);

    private static IEnumerable<TestCaseData> Cases() =>
        KernelEntryPoints().SelectMany(m => new[] { CudaArchitecture.SM_80, CudaArchitecture.SM_90 }
            .Select(arch => new TestCaseData(m, arch).SetName($"{m.DeclaringType!.Name}.{m.Name} on {arch}")));

    /// <summary>CUDA's limit on a block's statically declared shared memory, the same on SM_80 and SM_90.</summary>
    private const int StaticSharedLimitBytes = 48 * 1024;

    /// <summary>The bytes of every <c>.shared</c> array the PTX declares (ILGPU declares each SharedMemory.Allocate as one).</summary>
    private static int StaticSharedBytes(string ptx) =>
        Regex.Matches(ptx, @"^\s*\.shared\s[^\[\n]*\[(\d+)\]", RegexOptions.Multiline).Sum(m => int.Parse(m.Groups[1].Value));

    [Test]
    public void ThereAreKernelsToCompile() => Assert.That(KernelEntryPoints().Count(), Is.GreaterThanOrEqualTo(8));

    [TestCaseSource(nameof(Cases))]
    public void CompilesToPtx(MethodInfo kernel, CudaArchitecture architecture)
    {
        using var context = Context.Create(builder => IlgpuDevice.ConfigureForCuda(builder));
        using var backend = new PTXBackend(context, architecture, CudaInstructionSet.ISA_80, nvvmAPI: null!);
        bool implicitlyGrouped = kernel.GetParameters().FirstOrDefault()?.ParameterType is { } first
                                 && (first == typeof(Index1D) || first == typeof(Index2D) || first == typeof(Index3D));
        var entry = implicitlyGrouped
            ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel)
            : EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
        var compiled = (PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty);
        int sharedBytes = StaticSharedBytes(compiled.PTXAssembly);
        TestContext.Out.WriteLine($"{kernel.DeclaringType!.Name}.{kernel.Name}: {compiled.PTXAssembly.Length} characters of PTX for {architecture}, " +
                                  $"{sharedBytes} bytes of static shared memory");
        Assert.That(compiled.PTXAssembly, Does.Contain(".entry"));
        // Past 48 KiB of static shared memory a block fails to launch on every architecture (more needs dynamic shared memory
        // and an opt-in); the simulator has no such limit, so this is the only place it shows before a GPU.
        Assert.That(sharedBytes, Is.LessThanOrEqualTo(StaticSharedLimitBytes), "static shared memory of one block");
        // XMath.Exp/Log become these approximations on CUDA (see KernelMath); kernels use KernelMath instead.
        Assert.That(compiled.PTXAssembly, Does.Not.Contain("ex2.approx").And.Not.Contain("lg2.approx"),
            "an approximate exp or log: use KernelMath.Exp/Log, which the simulator and the GPU compute alike");
    }
}

using Grpo.Native.Devices;
using NUnit.Framework;

namespace Grpo.Native.Tests.Devices;

/// <summary>The CUDA options (cuBLAS, TF32): explicit values, the environment's, and the combinations refused before any work.</summary>
[NonParallelizable] // sets process environment variables
public sealed class CudaOptionsTests
{
    [Test]
    public void ExplicitValuesWinAndUnsetOnesComeFromTheEnvironment() => WithEnvironment(() =>
    {
        Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, "0");
        Environment.SetEnvironmentVariable(CudaOptions.Tf32Variable, null);
        Assert.That(new CudaOptions().Resolve(), Is.EqualTo((false, false)), "unset: the environment's");
        Assert.That(new CudaOptions { UseCuBlas = true }.Resolve(), Is.EqualTo((true, false)), "explicit: its own");
        Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, "1");
        Assert.That(new CudaOptions { Tf32 = true }.Resolve(), Is.EqualTo((true, true)), "TF32 with the environment's cuBLAS");
    });

    [Test]
    public void NothingSetMeansCuBlasInFp32() => WithEnvironment(() =>
    {
        Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, null);
        Environment.SetEnvironmentVariable(CudaOptions.Tf32Variable, null);
        Assert.That(new CudaOptions().Resolve(), Is.EqualTo((true, false)));
        Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, "");
        Assert.That(new CudaOptions().Resolve(), Is.EqualTo((true, false)), "an empty variable is unset");
        // The default asks for nothing CUDA-only, so the options may go with any device.
        using var device = Device.Create(DeviceKind.Cpu, new CudaOptions());
        Assert.That(device.Kind, Is.EqualTo(DeviceKind.Cpu));
    });

    [Test]
    public void AVariableOtherThanZeroOrOneIsRefusedByName() => WithEnvironment(() =>
    {
        Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, "yes");
        var error = Assert.Throws<ArgumentException>(() => new CudaOptions().Resolve())!;
        Assert.That(error.ParamName, Is.EqualTo(CudaOptions.UseCuBlasVariable));
        Assert.That(error.Message, Does.Contain("'yes'").And.Contain("use 1 or 0"));
    });

    [Test]
    public void Tf32WithCuBlasTurnedOffInTheEnvironmentSaysWhichVariable() => WithEnvironment(() =>
    {
        Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, "0");
        Environment.SetEnvironmentVariable(CudaOptions.Tf32Variable, "1");
        var error = Assert.Throws<ArgumentException>(() => new CudaOptions().Resolve())!;
        Assert.That(error.Message, Does.Contain("GRPO_TF32=1").And.Contain("unset GRPO_CUBLAS=0"));
    });

    /// <summary>Runs <paramref name="body"/> and puts both variables back as they were.</summary>
    private static void WithEnvironment(Action body)
    {
        string? cuBlas = Environment.GetEnvironmentVariable(CudaOptions.UseCuBlasVariable);
        string? tf32 = Environment.GetEnvironmentVariable(CudaOptions.Tf32Variable);
        try
        {
            body();
        }
        finally
        {
            Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, cuBlas);
            Environment.SetEnvironmentVariable(CudaOptions.Tf32Variable, tf32);
        }
    }

    [Test]
    public void Tf32WithoutCuBlasIsRefusedByName()
    {
        var error = Assert.Throws<ArgumentException>(() => new CudaOptions { UseCuBlas = false, Tf32 = true }.Resolve())!;
        Assert.That(error.ParamName, Is.EqualTo(nameof(CudaOptions.Tf32)));
        Assert.That(error.Message, Does.Contain("set UseCuBlas = true"));
    }

    [Test]
    public void CudaOptionsOnADeviceWithoutAGpuAreRefusedNotIgnored()
    {
        var error = Assert.Throws<ArgumentException>(() => Device.Create(DeviceKind.Cpu, new CudaOptions { UseCuBlas = true }))!;
        Assert.That(error.ParamName, Is.EqualTo("cuda"));
        Assert.That(error.Message, Does.Contain("only the cuda device"));
        using var device = Device.Create(DeviceKind.Cpu, new CudaOptions { UseCuBlas = false }); // asks for nothing CUDA-only
        Assert.That(device.Kind, Is.EqualTo(DeviceKind.Cpu));
    }
}

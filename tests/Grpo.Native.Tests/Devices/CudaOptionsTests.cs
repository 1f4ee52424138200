using Grpo.Native.Devices;
using NUnit.Framework;

namespace Grpo.Native.Tests.Devices;

/// <summary>The CUDA options (cuBLAS, TF32): explicit values, the environment's, and the combinations refused before any work.</summary>
public sealed class CudaOptionsTests
{
    [Test]
    public void ExplicitValuesWinAndUnsetOnesComeFromTheEnvironment()
    {
        string? cuBlas = Environment.GetEnvironmentVariable(CudaOptions.UseCuBlasVariable);
        string? tf32 = Environment.GetEnvironmentVariable(CudaOptions.Tf32Variable);
        try
        {
            Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, "1");
            Environment.SetEnvironmentVariable(CudaOptions.Tf32Variable, null);
            Assert.That(new CudaOptions().Resolve(), Is.EqualTo((true, false)), "unset: the environment's");
            Assert.That(new CudaOptions { UseCuBlas = false }.Resolve(), Is.EqualTo((false, false)), "explicit: its own");
            Assert.That(new CudaOptions { Tf32 = true }.Resolve(), Is.EqualTo((true, true)), "TF32 with the environment's cuBLAS");
            Environment.SetEnvironmentVariable(CudaOptions.UseCuBlasVariable, null);
            Assert.That(new CudaOptions().Resolve(), Is.EqualTo((false, false)), "nothing set: fp32 through the ILGPU kernel");
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
        Assert.That(error.Message, Does.Contain("UseCuBlas = true"));
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

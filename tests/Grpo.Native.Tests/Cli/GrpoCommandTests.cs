using Grpo.Cli;
using Grpo.Native.Devices;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

public sealed class GrpoCommandTests
{
    private static (int Exit, string Output, string Error) Run(params string[] args) => CliRun.Grpo(args);

    [Test]
    public void HelpListsTheCommands()
    {
        var (exit, output, _) = Run("--help");
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success));
        Assert.That(output, Does.Contain("selfcheck"));
    }

    [Test]
    public void SelfcheckHelpDescribesItsOptions()
    {
        var (exit, output, _) = Run("selfcheck", "--help");
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success));
        Assert.That(output, Does.Contain("--device").And.Contain("--seed"));
    }

    [TestCase("cpu")]
    [TestCase("ilgpu-cpu")]
    public void SelfcheckPassesOnTheLocalBackends(string device)
    {
        var (exit, output, error) = Run("selfcheck", "--device", device);
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
        Assert.That(output, Does.Contain("checks passed").And.Not.Contain("FAIL"));
        Assert.That(output, Does.Contain("sample").And.Contain("advantages").And.Contain("gather").And.Contain("fused loss"));
        // Whole models against the managed backend: on every device but the managed backend itself.
        Assert.That(output.Contains("model qwen2"), Is.EqualTo(device != "cpu"), output);
        // The GEMM timing table, at shapes divided by 64 on the simulator.
        Assert.That(output.Contains("GEMM timings") && output.Contains("qwen2.5-0.5b decode q"), Is.EqualTo(device != "cpu"), output);
    }

    [Test]
    public void AFailedComparisonIsReported()
    {
        // fp32 never equals the double reference exactly, so a zero tolerance must fail checks.
        var results = SelfCheck.Run(TestDevices.Get(DeviceKind.Cpu), seed: 5, tolerance: 0, gradientTolerance: 0);
        Assert.That(results.Count(r => !r.Passed), Is.GreaterThan(0));
    }

    [Test]
    public void UnknownDeviceExitsWithTwoAndNamesTheOption()
    {
        var (exit, _, error) = Run("selfcheck", "--device", "tpu");
        Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
        Assert.That(error, Does.Contain("--device").And.Contain("auto, cpu, cuda or ilgpu-cpu"));
        Assert.That(error, Does.Not.Contain("   at ").And.Not.Contain("(Parameter"), "no stack trace, no .NET parameter suffix");
    }

    [TestCase("selfcheck", "--bogus")]
    [TestCase("frobnicate")]
    [TestCase("selfcheck", "--seed", "many")]
    public void BadArgumentsExitWithTwo(params string[] args)
    {
        var (exit, _, error) = Run(args);
        Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
        Assert.That(error, Does.Contain("grpo --help"));
    }
}

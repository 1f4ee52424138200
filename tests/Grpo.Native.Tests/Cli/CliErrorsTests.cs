using Grpo.Cli;
using Grpo.Native.Devices;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary>What the command line makes of an error a user can fix: one line naming the command, exit code 2.</summary>
public sealed class CliErrorsTests
{
    [Test]
    public void RunningOutOfDeviceMemoryIsOneLineAndExitCodeTwo()
    {
        var error = new StringWriter();
        int exit = CliErrors.Guarded(error, "train", () => throw new DeviceOutOfMemoryException("CUDA device 0", 3L << 30, 1L << 30));
        TestContext.Out.WriteLine(error);
        Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
        Assert.That(error.ToString().TrimEnd().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
        Assert.That(error.ToString(), Does.StartWith("train: Allocating 3072.0 MiB on CUDA device 0 failed: about 1024.0 MiB is free.")
            .And.Contain("Lower the micro-batch size"));
    }

    [Test]
    public void ADeviceFaultIsNotMistakenForAUserError() =>
        Assert.That(CliErrors.IsUserError(new InvalidOperationException("a kernel fault")), Is.False);
}

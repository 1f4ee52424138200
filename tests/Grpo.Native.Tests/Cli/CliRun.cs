using Grpo.Cli;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary>Runs the <c>grpo</c> command in-process as a user would, capturing what it prints.</summary>
public static class CliRun
{
    /// <summary>The exit code and the standard output and error of <c>grpo ARGS</c> (also printed to the test log).</summary>
    public static (int Exit, string Output, string Error) Grpo(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = GrpoCommand.Run(args, output, error);
        TestContext.Out.WriteLine($"grpo {string.Join(' ', args)} -> {exit}\n{output}{error}");
        return (exit, output.ToString(), error.ToString());
    }
}

using System.CommandLine;
using Grpo.Native.Devices;

namespace Grpo.Cli;

/// <summary>
/// The <c>grpo</c> command line. Exit codes: 0 success, 1 a check failed, 2 bad arguments
/// (a message naming the argument, no stack trace).
/// </summary>
internal static class GrpoCommand
{
    public const int Success = 0, Failure = 1, BadArguments = 2;

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var device = new Option<string>("--device")
        {
            Description = "auto, cpu, cuda or ilgpu-cpu (default: GRPO_DEVICE, else auto)",
        };
        var seed = new Option<int>("--seed")
        {
            Description = "seed of the random inputs",
            DefaultValueFactory = _ => 1234,
        };
        var selfcheck = new Command("selfcheck",
            "Runs every GRPO operation on the chosen device against the double-precision CPU references, " +
            "prints each worst relative error, and exits 1 on any failure. This is how to check a new GPU.");
        selfcheck.Options.Add(device);
        selfcheck.Options.Add(seed);
        selfcheck.SetAction(parse => RunSelfCheck(parse.GetValue(device), parse.GetValue(seed), output, error));

        var root = new RootCommand("grpo: GRPO training for transformer policies from .NET (Grpo.Native).");
        root.Subcommands.Add(TrainCommand.Create(output, error));
        root.Subcommands.Add(SampleCommand.Create(output, error));
        root.Subcommands.Add(EvalCommand.Create(output, error));
        root.Subcommands.Add(GradCommand.Create(output, error));
        root.Subcommands.Add(TokenizeCommand.Create(output, error));
        root.Subcommands.Add(BenchCommand.Create(output, error));
        root.Subcommands.Add(InitModelCommand.Create(output, error));
        root.Subcommands.Add(selfcheck);

        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var parseError in parsed.Errors) error.WriteLine(parseError.Message);
            error.WriteLine("Run 'grpo --help' for usage.");
            return BadArguments;
        }
        return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    private static int RunSelfCheck(string? deviceName, int seed, TextWriter output, TextWriter error)
    {
        Device device;
        try
        {
            device = deviceName is null ? Device.FromEnvironment() : Device.Create(deviceName);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            // ArgumentException appends " (Parameter 'name')"; the CLI names its own option instead.
            string message = ex is ArgumentException { ParamName: { } name } argument
                ? argument.Message.Replace($" (Parameter '{name}')", "") : ex.Message;
            error.WriteLine($"--device: {message}");
            return BadArguments;
        }
        using (device)
        {
            output.WriteLine($"selfcheck on {device} (seed {seed})");
            if (device is Grpo.Native.Ilgpu.IlgpuDevice ilgpu)
            {
                output.WriteLine($"GEMMs: {ilgpu.GemmPath}");
                if (ilgpu.UsesTf32)
                    output.WriteLine("  TF32 is on: the checks below hold fp32 limits, which GEMMs in TF32 exceed by design (about 1e-3 of " +
                                     "Σ|a·b|, see CudaOptions); run selfcheck without GRPO_TF32 to verify the kernels.");
            }
            var results = SelfCheck.Run(device, seed);
            foreach (var r in results)
                output.WriteLine($"  {(r.Skipped ? "skip" : r.Passed ? "ok  " : "FAIL")} {r.Operation,-50} worst {r.WorstError,9:E2} (limit {r.Tolerance:E0})  {r.Detail}");
            int failed = results.Count(r => !r.Passed);
            if (device.Kind != DeviceKind.Cpu)
            {
                output.WriteLine($"GEMM timings on {device} (forward y = x·Wᵀ; backward dX and dW):");
                output.WriteLine($"  {"shape",-40} {"M",6} {"N",7} {"K",5} {"fwd ms",9} {"TFLOP/s",8} {"bwd ms",9} {"TFLOP/s",8}");
                foreach (var t in SelfCheck.GemmTimings(device))
                    output.WriteLine($"  {t.Shape,-40} {t.M,6} {t.N,7} {t.K,5} {t.ForwardSeconds * 1e3,9:F3} {t.ForwardTflops,8:F2} {t.BackwardSeconds * 1e3,9:F3} {t.BackwardTflops,8:F2}");
            }
            output.WriteLine(failed == 0 ? $"all {results.Count} checks passed" : $"{failed} of {results.Count} checks FAILED");
            return failed == 0 ? Success : Failure;
        }
    }
}

using System.Diagnostics;
using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace Grpo.Native.Tests.Repository;

/// <summary>
/// scripts/device-check.sh is what a lent GPU machine runs, in a window of minutes, so it must not lose results: it is
/// run here against a stand-in `grpo` (a shell script that reports its arguments and the CUDA settings it was given)
/// that succeeds, fails its selfcheck, or hangs.
/// </summary>
[NonParallelizable, Platform("Linux"), SupportedOSPlatform("linux")]
public sealed class DeviceCheckScriptTests
{
    private string _work = "";

    [SetUp]
    // Under the test's own folder, not /tmp: the stand-in is executed, and /tmp may be mounted noexec.
    public void CreateFolder() =>
        _work = Directory.CreateDirectory(Path.Combine(TestContext.CurrentContext.WorkDirectory, "device-check-" + Guid.NewGuid().ToString("N")[..8])).FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_work, recursive: true);

    [Test]
    public void EveryCommandRunsAndReportsItsExitCode()
    {
        var (summary, elapsed) = RunCheck(selfcheck: "exit 0");
        string[] ran = ["selfcheck", "bench-gpt2-small", "bench-qwen-0.5b", "train-reverse", "selfcheck-ilgpu-gemm"];
        foreach (string name in ran) Assert.That(summary, Does.Contain($"\n{name} rc=0 ").Or.StartWith($"{name} rc=0 "), name);
        Assert.That(summary, Does.Not.Contain("selfcheck-blocking"), "the blocking rerun is only for a failed selfcheck");
        Assert.That(summary, Does.Contain("nccl all-reduce: skip"), "the NCCL line of the selfcheck is quoted");
        // cuBLAS for the first selfcheck and the benches, the ILGPU kernel for the second selfcheck.
        Assert.That(Output("selfcheck"), Does.Contain("GRPO_CUBLAS=1"));
        Assert.That(Output("bench-qwen-0.5b"), Does.Contain("GRPO_CUBLAS=1").And.Contain("--vocab 151936"));
        Assert.That(Output("selfcheck-ilgpu-gemm"), Does.Contain("GRPO_CUBLAS=0 "));
        TestContext.Out.WriteLine($"{elapsed.TotalSeconds:F1} s:\n{summary}");
    }

    [Test]
    public void AFailedSelfcheckIsRerunWithEveryLaunchSynchronous()
    {
        var (summary, _) = RunCheck(selfcheck: "exit 1");
        Assert.That(summary, Does.StartWith("selfcheck rc=1 "));
        Assert.That(summary, Does.Contain("\nselfcheck-blocking rc=1 "));
        Assert.That(Output("selfcheck-blocking"), Does.Contain("CUDA_LAUNCH_BLOCKING=1"));
        Assert.That(Output("selfcheck"), Does.Contain("CUDA_LAUNCH_BLOCKING= "));
        Assert.That(summary, Does.Contain("\nbench-gpt2-small rc=0 "), "the check goes on after a failure");
        TestContext.Out.WriteLine(summary);
    }

    [Test]
    public void AHangingCommandIsStoppedAtTheBudgetAndTheRestAreSkipped()
    {
        // A 6 s budget: the hanging selfcheck is stopped when it is spent, and no command starts with under 2 s left.
        var (summary, elapsed) = RunCheck(selfcheck: "exec sleep 600", budgetSeconds: 6, minStartSeconds: 2);
        TestContext.Out.WriteLine($"{elapsed.TotalSeconds:F1} s:\n{summary}");
        // The limit is what was left of the budget when the selfcheck started (whole seconds: 6, or less on a slow start).
        var timedOut = Regex.Match(summary, @"^selfcheck rc=124 seconds=[0-9.]+ \(timed out after (\d+) s\)");
        Assert.That(timedOut.Success, summary);
        Assert.That(int.Parse(timedOut.Groups[1].Value), Is.InRange(2, 6));
        foreach (string name in new[] { "selfcheck-blocking", "bench-gpt2-small", "bench-qwen-0.5b", "train-reverse", "selfcheck-ilgpu-gemm" })
        {
            var skipped = Regex.Match(summary, $@"\n{Regex.Escape(name)} skipped: (-?\d+) s of the 6 s budget left");
            Assert.That(skipped.Success, $"{name} was not skipped");
            Assert.That(int.Parse(skipped.Groups[1].Value), Is.LessThan(2), $"{name} was skipped with time to start");
        }
        // The budget, plus timeout's 10 s grace for a command that ignores SIGTERM (sleep does not), plus start-up.
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(6 + 10 + 20)));
    }

    [Test]
    public void WithPyTorchTheTwinsRunAndTheRatiosAreSummarised()
    {
        // A stand-in python3 that has "PyTorch with CUDA" and prints the twin's table: a 310 ms step, 200 ms of rollout.
        string python = Path.Combine(_work, "python3");
        File.WriteAllText(python,
            "#!/usr/bin/env bash\n" +
            "[ \"$1\" = -c ] && exit 0\n" +
            "echo \"twin $*\"\n" +
            "printf '  rollout %10.1f ms\\n  policy_forward_backward %10.1f ms\\n  step %10.1f ms\\n' 200 100 310\n");
        File.SetUnixFileMode(python, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var (summary, _) = RunCheck(selfcheck: "exit 0", python: python);
        TestContext.Out.WriteLine(summary);
        Assert.That(summary, Does.Contain("\ntwin-gpt2-small rc=0 ").And.Contain("\ntwin-qwen-0.5b rc=0 "));
        Assert.That(Output("twin-qwen-0.5b"), Does.Contain("--device cuda --family qwen2 --vocab 151936"));
        // The stand-in bench's step took 0.105 s and its rollout 0.05 s (see RunCheck).
        Assert.That(summary, Does.Contain("ratio gpt2-small step: 0.1050 s against PyTorch's 0.3100 s = 0.34"));
        Assert.That(summary, Does.Contain("ratio qwen-0.5b rollout: 0.0500 s against PyTorch's 0.2000 s = 0.25"));
        Assert.That(summary, Does.Not.Contain("ratio gpt2-small optimizer"), "a phase the twin did not print has no ratio");
    }

    private string Output(string name) => File.ReadAllText(Path.Combine(_work, "results", name + ".out"));

    /// <summary>
    /// Runs the script against a stand-in grpo whose selfcheck runs <paramref name="selfcheck"/> after printing its
    /// line; every other command prints its line and succeeds. Returns summary.txt and the script's run time.
    /// </summary>
    private (string Summary, TimeSpan Elapsed) RunCheck(string selfcheck, int budgetSeconds = 120, int minStartSeconds = 20,
        string python = "no-python-here")
    {
        string app = Path.Combine(_work, "app"), grpo = Path.Combine(app, "grpo"), results = Path.Combine(_work, "results");
        Directory.CreateDirectory(app);
        File.WriteAllText(grpo,
            "#!/usr/bin/env bash\n" +
            "echo \"$* GRPO_CUBLAS=${GRPO_CUBLAS:-} CUDA_LAUNCH_BLOCKING=${CUDA_LAUNCH_BLOCKING:-} \"\n" +
            "if [ \"$1\" = bench ]; then echo '{\"rollout_s\":0.05,\"policy_forward_backward_s\":0.05,\"optimizer_s\":0.005,\"step_s\":0.105}'; fi\n" +
            $"if [ \"$1\" = selfcheck ]; then echo 'nccl all-reduce: skip (stand-in)'; {selfcheck}; fi\n");
        File.SetUnixFileMode(grpo, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(TestContext.CurrentContext.TestDirectory, "scripts", "device-check.sh"));
        start.ArgumentList.Add(results);
        start.Environment["GRPO_APP"] = app;
        start.Environment["BUDGET_S"] = budgetSeconds.ToString();
        start.Environment["MIN_START_S"] = minStartSeconds.ToString();
        start.Environment["PYTHON"] = python; // by default one that does not exist: no PyTorch, the twins are skipped
        start.Environment.Remove("GRPO_CUBLAS");
        start.Environment.Remove("CUDA_LAUNCH_BLOCKING");
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.That(process.WaitForExit(TimeSpan.FromSeconds(120)), "the device check did not finish");
        Assert.That(process.ExitCode, Is.Zero, $"device-check.sh exited {process.ExitCode}: {stdout}\n{stderr.Result}");
        return (File.ReadAllText(Path.Combine(results, "summary.txt")), clock.Elapsed);
    }
}

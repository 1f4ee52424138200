using System.Diagnostics;
using Grpo.Cli;
using Grpo.Native.Distributed;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary>
/// <c>mpirun -np 2 grpo train</c> on this machine (loopback, two processes) against <c>grpo train</c>: the same metrics and
/// the same final checkpoint, bit for bit. Needs Open MPI (scripts/test.sh installs it); without it these tests fail.
/// </summary>
public sealed class MpiTrainTests
{
    /// <summary>Metrics that measure time, or the run's shape, rather than the training.</summary>
    private static readonly HashSet<string> NotCompared = ["step_time", "tokens/s", "world_size", "time/allreduce"];

    private static string TempFolder() => Path.Combine(Path.GetTempPath(), "grpo-mpi-" + Guid.NewGuid().ToString("N"));

    /// <summary>
    /// Two ranks, and four: with the default 2 micro-batches per step, two of the four ranks own none and add exact zeros
    /// into the tree (<see cref="Grpo.Native.Distributed.FixedOrderSum.RangeOfRank"/>), and the result is still one process's.
    /// </summary>
    [TestCase(2)]
    [TestCase(4)]
    public void RanksGiveTheOneProcessRunsMetricsAndCheckpointBitForBit(int ranks)
    {
        string one = TempFolder(), two = TempFolder(), resumed = TempFolder();
        try
        {
            // The default run's options, cut to two steps, with a checkpoint after each.
            string[] args = ["train", "--steps", "2", "--checkpoint-every", "1", "--device", "cpu"];
            var (exit, _, error) = CliRun.Grpo([.. args, "--output", one]);
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            var (mpiExit, mpiOutput) = MpiRun(ranks, [.. args, "--output", two]);
            Assert.That(mpiExit, Is.EqualTo(0), mpiOutput);

            AssertSameRun(one, two, worldSize: ranks);

            // --resume with another rank count: the K-rank run's step-1 checkpoint, resumed by one process.
            CopyFolder(two, resumed);
            Directory.Delete(GrpoCheckpoint.FolderFor(resumed, 2), recursive: true);
            (exit, _, error) = CliRun.Grpo("train", "--resume", "--output", resumed, "--device", "cpu");
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            AssertSameRun(one, resumed, worldSize: null);
        }
        finally
        {
            foreach (string folder in new[] { one, two, resumed })
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void RanksStartedWithDifferentArgumentsAreRefused()
    {
        string folder = TempFolder();
        try
        {
            // Two programs in one job (mpirun's A : B): the ranks' random initial models differ by --seed.
            string[] rank0 = ["train", "--steps", "1", "--device", "cpu", "--output", folder, "--seed", "1"];
            string[] rank1 = [.. rank0[..^1], "2"];
            var (exit, output) = MpiRun(1, rank0, rank1);
            Assert.That(exit, Is.Not.EqualTo(0), output);
            Assert.That(output, Does.Contain("differ from rank 0"));
            Assert.That(Directory.GetDirectories(folder, "checkpoint-*"), Is.Empty, "nothing trained, nothing saved");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void ARankThatHangsStopsTheJobWithinTheRankTimeoutNamingIt()
    {
        string folder = TempFolder(), hanging = Path.Combine(folder, "model");
        try
        {
            // Rank 1 hangs before its first step: its model folder's tokenizer.json is a named pipe nobody writes to.
            Directory.CreateDirectory(hanging);
            using (var mkfifo = Process.Start("mkfifo", Path.Combine(hanging, "tokenizer.json"))) mkfifo.WaitForExit();
            string[] rank0 = ["train", "--steps", "1", "--device", "cpu", "--output", Path.Combine(folder, "run"), "--rank-timeout", "2"];
            string[] rank1 = ["train", "--dataset", Path.Combine(folder, "none.jsonl"), "--reward", "accuracy", "--model", hanging,
                "--output", Path.Combine(folder, "run1"), "--rank-timeout", "2"];
            var (exit, output) = MpiRun(1, rank0, rank1);
            Assert.That(exit, Is.Not.EqualTo(0), output);
            Assert.That(output, Does.Contain("rank 1 did not answer rank 0 within 2 s (--rank-timeout)"));
            Assert.That(Directory.GetDirectories(Path.Combine(folder, "run"), "checkpoint-*"), Is.Empty);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// A rank killed (SIGKILL) in the middle of a run: mpirun stops the job within a bounded time and names the rank, and
    /// the newest checkpoint is complete and loads. The run is long (1,000 steps, about a minute) so that the kill, sent
    /// as soon as the first checkpoint exists, lands mid-run whatever the machine's speed.
    /// </summary>
    [Test]
    public void ARankKilledMidRunStopsTheJobAndLeavesTheNewestCheckpointIntact()
    {
        string folder = TempFolder();
        try
        {
            const int steps = 1000;
            string marker = Guid.NewGuid().ToString("N");
            string[] args = ["train", "--steps", steps.ToString(), "--checkpoint-every", "5", "--device", "cpu", "--output", folder];
            using var job = StartMpi(2, new Dictionary<string, string> { ["GRPO_TEST_JOB"] = marker }, args);
            var clock = Stopwatch.StartNew();
            while (GrpoCheckpoint.FindLatest(folder) is null)
            {
                if (job.Process.HasExited) Assert.Fail($"the job ended before its first checkpoint:\n{job.Output()}");
                Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromMinutes(2)), "no checkpoint within 2 minutes");
                Thread.Sleep(20);
            }
            int victim = RankProcess(marker, rank: 1) ?? throw new AssertionException("rank 1's process was not found");
            using (var rank1 = Process.GetProcessById(victim)) rank1.Kill(); // SIGKILL on Linux; no kill(1) needed
            var killedAt = Stopwatch.StartNew();
            Assert.That(job.Process.WaitForExit(TimeSpan.FromMinutes(1)), Is.True, "the job did not stop within a minute of losing rank 1");
            string output = job.Output();
            TestContext.Out.WriteLine($"stopped {killedAt.Elapsed.TotalSeconds:F1} s after the kill, exit {job.Process.ExitCode}:\n{output}");
            Assert.That(job.Process.ExitCode, Is.Not.EqualTo(0));
            Assert.That(output, Does.Contain("rank 1"), "mpirun names the rank that died");

            string latest = GrpoCheckpoint.FindLatest(folder) ?? throw new AssertionException("no complete checkpoint left");
            var state = GrpoCheckpoint.ReadState(latest);
            Assert.That(latest, Is.EqualTo(GrpoCheckpoint.FolderFor(folder, state.Step)));
            Assert.That(state.Step, Is.LessThan(steps), "killed mid-run");
            using var device = new Grpo.Native.Cpu.CpuDevice();
            using var policy = GrpoCheckpoint.LoadPolicy(device, latest);
            Assert.That(policy.Parameters.Buffer.ToArray().All(float.IsFinite));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void ARankCountThatDoesNotDivideThePromptsIsRefusedBeforeAnyWork()
    {
        string folder = TempFolder();
        try
        {
            var (exit, output) = MpiRun(2, ["train", "--steps", "1", "--prompts", "3", "--device", "cpu", "--output", folder]);
            Assert.That(exit, Is.Not.EqualTo(0), output);
            Assert.That(output, Does.Contain("--prompts").And.Contain("2 ranks"));
            Assert.That(File.Exists(Path.Combine(folder, "run.json")), Is.False, "refused before the run was set up");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// A process that a launcher announced (OMPI_COMM_WORLD_SIZE = 2) but whose Open MPI library cannot be loaded, and a
    /// launcher variable that is not a count: one line each naming the cause and the fix, exit 2, nothing written. Run as
    /// child processes, as mpirun starts them; GRPO_MPI_LIBRARY points at a file that does not exist.
    /// </summary>
    [TestCase("OMPI_COMM_WORLD_SIZE", "2", "libmpi-missing.so.40", "could not be loaded")]
    [TestCase("PMI_SIZE", "two", null, "PMI_SIZE")]
    public void ALaunchedRankWithoutItsMpiLibraryOrWithABadSizeStopsWithOneLine(string variable, string value, string? library, string expected)
    {
        string folder = TempFolder();
        try
        {
            string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
            var start = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "grpo.dll"), "train", "--steps", "1", "--device", "cpu", "--output", folder })
                start.ArgumentList.Add(a);
            start.Environment[variable] = value;
            if (library is not null) start.Environment[MpiLibrary.FileVariable] = Path.Combine(folder, library);
            using var process = Process.Start(start)!;
            var errorTask = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            Assert.That(process.WaitForExit(TimeSpan.FromMinutes(1)), Is.True, "it did not stop");
            string error = errorTask.Result.Trim();
            TestContext.Out.WriteLine($"exit {process.ExitCode}\n{output}\n{error}");
            Assert.That(process.ExitCode, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(error.Split('\n'), Has.Length.EqualTo(1), "one line");
            Assert.That(error, Does.Contain(expected));
            if (library is not null) Assert.That(error, Does.Contain("apt-get install openmpi-bin").And.Contain(MpiLibrary.FileVariable));
            Assert.That(File.Exists(Path.Combine(folder, "run.json")), Is.False, "nothing written");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The same metrics (but timings) and the same final checkpoint, bit for bit.</summary>
    private static void AssertSameRun(string expectedFolder, string actualFolder, int? worldSize)
    {
        var expected = MetricsLog.Read(Path.Combine(expectedFolder, "metrics.jsonl"));
        var actual = MetricsLog.Read(Path.Combine(actualFolder, "metrics.jsonl"));
        Assert.That(actual, Has.Count.EqualTo(expected.Count), "rank 0 alone writes one row per step");
        for (int i = 0; i < expected.Count; i++)
        {
            if (worldSize is { } k) Assert.That(actual[i]["world_size"], Is.EqualTo(k));
            Assert.That(actual[i].Keys, Is.EquivalentTo(expected[i].Keys));
            foreach (var (name, value) in expected[i].Where(kv => !NotCompared.Contains(kv.Key)))
                Assert.That(actual[i][name], Is.EqualTo(value), $"step {i + 1}: {name}");
        }
        string checkpoint = Path.GetFileName(GrpoCheckpoint.FolderFor(expectedFolder, 2));
        foreach (string file in new[] { "model/model.safetensors", "model/config.json", GrpoCheckpoint.OptimizerFileName, GrpoCheckpoint.StateFileName })
            Assert.That(File.ReadAllBytes(Path.Combine(actualFolder, checkpoint, file)),
                Is.EqualTo(File.ReadAllBytes(Path.Combine(expectedFolder, checkpoint, file))), $"{checkpoint}/{file}");
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (string directory in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(directory.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, file.Replace(from, to));
    }

    /// <summary>
    /// mpirun with <paramref name="ranks"/> copies of the built grpo (one more program per extra argument list, MPMD style);
    /// its exit code and its output and errors together.
    /// </summary>
    private static (int Exit, string Output) MpiRun(int ranks, params string[][] programs)
    {
        using var job = StartMpi(ranks, new Dictionary<string, string>(), programs);
        if (!job.Process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            job.Process.Kill(entireProcessTree: true);
            Assert.Fail($"mpirun did not finish within 3 minutes:\n{job.Output()}");
        }
        string all = job.Output();
        TestContext.Out.WriteLine($"mpirun {string.Join(' ', job.Process.StartInfo.ArgumentList)} -> {job.Process.ExitCode}\n{all}");
        return (job.Process.ExitCode, all);
    }

    /// <summary>A running mpirun, its output and errors read as they come (so neither pipe fills and blocks it).</summary>
    private sealed class MpiJob(Process process) : IDisposable
    {
        private readonly Task<string> _output = process.StandardOutput.ReadToEndAsync(), _error = process.StandardError.ReadToEndAsync();

        public Process Process => process;

        /// <summary>Everything it printed (waits for it to exit).</summary>
        public string Output() => _output.Result + _error.Result;

        public void Dispose()
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.Dispose();
        }
    }

    private static MpiJob StartMpi(int ranks, IReadOnlyDictionary<string, string> environment, params string[][] programs)
    {
        string mpirun = FindMpirun() ?? throw new AssertionException(
            "mpirun was not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev), which scripts/test.sh does.");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        string grpo = Path.Combine(AppContext.BaseDirectory, "grpo.dll");
        var start = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true };
        // Loopback on one machine; more ranks than cores is fine; containers often run the tests as root.
        foreach (string a in new[] { "--oversubscribe", "--mca", "btl", "self,vader,tcp", "--mca", "btl_tcp_if_include", "lo" }) start.ArgumentList.Add(a);
        if (Environment.UserName == "root") start.ArgumentList.Add("--allow-run-as-root");
        for (int p = 0; p < programs.Length; p++)
        {
            if (p > 0) start.ArgumentList.Add(":");
            foreach (string a in new[] { "-np", ranks.ToString(), dotnet, grpo }.Concat(programs[p])) start.ArgumentList.Add(a);
        }
        start.Environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1";
        foreach (var (name, value) in environment) start.Environment[name] = value;
        return new MpiJob(Process.Start(start)!);
    }

    /// <summary>The process id of <paramref name="rank"/> of the job whose environment holds GRPO_TEST_JOB=<paramref name="marker"/>.</summary>
    private static int? RankProcess(string marker, int rank)
    {
        foreach (string folder in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out int pid)) continue;
            string[] variables;
            try { variables = File.ReadAllText(Path.Combine(folder, "environ")).Split('\0'); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; } // gone, or not ours
            if (variables.Contains($"GRPO_TEST_JOB={marker}") && variables.Contains($"OMPI_COMM_WORLD_RANK={rank}")) return pid;
        }
        return null;
    }

    private static string? FindMpirun() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Select(dir => Path.Combine(dir, "mpirun")).FirstOrDefault(File.Exists);
}

#:project ../src/Grpo.Native/Grpo.Native.csproj
#:package ScottPlot
#:property PublishAot=false

// The GRPO variants on the built-in demo task (`grpo train` with no arguments: a tiny random Llama-family policy
// learns to reverse words from the reward alone), side by side. Each variant runs with the demo's settings and
// only its own options changed, for each seed; the figure shows the training reward and the policy's entropy
// per step (mean over seeds, smoothed), the table the held-out reward (greedy, the demo's 64 held-out words)
// at the end and the CPU time. Runs outside CI:
//
//   dotnet run -c Release scripts/variants-experiment.cs -- --steps 600 --seeds 1,2 --output artifacts/variants
//   (--variants dapo,grpo,... to run some; --threads N per run; runs are independent and go one after another)
//
// Writes OUTPUT/VARIANT-sSEED.jsonl (per-step reward, entropy, reward_std, time), OUTPUT/variants.png and
// OUTPUT/variants.md (the table).
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tasks;
using Grpo.Native.Training;
using ScottPlot;

var arguments = ParseArguments(args);
int steps = int.Parse(arguments.GetValueOrDefault("steps", "600"), CultureInfo.InvariantCulture);
int[] seeds = arguments.GetValueOrDefault("seeds", "1,2").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
string output = Path.GetFullPath(arguments.GetValueOrDefault("output", "artifacts/variants"));
Directory.CreateDirectory(output);

var task = StringTransformTask.Get("reverse");
var all = Variants.All(steps);
var chosen = arguments.TryGetValue("variants", out string? names)
    ? names.Split(',').Select(n => all.FirstOrDefault(v => v.Name == n) ?? throw new ArgumentException($"--variants: unknown '{n}'; known: {string.Join(", ", all.Select(v => v.Name))}")).ToList()
    : all;

var results = new List<RunResult>();
foreach (var variant in chosen)
    foreach (int seed in seeds)
    {
        string file = Path.Combine(output, $"{variant.Name}-s{seed}.jsonl");
        var result = File.Exists(file + ".done") ? RunResult.Read(file) : Run(variant, seed, file);
        results.Add(result);
        Console.WriteLine($"{variant.Name,-18} seed {seed}: held-out {result.HeldOutReward:F3}, final train reward {result.FinalTrainReward:F3}, {result.CpuSeconds:F0} s CPU");
    }

Figure.Write(Path.Combine(output, "variants.png"), chosen, results);
string table = Table(chosen, results, steps, seeds);
File.WriteAllText(Path.Combine(output, "variants.md"), table);
Console.WriteLine(table);
return 0;

RunResult Run(Variant variant, int seed, string file)
{
    using var device = Device.Create(DeviceKind.Cpu);
    using var policy = TransformerModel.CreateRandom(device, task.DefaultModel(), seed);
    var options = variant.Configure(DemoOptions(seed));
    using var trainer = new GrpoTrainer(policy, task.Tokenizer, task.Rewards(), options);
    var rows = new List<StepRow>();
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var clock = Stopwatch.StartNew();
    int batches = 0;
    for (int step = 1; step <= steps; step++)
    {
        // Each generation batch draws fresh words, keyed by a running count so that a refill never repeats a batch.
        var metrics = options.DynamicSampling is null
            ? trainer.TrainStep(task.TrainingWords(seed, step, options.PromptsPerStep).Select(task.PromptTokens).ToArray())
            : trainer.TrainStep(() => new PromptBatch(task.TrainingWords(seed, ++batches, options.PromptsPerStep).Select(task.PromptTokens).ToArray()));
        if (options.DynamicSampling is null) batches++;
        rows.Add(new StepRow(step, metrics.Reward, metrics.Entropy, metrics.RewardStd, clock.Elapsed.TotalSeconds));
    }
    float heldOut = task.Evaluate(policy, task.HeldOutWords);
    double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
    var result = new RunResult(variant.Name, seed, heldOut, rows.TakeLast(50).Average(r => r.Reward), cpuSeconds, clock.Elapsed.TotalSeconds, batches, rows);
    result.Write(file);
    return result;
}

GrpoTrainerOptions DemoOptions(int seed) => new()
{
    // The settings of `grpo train` with no arguments (src/Grpo.Cli/TrainRun.cs), over this run's length.
    GroupSize = 8,
    PromptsPerStep = 16,
    MaxPromptLength = task.MaxPromptLength,
    MaxCompletionLength = task.MaxCompletionLength,
    StopTokens = [task.Tokenizer.Eos],
    LearningRate = 3e-4f,
    Schedule = LearningRateScheduleKind.Cosine,
    WarmupSteps = Math.Min(10, steps / 10),
    TotalSteps = steps,
    MicroBatchSize = 64,
    Seed = seed,
};

static string Table(IReadOnlyList<Variant> variants, IReadOnlyList<RunResult> results, int steps, int[] seeds)
{
    var lines = new List<string>
    {
        $"| variant | options | held-out reward ({string.Join(", ", seeds.Select(s => $"seed {s}"))}) | mean | train reward, last 50 steps | generation batches | CPU s per run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    };
    foreach (var variant in variants)
    {
        var runs = results.Where(r => r.Variant == variant.Name).ToList();
        lines.Add($"| {variant.Name} | {variant.Description} | {string.Join(", ", runs.Select(r => r.HeldOutReward.ToString("F3", CultureInfo.InvariantCulture)))} | " +
                  $"{runs.Average(r => r.HeldOutReward):F3} | {runs.Average(r => r.FinalTrainReward):F3} | {runs.Average(r => r.GenerationBatches):F0} | {runs.Average(r => r.CpuSeconds):F0} |");
    }
    lines.Add("");
    lines.Add($"{steps} steps per run, 16 prompts x 8 completions, the demo's tiny Llama policy from scratch, lr 3e-4 cosine; " +
              "held-out reward: greedy completions of the task's 64 held-out words.");
    return string.Join('\n', lines);
}

static Dictionary<string, string> ParseArguments(string[] args)
{
    var parsed = new Dictionary<string, string>();
    for (int i = 0; i < args.Length; i += 2)
    {
        if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            throw new ArgumentException($"expected --name value pairs, got '{args[i]}'");
        parsed[args[i][2..]] = args[i + 1];
    }
    return parsed;
}

/// <summary>One setting of the trainer: a name, what it changes, and the change.</summary>
sealed record Variant(string Name, string Description, Func<GrpoTrainerOptions, GrpoTrainerOptions> Configure);

static class Variants
{
    public static List<Variant> All(int steps) =>
    [
        new("dapo", "loss dapo, eps 0.2 (the demo's default)", o => o),
        new("grpo", "loss grpo", o => o with { LossType = LossType.Grpo }),
        new("dr_grpo", "loss dr_grpo", o => o with { LossType = LossType.DrGrpo }),
        new("clip-higher", "dapo, eps_high 0.28", o => o with { EpsilonHigh = 0.28f }),
        new("dynamic-sampling", "dapo, eps_high 0.28, dynamic sampling (4 batches)", o => o with { EpsilonHigh = 0.28f, DynamicSampling = new DynamicSamplingOptions { MaxGenerationBatches = 4 } }),
        new("cispo", "loss cispo, eps_high 5", o => o with { LossType = LossType.Cispo, EpsilonHigh = 5f }),
        new("sapo", "loss sapo (tau 1.0 / 1.05)", o => o with { LossType = LossType.Sapo }),
        // With one update per rollout (mu = 1) every ratio is exactly 1, so clipping never acts and clip-higher, cispo
        // and sapo give dapo's/grpo's gradient; two updates per rollout let them differ.
        new("dapo-mu2", "dapo, 2 updates per rollout", o => o with { NumIterations = 2 }),
        new("clip-higher-mu2", "dapo, eps_high 0.28, 2 updates per rollout", o => o with { EpsilonHigh = 0.28f, NumIterations = 2 }),
        new("cispo-mu2", "loss cispo, eps_high 5, 2 updates per rollout", o => o with { LossType = LossType.Cispo, EpsilonHigh = 5f, NumIterations = 2 }),
        new("sapo-mu2", "loss sapo, 2 updates per rollout", o => o with { LossType = LossType.Sapo, NumIterations = 2 }),
        new("entropy-mask", "dapo, top 20 % entropy tokens only", o => o with { TopEntropyQuantile = 0.2f }),
        new("entropy-mask-mu2", "dapo, top 20 % entropy tokens only, 2 updates per rollout", o => o with { TopEntropyQuantile = 0.2f, NumIterations = 2 }),
    ];
}

/// <summary>One step's logged values.</summary>
sealed record StepRow(int Step, float Reward, float Entropy, float RewardStd, double Seconds);

/// <summary>One run: its final held-out reward, costs and per-step curve.</summary>
sealed record RunResult(string Variant, int Seed, float HeldOutReward, double FinalTrainReward, double CpuSeconds, double WallSeconds,
    int GenerationBatches, IReadOnlyList<StepRow> Rows)
{
    public void Write(string file)
    {
        File.WriteAllLines(file, Rows.Select(r => JsonSerializer.Serialize(r)));
        File.WriteAllText(file + ".done", JsonSerializer.Serialize(this with { Rows = [] }));
    }

    public static RunResult Read(string file)
    {
        var summary = JsonSerializer.Deserialize<RunResult>(File.ReadAllText(file + ".done"))!;
        return summary with { Rows = File.ReadAllLines(file).Select(l => JsonSerializer.Deserialize<StepRow>(l)!).ToList() };
    }
}

/// <summary>Reward and entropy curves, mean over seeds and smoothed, two panels side by side.</summary>
static class Figure
{
    private const int Smoothing = 25;

    public static void Write(string path, IReadOnlyList<Variant> variants, IReadOnlyList<RunResult> results)
    {
        var multiplot = new ScottPlot.Multiplot();
        multiplot.AddPlots(2);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        var (reward, entropy) = (multiplot.GetPlot(0), multiplot.GetPlot(1));
        foreach (var variant in variants)
        {
            var runs = results.Where(r => r.Variant == variant.Name).ToList();
            int length = runs.Min(r => r.Rows.Count);
            double[] steps = Enumerable.Range(1, length).Select(s => (double)s).ToArray();
            // Twenty colours so that no two variants share one; two updates per rollout dashed.
            var color = new ScottPlot.Palettes.Category20().GetColor(variants.ToList().IndexOf(variant));
            foreach (var (plot, value) in new[] { (reward, (Func<StepRow, double>)(r => r.Reward)), (entropy, r => r.Entropy) })
            {
                double[] mean = Enumerable.Range(0, length).Select(i => runs.Average(r => value(r.Rows[i]))).ToArray();
                var line = plot.Add.ScatterLine(steps, Smooth(mean));
                line.Color = color;
                line.LineWidth = 2;
                if (variant.Name.EndsWith("-mu2", StringComparison.Ordinal)) line.LinePattern = LinePattern.Dashed;
                if (plot == reward) line.LegendText = variant.Name; // one legend, on the reward panel
            }
        }
        reward.Title("training reward (mean of seeds, moving average of 25 steps)");
        reward.XLabel("step");
        reward.YLabel("mean reward");
        entropy.Title("policy entropy per token (nats)");
        entropy.XLabel("step");
        entropy.YLabel("entropy");
        reward.ShowLegend(Alignment.UpperLeft);
        entropy.HideLegend();
        multiplot.SavePng(path, 1600, 600);
    }

    private static double[] Smooth(double[] values)
    {
        var smoothed = new double[values.Length];
        double sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            sum += values[i];
            if (i >= Smoothing) sum -= values[i - Smoothing];
            smoothed[i] = sum / Math.Min(i + 1, Smoothing);
        }
        return smoothed;
    }
}

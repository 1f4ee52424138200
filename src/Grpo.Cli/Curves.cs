using Grpo.Native.Checkpoints;
using ScottPlot;

namespace Grpo.Cli;

/// <summary>PNG curves of a run (ScottPlot): reward, KL and completion length against the step.</summary>
internal static class Curves
{
    public const string RewardFile = "reward.png", KlFile = "kl.png", LengthFile = "completion_length.png";

    public static void Write(string folder, IReadOnlyList<Dictionary<string, double>> rows)
    {
        if (rows.Count == 0) return;
        Plot(Path.Combine(folder, RewardFile), rows, "reward", "mean reward", ("reward", "reward"));
        Plot(Path.Combine(folder, KlFile), rows, "KL to the reference (k3)", "kl", ("kl", "kl"));
        Plot(Path.Combine(folder, LengthFile), rows, "completion length", "tokens",
            ("completions/mean_length", "mean"), ("completions/min_length", "min"), ("completions/max_length", "max"));
    }

    private static void Plot(string path, IReadOnlyList<Dictionary<string, double>> rows, string title, string yLabel,
        params (string Metric, string Legend)[] series)
    {
        var plot = new Plot();
        double[] steps = rows.Select(r => r["step"]).ToArray();
        foreach (var (metric, legend) in series)
        {
            var scatter = plot.Add.ScatterLine(steps, rows.Select(r => r.TryGetValue(metric, out double v) ? v : double.NaN).ToArray());
            scatter.LegendText = legend;
        }
        if (series.Length > 1) plot.ShowLegend();
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel(yLabel);
        byte[] png = plot.GetImageBytes(800, 400, ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(png));
    }
}

using System.Text.Json;
using Grpo.Native.Checkpoints;
using Grpo.Native.Training;

namespace Grpo.Cli;

/// <summary>
/// metrics.jsonl: one JSON object per step under TRL's metric names. A resumed run first cuts the
/// file back to the checkpoint's step, so the file reads as if the run had never stopped.
/// </summary>
internal sealed class MetricsLog
{
    private readonly string _path;

    public MetricsLog(string path, int keepThroughStep)
    {
        _path = path;
        var kept = Read(path).Where(row => row.TryGetValue("step", out double step) && step <= keepThroughStep)
            .Select(row => JsonSerializer.Serialize(row));
        AtomicFile.WriteAllText(path, string.Concat(kept.Select(line => line + "\n")));
    }

    /// <summary>Appends one step's metrics as a line (NaN written as the JSON string "NaN").</summary>
    public void Append(GrpoStepMetrics metrics)
    {
        string line = JsonSerializer.Serialize(metrics.ToDictionary(), Options);
        File.AppendAllText(_path, line + "\n");
    }

    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Every row of a metrics file (none when it does not exist).</summary>
    public static List<Dictionary<string, double>> Read(string path)
    {
        if (!File.Exists(path)) return [];
        return File.ReadLines(path).Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize<Dictionary<string, double>>(l, Options)
                         ?? throw new InvalidDataException($"'{path}' holds an empty line."))
            .ToList();
    }
}

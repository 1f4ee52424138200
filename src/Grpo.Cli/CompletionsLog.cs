using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Grpo.Native.Checkpoints;
using Grpo.Native.Training;

namespace Grpo.Cli;

/// <summary>
/// completions.jsonl of a <c>grpo train --dataset</c> run (TRL's log_completions table): one JSON object per completion
/// of a logged step, <c>{"step", "prompt", "completion", "rewards": {NAME: score, ...}, "reward", "advantage"}</c>, with
/// the raw score of each function, the weighted total and the advantage; a missing score (NaN) is written as null. A
/// step's lines are appended in one write; a resumed run first drops the lines after the checkpoint's step and any line
/// an interruption left unfinished, so the file reads as if the run had never stopped.
/// </summary>
internal sealed class CompletionsLog
{
    private readonly string _path;

    /// <summary>A log at <paramref name="path"/>, keeping only the complete lines of steps up to <paramref name="keepThroughStep"/>.</summary>
    public CompletionsLog(string path, int keepThroughStep)
    {
        _path = path;
        if (!File.Exists(path)) return;
        AtomicFile.Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
            foreach (string line in File.ReadLines(path))
                if (StepOf(line) is { } step && step <= keepThroughStep) writer.Write(line + "\n");
        });
    }

    /// <summary>The step of a complete line; null for a line that is not a JSON object with a numeric "step" (one cut short, say).</summary>
    private static int? StepOf(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("step", out var step)
                   && step.TryGetInt32(out int value) ? value : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Appends one line per completion of <paramref name="completions"/>, all in one write.</summary>
    public void Append(GrpoStepCompletions completions)
    {
        using var buffer = new MemoryStream();
        int f = completions.RewardNames.Count;
        for (int i = 0; i < completions.Inputs.Count; i++)
        {
            using (var json = new Utf8JsonWriter(buffer, WriterOptions))
            {
                json.WriteStartObject();
                json.WriteNumber("step", completions.Step);
                json.WriteString("prompt", completions.Inputs[i].Prompt);
                json.WriteString("completion", completions.Inputs[i].Completion);
                json.WriteStartObject("rewards");
                for (int j = 0; j < f; j++) WriteNumber(json, completions.RewardNames[j], completions.Scores[i * f + j]);
                json.WriteEndObject();
                WriteNumber(json, "reward", completions.Rewards[i]);
                WriteNumber(json, "advantage", completions.Advantages[i]);
                json.WriteEndObject();
            }
            buffer.WriteByte((byte)'\n');
        }
        using var file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 1);
        file.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    // Completions are read by people: keep non-ASCII text and <, >, & as they are (still valid JSON).
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static void WriteNumber(Utf8JsonWriter json, string name, float value)
    {
        if (float.IsFinite(value)) json.WriteNumber(name, value);
        else json.WriteNull(name);
    }
}

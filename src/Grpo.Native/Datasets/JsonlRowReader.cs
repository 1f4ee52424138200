using System.Text.Json;
using Grpo.Native.Tokenization;

namespace Grpo.Native.Datasets;

/// <summary>
/// Reads a JSON Lines file: one JSON object per line, each a row. Blank (whitespace-only) lines are skipped
/// (a trailing newline or an editor's empty last line is common); line numbers in messages count them all, from 1.
/// </summary>
internal static class JsonlRowReader
{
    /// <exception cref="PromptDatasetException">A line is not valid JSON, not an object, or repeats a key.</exception>
    public static List<RawRow> Read(string path, CancellationToken cancellationToken)
    {
        var rows = new List<RawRow>();
        int lineNumber = 0;
        // ReadLines streams the file and drops a UTF-8 byte order mark.
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            cancellationToken.ThrowIfCancellationRequested();
            string location = $"'{path}' line {lineNumber}";
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new PromptDatasetException(
                    $"{location} is not valid JSON ({e.Message}); each line of a .jsonl file must be one complete JSON object.", e);
            }
            using (document)
            {
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                    throw new PromptDatasetException(
                        $"{location} is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object; each line must be one row as {{\"column\": value, ...}}.");
                var fields = new Dictionary<string, object?>();
                foreach (var property in root.EnumerateObject())
                    if (!fields.TryAdd(property.Name, JsonValues.ToPlain(property.Value)))
                        throw new PromptDatasetException($"{location} has the key '{property.Name}' twice; keep one.");
                rows.Add(new RawRow(fields, location));
            }
        }
        return rows;
    }
}

namespace Grpo.Native.Datasets;

/// <summary>
/// A row as a file reader produced it, before the prompt column is taken out: every field by name, as plain
/// values, in the file's column order.
/// </summary>
internal sealed record RawRow(Dictionary<string, object?> Fields, string Location);

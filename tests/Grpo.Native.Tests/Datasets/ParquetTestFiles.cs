using System.Text.Json.Serialization;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;

namespace Grpo.Native.Tests.Datasets;

/// <summary>Parquet files the dataset tests write with Parquet.Net's own writer, in the shapes Hugging Face datasets have.</summary>
internal static class ParquetTestFiles
{
    /// <summary>Writes <paramref name="rows"/> (one row group per <paramref name="rowGroupSize"/> rows) and returns the path.</summary>
    public static string Write<T>(string path, IReadOnlyList<T> rows, int rowGroupSize = 1000)
    {
        // At least once, so that no rows still makes a file.
        for (int start = 0; start == 0 || start < rows.Count; start += rowGroupSize)
        {
            using var stream = new FileStream(path, start == 0 ? FileMode.Create : FileMode.Open, FileAccess.ReadWrite);
            // Append adds a row group to the file written so far.
            ParquetSerializer.SerializeAsync(rows.Skip(start).Take(rowGroupSize), stream, new ParquetOptions { Append = start > 0 })
                .GetAwaiter().GetResult();
        }
        return path;
    }

    public static int RowGroupCount(string path)
    {
        var reader = ParquetReader.CreateAsync(path).GetAwaiter().GetResult();
        int count = reader.RowGroupCount;
        reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return count;
    }

    /// <summary>
    /// A file with a legacy repeated column (a bare repeated int32, no LIST group), which older writers produce:
    /// rows ("a", [1, 2]), ("b", []), ("c", [3]).
    /// </summary>
    public static string WriteLegacyRepeated(string path)
    {
        var prompt = new DataField<string>("prompt");
        var ids = new DataField("ids", typeof(int), false, true);
        using var stream = File.Create(path);
        var writer = ParquetWriter.CreateAsync(new ParquetSchema(prompt, ids), stream).GetAwaiter().GetResult();
        using (var group = writer.CreateRowGroup())
        {
            group.WriteAsync(prompt, new[] { "a", "b", "c" }, null).GetAwaiter().GetResult();
            group.WriteAllPartsAsync<int>(ids, new[] { 1, 2, 3 }, new[] { 1, 1, 0, 1 }, new[] { 0, 1, 0, 0 }, default).GetAwaiter().GetResult();
        }
        writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return path;
    }
}

/// <summary>A standard row: a string prompt and int, double, string and list columns.</summary>
internal sealed class StandardParquetRow
{
    [JsonPropertyName("prompt")] public string? Prompt { get; set; }
    [JsonPropertyName("id")] public int Id { get; set; }
    [JsonPropertyName("score")] public double Score { get; set; }
    [JsonPropertyName("answer")] public string? Answer { get; set; }
    [JsonPropertyName("tags")] public List<string>? Tags { get; set; }
}

/// <summary>One message as datasets stores it: a struct of role and content.</summary>
internal sealed class ParquetMessage
{
    [JsonPropertyName("role")] public string? Role { get; set; }
    [JsonPropertyName("content")] public string? Content { get; set; }
}

/// <summary>A conversational row: the prompt is a list of {role, content} structs.</summary>
internal sealed class ConversationalParquetRow
{
    [JsonPropertyName("prompt")] public List<ParquetMessage>? Prompt { get; set; }
    [JsonPropertyName("solution")] public string? Solution { get; set; }
}

internal sealed class ParquetPoint
{
    [JsonPropertyName("x")] public long X { get; set; }
    [JsonPropertyName("label")] public string? Label { get; set; }
}

/// <summary>Nullable, nested and other-typed columns.</summary>
internal sealed class NestedParquetRow
{
    [JsonPropertyName("prompt")] public string? Prompt { get; set; }
    [JsonPropertyName("maybe")] public int? Maybe { get; set; }
    [JsonPropertyName("nums")] public List<int>? Nums { get; set; }
    [JsonPropertyName("words")] public List<string?>? Words { get; set; }
    [JsonPropertyName("point")] public ParquetPoint? Point { get; set; }
    [JsonPropertyName("grid")] public List<List<int>>? Grid { get; set; }
    [JsonPropertyName("counts")] public Dictionary<string, int>? Counts { get; set; }
    [JsonPropertyName("small")] public short Small { get; set; }
    [JsonPropertyName("ratio")] public float Ratio { get; set; }
    [JsonPropertyName("flag")] public bool? Flag { get; set; }
    [JsonPropertyName("price")] public decimal? Price { get; set; }
    [JsonPropertyName("when")] public DateTime? When { get; set; }
    [JsonPropertyName("blob")] public byte[]? Blob { get; set; }
}

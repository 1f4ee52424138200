namespace Grpo.Native.Datasets;

/// <summary>Which files a dataset path stands for: the file itself, or a folder's shards of one kind.</summary>
internal static class DatasetFiles
{
    private const string Jsonl = ".jsonl";
    private const string Parquet = ".parquet";

    public static bool IsParquet(string file) => file.EndsWith(Parquet, StringComparison.OrdinalIgnoreCase);

    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="PromptDatasetException">The file is of another kind, or the folder holds no shards or both kinds.</exception>
    public static IReadOnlyList<string> Find(string path)
    {
        if (File.Exists(path))
        {
            if (!IsParquet(path) && !path.EndsWith(Jsonl, StringComparison.OrdinalIgnoreCase))
                throw new PromptDatasetException(
                    $"'{path}' is neither a .jsonl nor a .parquet file; convert it to one of them (datasets: to_json(lines=True) or to_parquet).");
            return [path];
        }
        if (!Directory.Exists(path))
            throw new FileNotFoundException($"The prompt dataset '{path}' does not exist (neither a file nor a folder).", path);
        // Ordinal order: shard names are zero-padded (train-00000-of-00004.parquet), and it does not depend on the culture.
        var jsonl = Shards(path, Jsonl);
        var parquet = Shards(path, Parquet);
        if (jsonl.Length > 0 && parquet.Length > 0)
            throw new PromptDatasetException(
                $"The folder '{path}' holds both .jsonl ({jsonl.Length}) and .parquet ({parquet.Length}) files; keep the shards of one kind, or pass one file.");
        if (jsonl.Length == 0 && parquet.Length == 0)
        {
            bool arrow = Directory.EnumerateFiles(path).Any(f => f.EndsWith(".arrow", StringComparison.OrdinalIgnoreCase));
            throw new PromptDatasetException(
                $"The folder '{path}' holds no .jsonl or .parquet files" +
                (arrow ? " (its .arrow files are save_to_disk's format, which is not read: export with to_parquet)." : "."));
        }
        return jsonl.Length > 0 ? jsonl : parquet;
    }

    private static string[] Shards(string folder, string extension)
    {
        var files = Directory.EnumerateFiles(folder)
            .Where(f => f.EndsWith(extension, StringComparison.OrdinalIgnoreCase)).ToArray();
        Array.Sort(files, StringComparer.Ordinal);
        return files;
    }
}

using System.Collections;

namespace Grpo.Native.Datasets;

/// <summary>
/// The prompts of a GRPO run, read from the files Hugging Face datasets use: a JSON Lines file, a Parquet file,
/// or a folder of shards. All rows are held in memory (prompt rows are small); the order they are served in is
/// <see cref="PromptSampler"/>'s.
/// </summary>
public sealed class PromptDataset : IReadOnlyList<PromptRow>
{
    private readonly IReadOnlyList<PromptRow> _rows;

    /// <summary>A dataset of rows built in code (e.g. generated tasks).</summary>
    /// <param name="rows">The rows; at least one.</param>
    /// <param name="promptColumn">The name the prompt column had (kept for messages and for saving the run's settings).</param>
    /// <param name="files">The files the rows came from, if any.</param>
    /// <exception cref="ArgumentException"><paramref name="rows"/> is empty or holds a null.</exception>
    public PromptDataset(IEnumerable<PromptRow> rows, string promptColumn = "prompt", IReadOnlyList<string>? files = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentException.ThrowIfNullOrEmpty(promptColumn);
        var list = rows.ToList();
        if (list.Count == 0) throw new ArgumentException("A prompt dataset needs at least one row.", nameof(rows));
        if (list.Contains(null!)) throw new ArgumentException("The rows hold a null.", nameof(rows));
        _rows = list;
        PromptColumn = promptColumn;
        Files = files ?? [];
        Columns = list[0].Columns.Keys.ToList();
    }

    /// <summary>The name of the column that holds the prompt.</summary>
    public string PromptColumn { get; }

    /// <summary>The files the rows were read from, in the order read (empty for rows built in code).</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>
    /// The names of the first row's columns other than the prompt, in order; in a loaded dataset every row's
    /// <see cref="PromptRow.Columns"/> has exactly these.
    /// </summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Number of rows.</summary>
    public int Count => _rows.Count;

    /// <summary>The row at <paramref name="index"/>.</summary>
    public PromptRow this[int index] => _rows[index];

    /// <inheritdoc/>
    public IEnumerator<PromptRow> GetEnumerator() => _rows.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>
    /// Reads a prompt dataset: a <c>.jsonl</c> file (one JSON object per line; blank lines are skipped), a
    /// <c>.parquet</c> file, or a folder whose <c>*.jsonl</c> or <c>*.parquet</c> files (one kind, not both; not
    /// subfolders; other files such as README.md are ignored) are shards read in ordinal name order.
    /// </summary>
    /// <remarks>
    /// <para>The prompt column is either a string (TRL's standard format) or a list of <c>{role, content}</c>
    /// messages (the conversational format; other message fields are kept in <c>ChatMessage.Extra</c>). Every
    /// other column goes to <see cref="PromptRow.Columns"/>, because TRL passes them to reward functions. A column
    /// some rows (or shards) lack is null in those rows, as it is in a <c>datasets</c> table.</para>
    /// <para>Values are plain: null, bool, long, double, string, lists and string-keyed dictionaries. From Parquet,
    /// integers of every width become long and float becomes double; lists (also the legacy repeated fields)
    /// become lists, structs and maps dictionaries (map keys as invariant text), binary <c>byte[]</c>; decimal,
    /// dates, times and Guids keep their .NET type. Each Parquet column is read once per row group.</para>
    /// </remarks>
    /// <param name="path">A file or a folder of shards.</param>
    /// <param name="promptColumn">The column that holds the prompt (TRL's is "prompt").</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="PromptDatasetException">The data is malformed or does not fit; the message names the file,
    /// the line or row, and the fix.</exception>
    public static PromptDataset Load(string path, string promptColumn = "prompt") =>
        // On the thread pool: Parquet.Net is asynchronous, and blocking on it under a synchronization context could deadlock.
        Task.Run(() => LoadAsync(path, promptColumn)).GetAwaiter().GetResult();

    /// <summary>Reads a prompt dataset; see <see cref="Load"/>.</summary>
    /// <param name="path">A file or a folder of shards.</param>
    /// <param name="promptColumn">The column that holds the prompt (TRL's is "prompt").</param>
    /// <param name="cancellationToken">Stops reading.</param>
    public static async Task<PromptDataset> LoadAsync(string path, string promptColumn = "prompt", CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrEmpty(promptColumn);
        var files = DatasetFiles.Find(path);
        var raw = new List<RawRow>();
        foreach (string file in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            raw.AddRange(DatasetFiles.IsParquet(file)
                ? await ParquetRowReader.ReadAsync(file, promptColumn, cancellationToken).ConfigureAwait(false)
                : JsonlRowReader.Read(file, cancellationToken));
        }
        if (raw.Count == 0)
            throw new PromptDatasetException(
                $"'{path}' holds no rows{(files.Count > 1 ? $" in its {files.Count} files" : "")}; a prompt dataset needs at least one.");
        // One column order for all rows: first appearance, as a datasets table unifies JSON rows.
        var order = new List<string>();
        var seen = new HashSet<string>();
        foreach (var row in raw)
            foreach (string name in row.Fields.Keys)
                if (seen.Add(name)) order.Add(name);
        var rows = raw.Select(r => PromptValue.ToRow(r, promptColumn, order));
        return new PromptDataset(rows, promptColumn, files);
    }
}

namespace Grpo.Native.Datasets;

/// <summary>
/// A prompt dataset file is malformed or does not fit: a bad JSON line, a row without the prompt column, a
/// prompt that is neither text nor messages, an empty dataset. The message names the file, the line or row,
/// and what to change.
/// </summary>
/// <remarks>
/// Derives from <see cref="IOException"/>, as <c>CheckpointFormatException</c> does: callers that handle I/O
/// failures when loading data also catch a corrupt file.
/// </remarks>
public sealed class PromptDatasetException : IOException
{
    /// <summary>Creates the exception with a message that names the file and the problem.</summary>
    public PromptDatasetException(string message) : base(message) { }

    /// <summary>Creates the exception wrapping the parser error that revealed the problem.</summary>
    public PromptDatasetException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The prompt column that a file or row lacks, when that is the problem (so a caller can name its own option); else null.</summary>
    public string? MissingColumn { get; init; }
}

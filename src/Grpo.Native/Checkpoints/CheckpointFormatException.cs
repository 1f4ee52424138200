namespace Grpo.Native.Checkpoints;

/// <summary>
/// A checkpoint file (safetensors, its index or config.json) is malformed; the message names the file,
/// the tensor or field and what is wrong.
/// </summary>
/// <remarks>
/// <see cref="InvalidDataException"/> is sealed, so this derives from <see cref="IOException"/>: callers that
/// already handle I/O failures when loading a checkpoint also catch a corrupt one.
/// </remarks>
public sealed class CheckpointFormatException : IOException
{
    /// <summary>Creates the exception with a message that names the file and the problem.</summary>
    public CheckpointFormatException(string message) : base(message) { }

    /// <summary>Creates the exception wrapping the parser error that revealed the problem.</summary>
    public CheckpointFormatException(string message, Exception inner) : base(message, inner) { }
}

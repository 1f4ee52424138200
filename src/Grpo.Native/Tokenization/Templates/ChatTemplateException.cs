namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// A chat template could not be parsed or rendered: a syntax error, a construct this interpreter does not
/// support (named in the message), or a runtime error such as an undefined value used where a value is needed.
/// </summary>
public class ChatTemplateException : Exception
{
    /// <summary>The error without the line suffix.</summary>
    public string Reason { get; }

    /// <summary>The 1-based template line the error was found at (0 when no line applies).</summary>
    public int Line { get; }

    /// <summary>An error found at <paramref name="line"/> of the template.</summary>
    public ChatTemplateException(string reason, int line)
        : base(line > 0 ? $"{reason} (chat template line {line})" : reason)
    {
        Reason = reason;
        Line = line;
    }
}

/// <summary>
/// The template itself rejected its input by calling <c>raise_exception(message)</c>, as Hugging Face
/// templates do for unsupported message sequences (for example roles that do not alternate).
/// </summary>
public sealed class TemplateRaisedException : ChatTemplateException
{
    /// <summary>The message the template passed to <c>raise_exception</c>, unchanged.</summary>
    public string TemplateMessage => Reason;

    /// <summary>The template raised <paramref name="templateMessage"/> at <paramref name="line"/>.</summary>
    public TemplateRaisedException(string templateMessage, int line) : base(templateMessage, line) { }
}

using Grpo.Native.Tokenization;

namespace Grpo.Native.Datasets;

/// <summary>
/// One row of a prompt dataset: the prompt in one of TRL's two formats, and every other column of the row.
/// </summary>
/// <remarks>
/// TRL's formats: <em>standard</em>, where the prompt column is a string (<see cref="Text"/>), and
/// <em>conversational</em>, where it is a list of <c>{role, content}</c> messages (<see cref="Messages"/>).
/// Exactly one of the two is set. <see cref="Columns"/> holds the row's other columns because TRL passes them to
/// reward functions as keyword arguments (e.g. the reference answer of a math problem).
/// </remarks>
public sealed class PromptRow
{
    private PromptRow(string? text, IReadOnlyList<ChatMessage>? messages, IReadOnlyDictionary<string, object?> columns, string location)
    {
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(location);
        Text = text;
        Messages = messages;
        Columns = columns;
        Location = location;
    }

    /// <summary>A standard row: the prompt is plain text.</summary>
    /// <param name="text">The prompt.</param>
    /// <param name="columns">The row's other columns by name (plain values; see <see cref="Columns"/>).</param>
    /// <param name="location">Where the row came from, for messages (e.g. "train.jsonl line 3").</param>
    public static PromptRow Standard(string text, IReadOnlyDictionary<string, object?> columns, string location)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new PromptRow(text, null, columns, location);
    }

    /// <summary>A conversational row: the prompt is a list of messages, rendered with the tokenizer's chat template.</summary>
    /// <param name="messages">The conversation; at least one message.</param>
    /// <param name="columns">The row's other columns by name (plain values; see <see cref="Columns"/>).</param>
    /// <param name="location">Where the row came from, for messages (e.g. "train.parquet row 3").</param>
    /// <exception cref="ArgumentException"><paramref name="messages"/> is empty.</exception>
    public static PromptRow Conversational(IReadOnlyList<ChatMessage> messages, IReadOnlyDictionary<string, object?> columns, string location)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0)
            throw new ArgumentException($"{location}: the conversation has no messages; a prompt needs at least one.", nameof(messages));
        return new PromptRow(null, messages, columns, location);
    }

    /// <summary>The prompt text of a standard row; null for a conversational one.</summary>
    public string? Text { get; }

    /// <summary>The messages of a conversational row; null for a standard one.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; }

    /// <summary>True when the prompt is a list of messages (<see cref="Messages"/> is set).</summary>
    public bool IsConversational => Messages is not null;

    /// <summary>
    /// Every column of the row except the prompt, by name, in the dataset's column order: null, bool, long,
    /// double, string, <see cref="List{T}"/> of values, or string-keyed <see cref="Dictionary{TKey,TValue}"/>
    /// (Parquet structs and maps too); a few Parquet logical types keep their .NET type (see
    /// <see cref="PromptDataset.Load"/>). A column that a row lacks but others have is null in that row.
    /// </summary>
    public IReadOnlyDictionary<string, object?> Columns { get; }

    /// <summary>Where the row came from ("path line N" for JSON Lines, counted from 1; "path row N" for Parquet, counted from 0).</summary>
    public string Location { get; }

    /// <inheritdoc/>
    public override string ToString() => IsConversational ? $"{Location}: {Messages!.Count} messages" : $"{Location}: \"{Text}\"";
}

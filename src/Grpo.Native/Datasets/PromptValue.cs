using Grpo.Native.Tokenization;

namespace Grpo.Native.Datasets;

/// <summary>
/// Turns a raw row into a <see cref="PromptRow"/>: the prompt column's plain value becomes text or messages
/// (TRL's standard and conversational formats), the other columns are kept as they are.
/// </summary>
internal static class PromptValue
{
    /// <summary>The row with its columns laid out in <paramref name="columnOrder"/>; a column the row lacks is null.</summary>
    /// <exception cref="PromptDatasetException">The row has no prompt column, or its prompt is neither text nor messages.</exception>
    public static PromptRow ToRow(RawRow raw, string promptColumn, IReadOnlyList<string> columnOrder)
    {
        if (!raw.Fields.TryGetValue(promptColumn, out object? prompt))
            throw new PromptDatasetException(
                $"{raw.Location} has no column '{promptColumn}'; its columns are: {ListColumns(raw.Fields.Keys)}. " +
                "Pass the name of the column that holds the prompt (promptColumn), or add the column.")
            { MissingColumn = promptColumn };
        var columns = new Dictionary<string, object?>(columnOrder.Count);
        foreach (string name in columnOrder)
            if (name != promptColumn)
                columns[name] = raw.Fields.GetValueOrDefault(name);
        return prompt switch
        {
            string text => PromptRow.Standard(text, columns, raw.Location),
            IReadOnlyList<object?> list => PromptRow.Conversational(ToMessages(list, $"{raw.Location}: '{promptColumn}'"), columns, raw.Location),
            _ => throw new PromptDatasetException(
                $"{raw.Location}: '{promptColumn}' is {Describe(prompt)}, neither a string (a standard prompt) nor a list of " +
                "{role, content} messages (a conversational prompt)."),
        };
    }

    /// <summary>Column names for a message, quoted and comma-separated ("(none)" when there are none).</summary>
    public static string ListColumns(IEnumerable<string> names)
    {
        string list = string.Join(", ", names.Select(n => $"'{n}'"));
        return list.Length == 0 ? "(none)" : list;
    }

    private static List<ChatMessage> ToMessages(IReadOnlyList<object?> list, string what)
    {
        if (list.Count == 0)
            throw new PromptDatasetException($"{what} is an empty list of messages; a conversational prompt needs at least one message.");
        var messages = new List<ChatMessage>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not IReadOnlyDictionary<string, object?> message)
                throw new PromptDatasetException($"{what}[{i}] is {Describe(list[i])}, not a {{role, content}} message.");
            string role = message.GetValueOrDefault("role") as string
                ?? throw new PromptDatasetException($"{what}[{i}] has no string 'role' (it has {Describe(message.GetValueOrDefault("role"))}).");
            string content = message.GetValueOrDefault("content") as string
                ?? throw new PromptDatasetException(
                    $"{what}[{i}] ({role}) has no string 'content' (it has {Describe(message.GetValueOrDefault("content"))}); " +
                    "lists of content parts are not supported.");
            // Other fields (name, tool_calls, ...) go to Extra: chat templates may read them.
            var extra = message.Where(p => p.Key is not ("role" or "content")).ToDictionary(p => p.Key, p => p.Value);
            messages.Add(new ChatMessage(role, content, extra.Count == 0 ? null : extra));
        }
        return messages;
    }

    private static string Describe(object? value) => value switch
    {
        null => "null",
        string => "a string",
        bool => "a boolean",
        long or double or int or float or decimal => $"a number ({value})",
        IReadOnlyDictionary<string, object?> => "an object",
        IReadOnlyList<object?> => "a list",
        _ => $"a {value.GetType().Name}",
    };
}

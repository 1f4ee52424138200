using System.Text.Json;

namespace Grpo.Native.Tokenization;

/// <summary>
/// JSON turned into the plain values that chat templates and reward functions read: null, bool, long,
/// double, string, <see cref="List{T}"/> of values and <see cref="Dictionary{TKey,TValue}"/> (string keys, in file order).
/// </summary>
public static class JsonValues
{
    /// <summary>The plain value of <paramref name="element"/>; integers stay <see cref="long"/>, other numbers become <see cref="double"/>.</summary>
    public static object? ToPlain(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => element.GetString(),
        // Boxed apart: a conditional of long and double would be a double, and 7 would come out as 7.0.
        JsonValueKind.Number => element.TryGetInt64(out long integer) ? (object)integer : element.GetDouble(),
        JsonValueKind.Array => element.EnumerateArray().Select(ToPlain).ToList(),
        JsonValueKind.Object => element.EnumerateObject().ToDictionary(p => p.Name, p => ToPlain(p.Value)),
        _ => throw new ArgumentException($"Unexpected JSON value kind {element.ValueKind}.", nameof(element)),
    };

    /// <summary>
    /// A conversation as Hugging Face writes it: an array of objects with a string "role" and a string "content";
    /// any other fields are kept in <see cref="ChatMessage.Extra"/>.
    /// </summary>
    /// <param name="messages">The JSON array.</param>
    /// <param name="what">Names the value in error messages (e.g. "line 3: messages").</param>
    /// <exception cref="ArgumentException">The value is not such a list; the message says which element and why.</exception>
    public static IReadOnlyList<ChatMessage> ToMessages(JsonElement messages, string what)
    {
        if (messages.ValueKind != JsonValueKind.Array)
            throw new ArgumentException($"{what} is {messages.ValueKind}, not a list of {{\"role\", \"content\"}} objects.");
        var list = new List<ChatMessage>();
        int index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object)
                throw new ArgumentException($"{what}[{index}] is {message.ValueKind}, not a {{\"role\", \"content\"}} object.");
            string role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()!
                : throw new ArgumentException($"{what}[{index}] has no string \"role\".");
            string content = message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()!
                : throw new ArgumentException($"{what}[{index}] ({role}) has no string \"content\" (lists of content parts are not supported).");
            var extra = message.EnumerateObject().Where(p => p.Name is not ("role" or "content"))
                .ToDictionary(p => p.Name, p => ToPlain(p.Value));
            list.Add(new ChatMessage(role, content, extra.Count == 0 ? null : extra));
            index++;
        }
        return list;
    }
}

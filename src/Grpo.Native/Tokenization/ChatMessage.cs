namespace Grpo.Native.Tokenization;

/// <summary>
/// One message of a conversation, as in Hugging Face's <c>messages</c> lists: a role ("system", "user",
/// "assistant", ...) and its content. <paramref name="Extra"/> carries any other fields a template reads
/// (e.g. Qwen3's <c>reasoning_content</c>, <c>tool_calls</c>); values are strings, numbers, booleans, null,
/// lists and string-keyed dictionaries.
/// </summary>
public sealed record ChatMessage(string Role, string Content, IReadOnlyDictionary<string, object?>? Extra = null)
{
    /// <summary>The message as the template sees it: a dictionary with role, content and the extra fields.</summary>
    public IReadOnlyDictionary<string, object?> ToTemplateValue()
    {
        var value = new Dictionary<string, object?> { ["role"] = Role, ["content"] = Content };
        if (Extra is not null)
            foreach (var (key, field) in Extra)
                if (key is not ("role" or "content")) value[key] = field;
        return value;
    }
}

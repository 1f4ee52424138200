namespace Grpo.Native.Datasets;

/// <summary>How <see cref="PromptBuilder"/> turns a row's prompt into tokens. The defaults are TRL's.</summary>
public sealed record PromptFormatOptions
{
    /// <summary>
    /// Render prompts with the tokenizer's chat template where it has one (default true). False encodes standard
    /// prompts as they are, with the tokenizer's special tokens; conversational prompts then cannot be used.
    /// </summary>
    public bool UseChatTemplate { get; init; } = true;

    /// <summary>
    /// A system message put before every conversation that does not start with one of its own (a row's own system
    /// message wins). Null (the default): none. Needs a chat template.
    /// </summary>
    public string? SystemPrompt { get; init; }

    /// <summary>Extra chat template variables (TRL's <c>chat_template_kwargs</c>, e.g. <c>enable_thinking</c>). Default none.</summary>
    public IReadOnlyDictionary<string, object?>? ChatTemplateArguments { get; init; }

    /// <summary>
    /// Longest prompt in tokens; a longer one is skipped, never cut (TRL cuts from the left, which can drop the
    /// instructions). Null (the default): no limit.
    /// </summary>
    public int? MaxPromptLength { get; init; }

    /// <summary>Checks the options; the message names the first one out of range and the fix.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="MaxPromptLength"/> is below 1.</exception>
    public void Validate()
    {
        if (MaxPromptLength is < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxPromptLength), MaxPromptLength,
                $"'{nameof(MaxPromptLength)}' is {MaxPromptLength}: it must be at least 1, or null for no limit.");
    }
}

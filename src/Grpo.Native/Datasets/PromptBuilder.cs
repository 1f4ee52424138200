using Grpo.Native.Tokenization;

namespace Grpo.Native.Datasets;

/// <summary>
/// Turns a dataset row's prompt into the token ids a model is prompted with, as TRL does:
/// <list type="bullet">
/// <item>a conversational prompt is rendered with the tokenizer's chat template with the generation prompt
/// (the header of the assistant's reply) appended, and encoded without added special tokens (the template writes
/// its own BOS);</item>
/// <item>a standard prompt, on a tokenizer with a chat template, becomes one user message and is rendered the
/// same way; with <see cref="PromptFormatOptions.UseChatTemplate"/> false, or a tokenizer without a template,
/// its text is encoded as it is, with the tokenizer's special tokens;</item>
/// <item><see cref="PromptFormatOptions.SystemPrompt"/> is put first unless the conversation already starts with
/// a system message (the row's own wins);</item>
/// <item>a prompt longer than <see cref="PromptFormatOptions.MaxPromptLength"/> tokens is not used
/// (<see cref="Build"/> returns null) rather than cut.</item>
/// </list>
/// </summary>
public sealed class PromptBuilder
{
    private readonly ITokenizer _tokenizer;

    /// <summary>A builder for <paramref name="tokenizer"/>.</summary>
    /// <param name="tokenizer">The policy model's tokenizer.</param>
    /// <param name="options">How prompts are formatted.</param>
    /// <exception cref="ArgumentException">A system prompt is set but no chat template will be used to render it.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (see <see cref="PromptFormatOptions.Validate"/>).</exception>
    public PromptBuilder(ITokenizer tokenizer, PromptFormatOptions options)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.SystemPrompt is not null && !(options.UseChatTemplate && tokenizer.HasChatTemplate))
            throw new ArgumentException(
                $"{nameof(PromptFormatOptions.SystemPrompt)} is set, but " +
                (options.UseChatTemplate ? $"the tokenizer ({tokenizer.GetType().Name}) has no chat template" : $"{nameof(PromptFormatOptions.UseChatTemplate)} is false") +
                ", so there is no system message to put it in: use a tokenizer with a chat template, or write the instructions into the prompts.",
                nameof(options));
        _tokenizer = tokenizer;
        Options = options;
    }

    /// <summary>The options the builder was made with.</summary>
    public PromptFormatOptions Options { get; }

    /// <summary>The prompt of <paramref name="row"/> as tokens, or null when it is longer than <see cref="PromptFormatOptions.MaxPromptLength"/>.</summary>
    /// <exception cref="InvalidOperationException">The row is conversational but no chat template is used; the message says what to change.</exception>
    public PromptTokens? Build(PromptRow row)
    {
        var tokens = Encode(row);
        return Fits(tokens) ? tokens : null;
    }

    /// <summary>The prompt of <paramref name="row"/> as tokens, however long.</summary>
    /// <exception cref="InvalidOperationException">The row is conversational but no chat template is used; the message says what to change.</exception>
    public PromptTokens Encode(PromptRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.Messages is { } conversation)
        {
            if (!Options.UseChatTemplate)
                throw new InvalidOperationException(
                    $"{row.Location} holds a conversation, which only a chat template can turn into text, but " +
                    $"{nameof(PromptFormatOptions.UseChatTemplate)} is false: set it to true, or use a dataset whose prompt column is text.");
            if (!_tokenizer.HasChatTemplate)
                throw new InvalidOperationException(
                    $"{row.Location} holds a conversation, but the tokenizer ({_tokenizer.GetType().Name}) has no chat template: use the " +
                    "tokenizer of a chat model (its tokenizer_config.json or chat_template.jinja holds one), or a dataset whose prompt column is text.");
            return Render(conversation);
        }
        string text = row.Text!;
        if (Options.UseChatTemplate && _tokenizer.HasChatTemplate)
            return Render([new ChatMessage("user", text)]);
        return new PromptTokens(_tokenizer.Encode(text, addSpecialTokens: true), text);
    }

    /// <summary>True when <paramref name="tokens"/> is within <see cref="PromptFormatOptions.MaxPromptLength"/>.</summary>
    public bool Fits(PromptTokens tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        return Options.MaxPromptLength is not { } max || tokens.TokenIds.Count <= max;
    }

    private PromptTokens Render(IReadOnlyList<ChatMessage> conversation)
    {
        IReadOnlyList<ChatMessage> messages = Options.SystemPrompt is { } system && conversation[0].Role != "system"
            ? [new ChatMessage("system", system), .. conversation]
            : conversation;
        string text = _tokenizer.ApplyChatTemplate(messages, addGenerationPrompt: true, Options.ChatTemplateArguments);
        return new PromptTokens(_tokenizer.Encode(text, addSpecialTokens: false), text);
    }
}

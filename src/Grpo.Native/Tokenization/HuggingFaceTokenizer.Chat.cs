using Grpo.Native.Checkpoints;
using Grpo.Native.Tokenization.Templates;

namespace Grpo.Native.Tokenization;

/// <summary>The chat template of a Hugging Face tokenizer, rendered as <c>transformers</c>' <c>apply_chat_template</c> does.</summary>
public sealed partial class HuggingFaceTokenizer
{
    /// <summary>transformers' SPECIAL_TOKENS_ATTRIBUTES: the special tokens every template sees by name (those that are set).</summary>
    private static readonly string[] TemplateSpecialTokens = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    private readonly ChatTemplate? _chatTemplate;
    private readonly string _folder;

    /// <inheritdoc />
    public bool HasChatTemplate => _chatTemplate is not null;

    /// <summary>
    /// Renders <paramref name="messages"/> as <c>apply_chat_template(messages, tokenize=False, add_generation_prompt=...,
    /// **templateArguments)</c>: the template sees <c>messages</c>, <c>add_generation_prompt</c>, <c>tools</c> and
    /// <c>documents</c> (None), the special tokens that are set (<c>bos_token</c>, <c>eos_token</c>, ...,
    /// <c>additional_special_tokens</c>), and <paramref name="templateArguments"/> last (they override the others,
    /// e.g. Qwen3's <c>enable_thinking</c>, or <c>date_string</c> for templates that would call <c>strftime_now</c>).
    /// Encode the result with <c>addSpecialTokens: false</c>: the template wrote its own BOS.
    /// </summary>
    /// <exception cref="NotSupportedException">The folder has no chat template.</exception>
    /// <exception cref="TemplateRaisedException">The template rejected the conversation through <c>raise_exception</c>; the message is the template's.</exception>
    /// <exception cref="ChatTemplateException">The template failed while rendering (e.g. a method called on the wrong type); the message names the template line.</exception>
    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt,
        IReadOnlyDictionary<string, object?>? templateArguments = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_chatTemplate is null)
            throw new NotSupportedException(
                $"'{_folder}' has no chat template (neither {TokenizerFolder.TemplateFile} nor a chat_template in {TokenizerFolder.ConfigFile}); encode the prompt text instead.");
        var variables = new Dictionary<string, object?>();
        foreach (string name in TemplateSpecialTokens)
            if (TokenizerFolder.SpecialTokenText(_config, name) is { } text) variables[name] = text;
        if (_config["additional_special_tokens"] is System.Text.Json.Nodes.JsonArray additional)
            variables["additional_special_tokens"] = additional
                .Select(token => (object?)(token is System.Text.Json.Nodes.JsonObject o ? o["content"]?.GetValue<string>() : token?.GetValue<string>())).ToList();
        if (templateArguments is not null)
            foreach (var (name, value) in templateArguments) variables[name] = value;
        variables["messages"] = messages.Select(m => (object?)m.ToTemplateValue()).ToList();
        variables["add_generation_prompt"] = addGenerationPrompt;
        variables.TryAdd("tools", null);
        variables.TryAdd("documents", null);
        return _chatTemplate.Render(variables);
    }

    /// <summary>The folder's chat template, parsed when the folder is opened so that a bad one is found before a run starts.</summary>
    private static ChatTemplate? ParseChatTemplate(TokenizerFolder files)
    {
        if (files.ChatTemplate is null) return null;
        try
        {
            return ChatTemplate.Parse(files.ChatTemplate);
        }
        catch (ChatTemplateException e)
        {
            string file = File.Exists(Path.Combine(files.Folder, TokenizerFolder.TemplateFile))
                ? Path.Combine(files.Folder, TokenizerFolder.TemplateFile) : files.ConfigPath;
            throw new CheckpointFormatException($"'{file}': the chat template cannot be used: {e.Message}", e);
        }
    }
}

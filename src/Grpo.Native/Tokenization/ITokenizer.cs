namespace Grpo.Native.Tokenization;

/// <summary>
/// Turns text into token ids and back: what the trainer needs to build prompts and show completions to
/// reward functions. <see cref="CharacterTokenizer"/> serves the built-in tasks;
/// <see cref="HuggingFaceTokenizer"/> a Hugging Face model folder, with Hugging Face's exact semantics.
/// </summary>
public interface ITokenizer
{
    /// <summary>Number of token ids (the model's vocabulary must be at least this large).</summary>
    int VocabularySize { get; }

    /// <summary>
    /// Token ids of <paramref name="text"/> as the model's tokenizer encodes a text by default (a Hugging Face
    /// tokenizer adds the special tokens of its post-processor, as <c>tokenizer(text)</c> does).
    /// </summary>
    /// <exception cref="ArgumentException">The text holds something the tokenizer cannot encode; the message names it.</exception>
    int[] Encode(string text);

    /// <summary>Token ids of <paramref name="text"/>, with or without the special tokens the tokenizer adds around a text.</summary>
    int[] Encode(string text, bool addSpecialTokens) => Encode(text);

    /// <summary>Text of <paramref name="tokens"/> without special tokens: what reward functions and people read.</summary>
    string Decode(IReadOnlyList<int> tokens);

    /// <summary>Text of <paramref name="tokens"/>; with <paramref name="skipSpecialTokens"/> false, special tokens appear as their text.</summary>
    string Decode(IReadOnlyList<int> tokens, bool skipSpecialTokens) => Decode(tokens);

    /// <summary>The ids of the beginning-, end-, padding- and unknown-token (null where the tokenizer has none).</summary>
    SpecialTokenIds SpecialTokens => SpecialTokenIds.None;

    /// <summary>True when <see cref="ApplyChatTemplate"/> can render conversations.</summary>
    bool HasChatTemplate => false;

    /// <summary>
    /// Renders <paramref name="messages"/> with the tokenizer's chat template, as <c>transformers</c>'
    /// <c>apply_chat_template(messages, tokenize=False, add_generation_prompt=...)</c> does; encode the result
    /// with <c>addSpecialTokens: false</c> (the template writes its own).
    /// </summary>
    /// <param name="messages">The conversation.</param>
    /// <param name="addGenerationPrompt">Append the header that opens the assistant's reply.</param>
    /// <param name="templateArguments">Extra template variables (TRL's <c>chat_template_kwargs</c>, e.g. <c>enable_thinking</c>).</param>
    /// <exception cref="NotSupportedException">The tokenizer has no chat template.</exception>
    string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt,
        IReadOnlyDictionary<string, object?>? templateArguments = null) =>
        throw new NotSupportedException($"{GetType().Name} has no chat template; encode the prompt text instead.");
}

/// <summary>Ids of a tokenizer's special tokens; null where it has none.</summary>
public sealed record SpecialTokenIds(int? Bos, int? Eos, int? Pad, int? Unk)
{
    /// <summary>No special tokens.</summary>
    public static SpecialTokenIds None { get; } = new(null, null, null, null);
}

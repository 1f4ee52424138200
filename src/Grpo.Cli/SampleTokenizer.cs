using Grpo.Native.Tokenization;

namespace Grpo.Cli;

/// <summary>
/// The tokenizer of a model folder for <c>grpo sample</c>: a Hugging Face tokenizer (tokenizer.json) when the folder
/// has one, else the character tokenizer that <c>grpo train</c> saves with its built-in tasks; and how each turns
/// prompt text into the model's prompt tokens.
/// </summary>
internal sealed class SampleTokenizer : IDisposable
{
    private SampleTokenizer(ITokenizer tokenizer) => Tokenizer = tokenizer;

    public ITokenizer Tokenizer { get; }

    /// <summary>The folder's tokenizer, or null when it has none.</summary>
    public static SampleTokenizer? Load(string folder)
    {
        if (HuggingFaceTokenizer.IsPresent(folder)) return new SampleTokenizer(HuggingFaceTokenizer.Load(folder));
        return CharacterTokenizer.TryLoad(folder) is { } characters ? new SampleTokenizer(characters) : null;
    }

    /// <summary>
    /// A Hugging Face tokenizer with a chat template renders the text as one user message with the generation
    /// prompt (and adds no special tokens of its own, as apply_chat_template(tokenize=True)); without one, or with
    /// <paramref name="useChatTemplate"/> false, the text is encoded as the tokenizer does by default. The built-in
    /// tasks' character tokenizer starts prompts with its BOS, as they were trained.
    /// </summary>
    public int[] PromptTokens(string text, bool useChatTemplate)
    {
        if (Tokenizer is CharacterTokenizer characters) return [characters.Bos, .. characters.Encode(text)];
        if (useChatTemplate && Tokenizer.HasChatTemplate)
            return Tokenizer.Encode(Tokenizer.ApplyChatTemplate([new ChatMessage("user", text)], addGenerationPrompt: true), addSpecialTokens: false);
        return Tokenizer.Encode(text);
    }

    public void Dispose() => (Tokenizer as IDisposable)?.Dispose();
}

using Grpo.Native.Tokenization;

namespace Grpo.Native.Tests.Datasets;

/// <summary>
/// A character tokenizer (id = the character's code) with an optional fake chat template that renders
/// "&lt;s&gt;" then "&lt;|role|&gt;content\n" per message, then "&lt;|assistant|&gt;" for the generation prompt.
/// It records every call so tests can check what the prompt builder asked for.
/// </summary>
internal sealed class FakeChatTokenizer(bool hasChatTemplate) : ITokenizer
{
    /// <summary>The id added before a text when special tokens are requested.</summary>
    public const int Bos = 1_000_000;

    public List<(IReadOnlyList<ChatMessage> Messages, bool AddGenerationPrompt, IReadOnlyDictionary<string, object?>? Arguments)> TemplateCalls { get; } = [];

    public List<(string Text, bool AddSpecialTokens)> EncodeCalls { get; } = [];

    public int VocabularySize => Bos + 1;

    public bool HasChatTemplate => hasChatTemplate;

    public int[] Encode(string text) => Encode(text, addSpecialTokens: true);

    public int[] Encode(string text, bool addSpecialTokens)
    {
        EncodeCalls.Add((text, addSpecialTokens));
        var ids = text.Select(c => (int)c);
        return (addSpecialTokens ? ids.Prepend(Bos) : ids).ToArray();
    }

    public string Decode(IReadOnlyList<int> tokens) => new(tokens.Where(t => t != Bos).Select(t => (char)t).ToArray());

    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt,
        IReadOnlyDictionary<string, object?>? templateArguments = null)
    {
        if (!hasChatTemplate) throw new NotSupportedException("no chat template");
        TemplateCalls.Add((messages, addGenerationPrompt, templateArguments));
        return "<s>" + string.Concat(messages.Select(m => $"<|{m.Role}|>{m.Content}\n")) + (addGenerationPrompt ? "<|assistant|>" : "");
    }
}

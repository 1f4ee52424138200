namespace Grpo.Native.Tokenization;

/// <summary>Turns text into token ids and back: what the trainer needs to build prompts and show completions to reward functions.</summary>
public interface ITokenizer
{
    /// <summary>Number of token ids (the model's vocabulary must be at least this large).</summary>
    int VocabularySize { get; }

    /// <summary>Token ids of <paramref name="text"/>.</summary>
    /// <exception cref="ArgumentException">The text holds something the tokenizer cannot encode; the message names it.</exception>
    int[] Encode(string text);

    /// <summary>Text of <paramref name="tokens"/>.</summary>
    string Decode(IReadOnlyList<int> tokens);
}

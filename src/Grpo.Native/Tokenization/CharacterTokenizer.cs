using System.Text.Json;
using Grpo.Native.Checkpoints;

namespace Grpo.Native.Tokenization;

/// <summary>
/// One token per character of a fixed alphabet, plus special tokens that are never produced by
/// <see cref="Encode"/> (BOS and EOS). Small and exact: the built-in tasks use it so a tiny model
/// trained from scratch can learn them.
/// </summary>
public sealed class CharacterTokenizer : ITokenizer
{
    private readonly Dictionary<char, int> _ids = new();
    private readonly string _alphabet;

    /// <summary>A tokenizer over <paramref name="alphabet"/> (distinct characters); ids 0 and 1 are BOS and EOS.</summary>
    public CharacterTokenizer(string alphabet)
    {
        ArgumentException.ThrowIfNullOrEmpty(alphabet);
        _alphabet = alphabet;
        for (int i = 0; i < alphabet.Length; i++)
            if (!_ids.TryAdd(alphabet[i], i + SpecialCount))
                throw new ArgumentException($"The alphabet repeats '{alphabet[i]}' (at {i}); each character needs one id.", nameof(alphabet));
    }

    private const int SpecialCount = 2;

    /// <summary>Beginning of sequence: starts every prompt.</summary>
    public int Bos => 0;

    /// <summary>End of sequence: the stop token of completions.</summary>
    public int Eos => 1;

    /// <inheritdoc />
    public int VocabularySize => _alphabet.Length + SpecialCount;

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new int[text.Length];
        for (int i = 0; i < text.Length; i++)
            ids[i] = _ids.TryGetValue(text[i], out int id) ? id
                : throw new ArgumentException($"'{text[i]}' (at {i} of \"{text}\") is not in the alphabet \"{_alphabet}\".", nameof(text));
        return ids;
    }

    /// <summary>The file <see cref="Save"/> writes into a model folder.</summary>
    public const string FileName = "grpo_tokenizer.json";

    /// <summary>The alphabet (ids 2, 3, ...).</summary>
    public string Alphabet => _alphabet;

    /// <summary>Writes <see cref="FileName"/> into <paramref name="modelFolder"/> (atomically), so <c>grpo sample</c> can encode text for the model.</summary>
    public void Save(string modelFolder) =>
        AtomicFile.WriteAllText(Path.Combine(modelFolder, FileName),
            JsonSerializer.Serialize(new Dictionary<string, string> { ["type"] = "character", ["alphabet"] = _alphabet }));

    /// <summary>The tokenizer saved in <paramref name="modelFolder"/>, or null when there is none.</summary>
    /// <exception cref="CheckpointFormatException">The file exists but is not a character tokenizer.</exception>
    public static CharacterTokenizer? TryLoad(string modelFolder)
    {
        string file = Path.Combine(modelFolder, FileName);
        if (!File.Exists(file)) return null;
        try
        {
            var fields = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(file));
            if (fields is null || !fields.TryGetValue("type", out var type) || type != "character" || !fields.TryGetValue("alphabet", out var alphabet))
                throw new CheckpointFormatException($"'{file}' is not a character tokenizer (type and alphabet expected).");
            return new CharacterTokenizer(alphabet);
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new CheckpointFormatException($"'{file}' is corrupt: {e.Message}");
        }
    }

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var chars = new char[tokens.Count];
        int n = 0;
        foreach (int id in tokens)
        {
            if (id == Bos || id == Eos) continue; // specials have no text
            if (id < SpecialCount || id >= VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(tokens), id, $"Token id {id} is outside [0, {VocabularySize}).");
            chars[n++] = _alphabet[id - SpecialCount];
        }
        return new string(chars, 0, n);
    }
}

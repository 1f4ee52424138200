using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Grpo.Native.Checkpoints;
using NativeTokenizer = Tokenizers.DotNet.Tokenizer;

namespace Grpo.Native.Tokenization;

/// <summary>
/// A Hugging Face model folder's tokenizer with <c>transformers</c>' semantics: <c>Encode(text)</c> equals
/// <c>tokenizer(text)["input_ids"]</c>, <c>Decode(ids, skipSpecialTokens: false)</c> equals <c>tokenizer.decode(ids)</c>,
/// and <see cref="ApplyChatTemplate"/> equals <c>apply_chat_template(messages, tokenize=False, ...)</c>.
/// <para>
/// The text-to-ids work is Hugging Face's own Rust tokenizers (through Tokenizers.DotNet), loaded from the
/// folder's <c>tokenizer.json</c> with its post-processor taken out; what <c>transformers</c> layers on top is
/// done here: the post-processor's special tokens (rebuilt from <c>add_bos_token</c>/<c>add_eos_token</c> for the
/// Llama and Gemma tokenizer classes, as their fast tokenizers do), skipping special tokens when decoding, and
/// <c>clean_up_tokenization_spaces</c>.
/// </para>
/// </summary>
public sealed partial class HuggingFaceTokenizer : ITokenizer, IDisposable
{
    private readonly NativeTokenizer _native;
    private readonly TokenizerPostProcessor _postProcessor;
    private readonly HashSet<int> _specialIds;
    private readonly bool _cleanUpSpaces;
    private readonly Dictionary<string, int> _addedTokens;
    private readonly JsonObject _config;
    private bool _disposed;

    private HuggingFaceTokenizer(TokenizerFolder files)
    {
        string file = files.TokenizerPath;
        var model = files.Tokenizer["model"]!.AsObject();
        _addedTokens = new Dictionary<string, int>(StringComparer.Ordinal);
        _specialIds = [];
        int largest = LargestVocabularyId(model, file);
        foreach (var token in files.Tokenizer["added_tokens"]?.AsArray() ?? [])
        {
            string content = token?["content"]?.GetValue<string>() ?? throw new CheckpointFormatException($"'{file}': an added token has no \"content\".");
            int id = token["id"]?.GetValue<int>() ?? throw new CheckpointFormatException($"'{file}': added token '{content}' has no \"id\".");
            if (id < 0) throw new CheckpointFormatException($"'{file}': added token '{content}' has the negative id {id}.");
            _addedTokens[content] = id;
            if (token["special"]?.GetValue<bool>() == true) _specialIds.Add(id);
            largest = Math.Max(largest, id);
        }
        VocabularySize = largest + 1;
        _config = files.Config;
        string? ConfigToken(string name) => TokenizerFolder.SpecialTokenText(_config, name);
        SpecialTokens = new SpecialTokenIds(IdOf(ConfigToken("bos_token"), model), IdOf(ConfigToken("eos_token"), model),
            IdOf(ConfigToken("pad_token"), model), IdOf(ConfigToken("unk_token"), model));
        _postProcessor = RebuildsPostProcessor(_config)
            ? LlamaStylePostProcessor(files)
            : TokenizerPostProcessor.Parse(files.Tokenizer["post_processor"], file);
        _cleanUpSpaces = _config["clean_up_tokenization_spaces"]?.GetValue<bool>() ?? false;
        _native = LoadNative(files.Tokenizer, file);
        _folder = files.Folder;
        _chatTemplate = ParseChatTemplate(files);
    }

    /// <summary>Loads the tokenizer of the Hugging Face model folder <paramref name="folder"/> (weights are not needed).</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="CheckpointFormatException">A tokenizer file is missing, truncated or corrupt, or its chat template does not parse; the message names the file.</exception>
    /// <exception cref="NotSupportedException">The native tokenizer library is not available for this platform.</exception>
    public static HuggingFaceTokenizer Load(string folder) => new(TokenizerFolder.Read(folder));

    /// <summary>True when <paramref name="folder"/> holds a Hugging Face tokenizer (tokenizer.json, or vocab.json and merges.txt).</summary>
    public static bool IsPresent(string folder) =>
        File.Exists(Path.Combine(folder, TokenizerFolder.TokenizerFile))
        || (File.Exists(Path.Combine(folder, "vocab.json")) && File.Exists(Path.Combine(folder, "merges.txt")));

    /// <summary>Largest token id plus one, added tokens included (<c>len(tokenizer)</c>).</summary>
    public int VocabularySize { get; }

    /// <inheritdoc />
    public SpecialTokenIds SpecialTokens { get; }

    /// <summary>Ids of every special token (added tokens marked special): what <c>skip_special_tokens</c> drops.</summary>
    public IReadOnlySet<int> SpecialTokenIdSet => _specialIds;

    /// <summary>Whether decoding removes spaces before punctuation (<c>clean_up_tokenization_spaces</c> of tokenizer_config.json).</summary>
    public bool CleansUpTokenizationSpaces => _cleanUpSpaces;

    /// <summary>As <c>tokenizer(text)["input_ids"]</c>: with the post-processor's special tokens.</summary>
    public int[] Encode(string text) => Encode(text, addSpecialTokens: true);

    /// <summary>As <c>tokenizer(text, add_special_tokens=...)["input_ids"]</c>.</summary>
    public int[] Encode(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint[] raw = _native.Encode(text);
        var ids = new int[raw.Length];
        for (int i = 0; i < raw.Length; i++) ids[i] = checked((int)raw[i]);
        return addSpecialTokens ? _postProcessor.Apply(ids) : ids;
    }

    /// <summary>
    /// A completion's text without special tokens, as <c>tokenizer.decode(ids, skip_special_tokens=True)</c>: what
    /// reward functions read. Ids past the tokenizer's vocabulary decode to nothing, as in transformers: a model's
    /// embedding often has padding rows without a token (Qwen2.5: 151,936 rows for 151,665 tokens), and a policy
    /// can sample them (a randomly initialised one often does), which must not stop a run.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is negative.</exception>
    public string Decode(IReadOnlyList<int> tokens) => Decode(tokens, skipSpecialTokens: true, idsPastTheVocabularyAreEmpty: true);

    /// <summary>As <c>tokenizer.decode(ids, skip_special_tokens=...)</c>; special tokens appear as their text unless skipped.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside [0, <see cref="VocabularySize"/>); the message names its position.</exception>
    public string Decode(IReadOnlyList<int> tokens, bool skipSpecialTokens) => Decode(tokens, skipSpecialTokens, idsPastTheVocabularyAreEmpty: false);

    private string Decode(IReadOnlyList<int> tokens, bool skipSpecialTokens, bool idsPastTheVocabularyAreEmpty)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var kept = new List<uint>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            int id = tokens[i];
            if (idsPastTheVocabularyAreEmpty && id >= VocabularySize) continue;
            if (id < 0 || id >= VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(tokens), id, $"Token id {id} (at {i}) is outside the tokenizer's vocabulary [0, {VocabularySize}).");
            if (!(skipSpecialTokens && _specialIds.Contains(id))) kept.Add((uint)id);
        }
        string text = kept.Count == 0 ? "" : _native.Decode([.. kept]);
        return _cleanUpSpaces ? CleanUpTokenizationSpaces(text) : text;
    }

    /// <summary>transformers' <c>clean_up_tokenization</c>: removes the space before punctuation and English contractions.</summary>
    public static string CleanUpTokenizationSpaces(string text) => text
        .Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",").Replace(" ' ", "'")
        .Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re");

    /// <summary>The id of a token's text (an added token or a vocabulary entry), or null.</summary>
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (_addedTokens.TryGetValue(token, out int id)) return id;
        int[] ids = Encode(token, addSpecialTokens: false);
        return ids.Length == 1 && Decode(ids, skipSpecialTokens: false) == token ? ids[0] : null;
    }

    /// <summary>Frees the native tokenizer.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _native.Dispose();
    }

    private int? IdOf(string? token, JsonObject model)
    {
        if (token is null) return null;
        if (_addedTokens.TryGetValue(token, out int id)) return id;
        return model["vocab"] is JsonObject vocab && vocab[token] is { } value ? value.GetValue<int>() : null;
    }

    /// <summary>The largest id of the model's own vocabulary: a {token: id} map (BPE, WordPiece, WordLevel) or a [[piece, score], ...] list (Unigram).</summary>
    private static int LargestVocabularyId(JsonObject model, string file) => model["vocab"] switch
    {
        JsonObject map => map.Count == 0 ? -1 : map.Max(entry => entry.Value?.GetValue<int>()
            ?? throw new CheckpointFormatException($"'{file}': vocabulary entry '{entry.Key}' has no id.")),
        JsonArray list => list.Count - 1,
        _ => throw new CheckpointFormatException($"'{file}': the model has no \"vocab\"."),
    };

    /// <summary>
    /// transformers' LlamaTokenizerFast and GemmaTokenizerFast (and their CodeLlama/Cohere kin) rebuild the
    /// post-processor in their constructor from add_bos_token (default true) and add_eos_token (default false),
    /// whatever tokenizer.json says: so a DeepSeek-V3 folder (LlamaTokenizerFast, add_bos_token true) gets a BOS.
    /// </summary>
    private static bool RebuildsPostProcessor(JsonObject config) =>
        config["tokenizer_class"]?.GetValue<string>() is { } name
        && name.Replace("Fast", "", StringComparison.Ordinal) is "LlamaTokenizer" or "CodeLlamaTokenizer" or "GemmaTokenizer" or "CohereTokenizer";

    private TokenizerPostProcessor LlamaStylePostProcessor(TokenizerFolder files)
    {
        bool addBos = _config["add_bos_token"]?.GetValue<bool>() ?? true;
        bool addEos = _config["add_eos_token"]?.GetValue<bool>() ?? false;
        int[] Token(bool add, int? id, string name) => !add ? []
            : id is { } value ? [value]
            : throw new CheckpointFormatException($"'{files.ConfigPath}': {name} is needed (add_{name} is true) but has no id in the tokenizer.");
        return TokenizerPostProcessor.Around(Token(addBos, SpecialTokens.Bos, "bos_token"), Token(addEos, SpecialTokens.Eos, "eos_token"));
    }

    /// <summary>
    /// The Rust tokenizer of <paramref name="tokenizer"/> without what this class does itself: no post-processor,
    /// no truncation or padding (transformers turns both off for a plain call), and added tokens not marked special,
    /// so that the native decode (which always skips special tokens) keeps them; skipping is done here.
    /// </summary>
    private static NativeTokenizer LoadNative(JsonObject tokenizer, string file)
    {
        var plain = tokenizer.DeepClone().AsObject();
        plain["post_processor"] = null;
        plain["truncation"] = null;
        plain["padding"] = null;
        foreach (var token in plain["added_tokens"]?.AsArray() ?? [])
            if (token is JsonObject added) added["special"] = false;
        string temporary = Path.Combine(Path.GetTempPath(), $"grpo-tokenizer-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(temporary, plain.ToJsonString());
            return new NativeTokenizer(temporary);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new NotSupportedException(
                $"Hugging Face tokenizers need the native library of Tokenizers.DotNet, which is served for linux-x64 only; this is {RuntimeInformation.RuntimeIdentifier}.", e);
        }
        catch (Exception e) when (e is not IOException and not UnauthorizedAccessException and not NotSupportedException)
        {
            throw new CheckpointFormatException($"'{file}' could not be loaded by Hugging Face's tokenizers: {e.Message}", e);
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Grpo.Native.Checkpoints;

namespace Grpo.Native.Tokenization;

/// <summary>
/// The tokenizer files of a Hugging Face model folder, read and checked: <c>tokenizer.json</c> (or GPT-2's
/// <c>vocab.json</c> + <c>merges.txt</c>, turned into the <c>tokenizer.json</c> that <c>transformers</c>' GPT-2
/// converter builds), <c>tokenizer_config.json</c> and the chat template (<c>chat_template.jinja</c>, else the
/// config's <c>chat_template</c>). Every problem names the file.
/// </summary>
internal sealed class TokenizerFolder
{
    public const string TokenizerFile = "tokenizer.json", ConfigFile = "tokenizer_config.json", TemplateFile = "chat_template.jinja";

    private TokenizerFolder(string folder, string tokenizerPath, JsonObject tokenizer, JsonObject config, string? chatTemplate)
    {
        Folder = folder;
        TokenizerPath = tokenizerPath;
        Tokenizer = tokenizer;
        Config = config;
        ChatTemplate = chatTemplate;
    }

    public string Folder { get; }

    /// <summary>The file the tokenizer came from (for messages).</summary>
    public string TokenizerPath { get; }

    /// <summary>tokenizer.json's content.</summary>
    public JsonObject Tokenizer { get; }

    /// <summary>tokenizer_config.json's content (empty when the folder has none).</summary>
    public JsonObject Config { get; }

    /// <summary>The chat template's source, or null.</summary>
    public string? ChatTemplate { get; }

    public string ConfigPath => Path.Combine(Folder, ConfigFile);

    /// <summary>Reads the tokenizer files of <paramref name="folder"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="CheckpointFormatException">A file is missing, truncated or corrupt; the message names it.</exception>
    public static TokenizerFolder Read(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Model folder '{folder}' does not exist.");
        string configPath = Path.Combine(folder, ConfigFile);
        var config = File.Exists(configPath) ? ParseObject(configPath, File.ReadAllText(configPath)) : new JsonObject();

        string tokenizerPath = Path.Combine(folder, TokenizerFile);
        JsonObject tokenizer;
        if (File.Exists(tokenizerPath)) tokenizer = ParseObject(tokenizerPath, File.ReadAllText(tokenizerPath));
        else if (File.Exists(Path.Combine(folder, "vocab.json")) && File.Exists(Path.Combine(folder, "merges.txt")))
        {
            tokenizerPath = Path.Combine(folder, "vocab.json");
            // GPT2TokenizerFast's constructor defaults: <|endoftext|> is the BOS, EOS and unknown token.
            foreach (string name in new[] { "bos_token", "eos_token", "unk_token" })
                if (!config.ContainsKey(name)) config[name] = "<|endoftext|>";
            tokenizer = Gpt2TokenizerJson(folder, config);
        }
        else
            throw new CheckpointFormatException(
                $"'{folder}' has no tokenizer: a Hugging Face tokenizer folder holds {TokenizerFile} (or GPT-2's vocab.json and merges.txt).");
        if (tokenizer["model"] is not JsonObject)
            throw new CheckpointFormatException($"'{tokenizerPath}' has no \"model\" object: it is not a Hugging Face tokenizer.json.");

        string templatePath = Path.Combine(folder, TemplateFile);
        string? template = File.Exists(templatePath) ? File.ReadAllText(templatePath) : ConfigTemplate(config, configPath);
        return new TokenizerFolder(folder, tokenizerPath, tokenizer, config, template);
    }

    private static JsonObject ParseObject(string path, string text)
    {
        try
        {
            return JsonNode.Parse(text) as JsonObject
                ?? throw new CheckpointFormatException($"'{path}' does not hold a JSON object.");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"'{path}' is not valid JSON (truncated or corrupt?): {e.Message}", e);
        }
    }

    /// <summary>The config's chat_template: a string, or a list of {name, template} where "default" is the one used.</summary>
    private static string? ConfigTemplate(JsonObject config, string configPath) => config["chat_template"] switch
    {
        null => null,
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonArray named => named.FirstOrDefault(t => t?["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>()
            ?? throw new CheckpointFormatException($"'{configPath}': chat_template is a list of named templates without a \"default\" one."),
        _ => throw new CheckpointFormatException($"'{configPath}': chat_template is neither a string nor a list of named templates."),
    };

    /// <summary>
    /// The tokenizer.json that transformers' GPT2Converter builds from vocab.json and merges.txt: byte-level BPE,
    /// ByteLevel pre-tokenizer (add_prefix_space from the config, default false) and decoder, and the config's
    /// special tokens (GPT-2's default &lt;|endoftext|&gt;) as added tokens.
    /// </summary>
    private static JsonObject Gpt2TokenizerJson(string folder, JsonObject config)
    {
        string vocabPath = Path.Combine(folder, "vocab.json"), mergesPath = Path.Combine(folder, "merges.txt");
        var vocab = ParseObject(vocabPath, File.ReadAllText(vocabPath));
        var merges = new JsonArray();
        foreach (string line in File.ReadLines(mergesPath))
        {
            if (line.StartsWith("#version", StringComparison.Ordinal) || line.Length == 0) continue;
            if (line.Split(' ').Length != 2)
                throw new CheckpointFormatException($"'{mergesPath}': the merge \"{line}\" is not two symbols separated by one space.");
            merges.Add(line);
        }
        bool addPrefixSpace = config["add_prefix_space"]?.GetValue<bool>() ?? false;
        var added = new JsonArray();
        foreach (string name in new[] { "bos_token", "eos_token", "unk_token", "pad_token" })
        {
            if (SpecialTokenText(config, name) is not { } content || added.Any(t => t!["content"]!.GetValue<string>() == content)) continue;
            int id = vocab[content]?.GetValue<int>()
                ?? throw new CheckpointFormatException($"'{vocabPath}' has no id for the special token '{content}' ({name}).");
            added.Add(new JsonObject
            {
                ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = true, ["special"] = true,
            });
        }
        JsonObject ByteLevel(bool prefix, bool trim) => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = prefix, ["trim_offsets"] = trim, ["use_regex"] = true };
        return new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null, ["added_tokens"] = added, ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(addPrefixSpace, true),
            ["post_processor"] = ByteLevel(true, false),
            ["decoder"] = ByteLevel(true, true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "", ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["vocab"] = vocab, ["merges"] = merges,
            },
        };
    }

    /// <summary>A special token of tokenizer_config.json: a string, an AddedToken object's "content", or null.</summary>
    public static string? SpecialTokenText(JsonObject config, string name) => config[name] switch
    {
        null => null,
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonObject token => token["content"]?.GetValue<string>(),
        _ => null,
    };
}

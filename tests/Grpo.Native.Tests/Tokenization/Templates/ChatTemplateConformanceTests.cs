using System.Text.Json;
using Grpo.Native.Tokenization.Templates;
using NUnit.Framework;

namespace Grpo.Native.Tests.Tokenization.Templates;

/// <summary>
/// Renders the real chat templates in data/ with the cases of data/expected.json (written by @huggingface/jinja and
/// checked against Python jinja2, see data/README.md) and requires byte-for-byte equal output, or the same
/// raise_exception message.
/// </summary>
public sealed class ChatTemplateConformanceTests
{
    private static readonly string DataFolder = Path.Combine(TestContext.CurrentContext.TestDirectory, "Tokenization", "Templates", "data");

    public static IEnumerable<TestCaseData> Cases()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(DataFolder, "expected.json")));
        foreach (var entry in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            string template = entry.GetProperty("template").GetString()!;
            string name = entry.GetProperty("case").GetString()!;
            yield return new TestCaseData(template, entry.GetProperty("variables").Clone(),
                    entry.TryGetProperty("expected", out var e) ? e.GetString() : null,
                    entry.TryGetProperty("error", out var error) ? error.GetString() : null)
                .SetName($"{template} {name}");
        }
    }

    private static readonly Dictionary<string, ChatTemplate> Parsed = new();

    private static ChatTemplate Template(string file)
    {
        lock (Parsed)
        {
            if (!Parsed.TryGetValue(file, out var template))
                Parsed[file] = template = ChatTemplate.Parse(File.ReadAllText(Path.Combine(DataFolder, file)));
            return template;
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void RendersAsTheReference(string template, JsonElement variables, string? expected, string? error)
    {
        // The variables go in as JsonElements, one of the forms callers use.
        var input = variables.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value);
        if (error is not null)
        {
            var raised = Assert.Throws<TemplateRaisedException>(() => Template(template).Render(input))!;
            Assert.That(raised.TemplateMessage, Is.EqualTo(error));
            return;
        }
        string actual = Template(template).Render(input);
        if (actual != expected) Assert.Fail(Difference(expected!, actual));
    }

    /// <summary>Where two renderings first differ, with the text around it escaped so whitespace is visible.</summary>
    internal static string Difference(string expected, string actual)
    {
        int at = 0;
        while (at < expected.Length && at < actual.Length && expected[at] == actual[at]) at++;
        static string Snippet(string s, int at) => JsonSerializer.Serialize(s.Substring(Math.Max(0, at - 40), Math.Min(s.Length, at + 40) - Math.Max(0, at - 40)));
        return $"first difference at char {at} (expected length {expected.Length}, actual {actual.Length})\n" +
               $"  expected: {Snippet(expected, at)}\n  actual:   {Snippet(actual, at)}";
    }
}

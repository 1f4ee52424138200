using Grpo.Native.Tokenization.Templates;
using NUnit.Framework;

namespace Grpo.Native.Tests.Tokenization.Templates;

/// <summary>
/// What the interpreter refuses, and how: unknown or unsupported constructs at parse time (naming the construct
/// and its line), runtime errors with their line, and the template's own raise_exception.
/// </summary>
public sealed class ChatTemplateErrorTests
{
    private static ChatTemplateException ParseError(string source) =>
        Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source))!;

    private static ChatTemplateException RenderError(string source, Dictionary<string, object?>? variables = null)
    {
        var template = ChatTemplate.Parse(source);
        return Assert.Throws<ChatTemplateException>(() => template.Render(variables ?? []))!;
    }

    [TestCase("line one\n{{ x | nosuchfilter }}", "nosuchfilter", 2)]
    [TestCase("{{ x | groupby('a') }}", "groupby", 1)]
    [TestCase("a\n\n{% if x is nosuchtest %}{% endif %}", "nosuchtest", 3)]
    [TestCase("{% for x in y %}\n{% frobnicate %}\n{% endfor %}", "frobnicate", 2)]
    [TestCase("{% include 'other.jinja' %}", "include", 1)]
    [TestCase("{% extends 'base' %}", "extends", 1)]
    [TestCase("x\n{% break %}", "break", 2)]
    [TestCase("{{ f(*args) }}", "*args", 1)]
    public void AnUnknownOrUnsupportedConstructFailsAtParseNamingIt(string source, string construct, int line)
    {
        var error = ParseError(source);
        Assert.That(error.Message, Does.Contain(construct));
        Assert.That(error.Line, Is.EqualTo(line));
        Assert.That(error, Is.Not.TypeOf<TemplateRaisedException>());
    }

    [TestCase("a\n{% if x %}\nb", "if", "endif", 2)]
    [TestCase("{% for m in messages %}\n{% if m %}x{% endif %}", "for", "endfor", 1)]
    [TestCase("{% macro m() %}x", "macro", "endmacro", 1)]
    [TestCase("{% set x %}abc", "set", "endset", 1)]
    public void AnUnterminatedBlockIsAParseErrorAtItsOpeningLine(string source, string tag, string end, int line)
    {
        var error = ParseError(source);
        Assert.That(error.Message, Does.Contain($"'{tag}'").And.Contain(end));
        Assert.That(error.Line, Is.EqualTo(line));
    }

    [TestCase("ok\n{{ 'abc' ", 2)]
    [TestCase("{{ 'unterminated }}", 1)]
    [TestCase("a {# comment", 1)]
    [TestCase("{{ (1 }}", 1)]
    [TestCase("{{ 1 + }}", 1)]
    [TestCase("{% if %}{% endif %}", 1)]
    [TestCase("{% endfor %}", 1)]
    [TestCase("{% raw %}never closed", 1)]
    public void SyntaxErrorsHaveALine(string source, int line)
    {
        Assert.That(ParseError(source).Line, Is.EqualTo(line));
    }

    [Test]
    public void RaiseExceptionThrowsTheTemplatesMessage()
    {
        var template = ChatTemplate.Parse("ok\n{% if n > 2 %}{{ raise_exception('Too many: ' ~ n) }}{% endif %}");
        var error = Assert.Throws<TemplateRaisedException>(() => template.Render(new Dictionary<string, object?> { ["n"] = 3 }))!;
        Assert.That(error.TemplateMessage, Is.EqualTo("Too many: 3"));
        Assert.That(error.Line, Is.EqualTo(2));
        Assert.That(template.Render(new Dictionary<string, object?> { ["n"] = 1 }), Is.EqualTo("ok\n"));
    }

    [TestCase("{{ 'abc'.nope() }}", "nope")]
    [TestCase("{{ '{}'.format(1) }}", "format")]
    [TestCase("{{ d.frobnicate(1) }}", "frobnicate")]
    public void CallingAMethodThatDoesNotExistFailsNamingIt(string source, string method)
    {
        var error = RenderError(source, new() { ["d"] = new Dictionary<string, object?>() });
        Assert.That(error.Message, Does.Contain(method));
        Assert.That(error.Line, Is.EqualTo(1));
    }

    [TestCase("{{ [1].append(2) }}", "unsafe")]
    [TestCase("{% set ns = namespace(items=[]) %}{{ ns.items.append(1) }}", "unsafe")]
    [TestCase("{{ {}.update({'a': 1}) }}", "unsafe")]
    public void MutatingMethodsAreRefusedAsTheImmutableSandboxRefusesThem(string source, string reason)
    {
        Assert.That(RenderError(source).Message, Does.Contain(reason));
    }

    [TestCase("{{ a.b }}", "'a' is undefined")]
    [TestCase("{{ d.x.y }}", "has no attribute 'x'")]
    [TestCase("{{ missing + 1 }}", "'missing' is undefined")]
    [TestCase("{{ 'a' + 1 }}", "can only concatenate str")]
    [TestCase("{{ 1 < 'a' }}", "not supported between")]
    [TestCase("{{ none | tojson }}{{ missing | tojson }}", "not JSON serializable")]
    [TestCase("{% set x = 1 %}{% set x.y = 2 %}", "namespace")]
    [TestCase("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "takes not more than 1")]
    [TestCase("{{ 1 // 0 }}", "division or modulo by zero")]
    [TestCase("{% for a, b in [[1, 2, 3]] %}{% endfor %}", "too many values to unpack")]
    [TestCase("{{ none is divisibleby 2 }}", "unsupported operand")]
    [TestCase("{{ {none: 1} }}", "dict key")]
    [TestCase("{{ ['a'] | map('nosuch') | list }}", "no filter named 'nosuch'")]
    [TestCase("{{ range(200000) | length }}", "Range too big")]
    [TestCase("{{ strftime_now('%Q') }}", "%Q")]
    public void RuntimeErrorsSayWhatWentWrong(string source, string reason)
    {
        var error = RenderError(source, new() { ["d"] = new Dictionary<string, object?>() });
        Assert.That(error.Message, Does.Contain(reason));
        Assert.That(error.Line, Is.EqualTo(1));
        Assert.That(error, Is.Not.TypeOf<TemplateRaisedException>());
    }

    [Test]
    public void RuntimeErrorsCarryTheLineOfTheFailingStatement()
    {
        var error = RenderError("first\n{% for m in messages %}\n{{ m.content + 1 }}\n{% endfor %}",
            new() { ["messages"] = new[] { new Dictionary<string, object?> { ["content"] = "text" } } });
        Assert.That(error.Line, Is.EqualTo(3));
        Assert.That(error.Message, Does.Contain("line 3"));
    }

    [Test]
    public void AVariableOfAnUnsupportedTypeIsRefusedNamingItsPath()
    {
        var template = ChatTemplate.Parse("{{ x }}");
        var error = Assert.Throws<ArgumentException>(() => template.Render(new Dictionary<string, object?>
        {
            ["messages"] = new object?[] { new Dictionary<string, object?> { ["when"] = DateTime.UnixEpoch } },
        }))!;
        Assert.That(error.Message, Does.Contain("messages[0].when"));
    }
}

namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// A Hugging Face chat template (the <c>chat_template</c> of a model's tokenizer_config.json), rendered exactly as
/// Python transformers' <c>apply_chat_template(messages, tokenize=False, ...)</c> renders it: jinja2's
/// ImmutableSandboxedEnvironment with <c>trim_blocks</c>, <c>lstrip_blocks</c> and loop controls, transformers'
/// <c>tojson</c>, <c>raise_exception</c> and <c>strftime_now</c>. Only the Jinja subset chat templates use is
/// interpreted; anything else fails with a <see cref="ChatTemplateException"/> naming it rather than rendering
/// differently. Parse once, render many times; rendering is thread-safe.
/// </summary>
/// <example>
/// <code>
/// var template = ChatTemplate.Parse(chatTemplateSource);
/// string prompt = template.Render(new Dictionary&lt;string, object?&gt;
/// {
///     ["messages"] = new[] { new Dictionary&lt;string, object?&gt; { ["role"] = "user", ["content"] = "Hi" } },
///     ["add_generation_prompt"] = true,
///     ["bos_token"] = "&lt;s&gt;",
/// });
/// </code>
/// </example>
public sealed class ChatTemplate
{
    private readonly List<Node> _body;

    private ChatTemplate(List<Node> body) => _body = body;

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <exception cref="ChatTemplateException">
    /// A syntax error, or a tag, filter or test this interpreter does not know or support; the message names it and
    /// <see cref="ChatTemplateException.Line"/> says where.
    /// </exception>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(TemplateParser.Parse(source));
    }

    /// <summary>
    /// Renders the template with top-level <paramref name="variables"/> (transformers passes <c>messages</c>,
    /// <c>tools</c>, <c>documents</c>, <c>add_generation_prompt</c>, the special tokens such as <c>bos_token</c>, and any
    /// extra keyword such as <c>enable_thinking</c> or <c>date_string</c>). Values may be null, bool, integers,
    /// floating-point numbers, strings, dictionaries with string keys, lists (any IEnumerable), and System.Text.Json
    /// <c>JsonElement</c>/<c>JsonNode</c> trees; they are copied, never modified. A float prints as the shortest text
    /// that reads back as it (0.1f as 0.1).
    /// </summary>
    /// <exception cref="TemplateRaisedException">The template called <c>raise_exception(message)</c>.</exception>
    /// <exception cref="ChatTemplateException">A runtime error (for example an undefined value used, a type error, an unsupported method), with its line.</exception>
    /// <exception cref="ArgumentException">A variable holds a value of a type templates cannot see.</exception>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var scope = new Scope(null);
        DefineGlobals(scope);
        foreach (var (name, value) in variables) scope.Set(name, PyConvert.FromClr(value, name));
        return new TemplateRenderer().Render(_body, scope);
    }

    private static void DefineGlobals(Scope scope)
    {
        scope.Set("raise_exception", new PyCallable("raise_exception", (args, kwargs) =>
            throw new TemplateRaiseSignal(PyText.Str(PyArgs.Bind("raise_exception", args, kwargs, ("message", PyArgs.Required))[0]))));
        scope.Set("strftime_now", new PyCallable("strftime_now", (args, kwargs) =>
            PyStrftime.Format(DateTime.Now, PyArgs.AsString(PyArgs.Bind("strftime_now", args, kwargs, ("format", PyArgs.Required))[0], "strftime_now", "format"))));
        scope.Set("range", new PyCallable("range", Range));
        scope.Set("namespace", new PyCallable("namespace", (args, kwargs) =>
        {
            var ns = new Namespace();
            if (args.Count > 1) throw new TemplateRuntimeException($"namespace expected at most 1 positional argument, got {args.Count}");
            if (args.Count == 1) Merge(ns.Attributes, args[0]);
            foreach (var (k, v) in kwargs) ns.Attributes[k] = v;
            return ns;
        }));
        scope.Set("dict", new PyCallable("dict", (args, kwargs) =>
        {
            var dict = new PyDict();
            if (args.Count > 1) throw new TemplateRuntimeException($"dict expected at most 1 argument, got {args.Count}");
            if (args.Count == 1) Merge(dict, args[0]);
            foreach (var (k, v) in kwargs) dict[k] = v;
            return dict;
        }));
        foreach (string name in new[] { "lipsum", "cycler", "joiner" })
            scope.Set(name, new PyCallable(name, (_, _) => throw new TemplateRuntimeException($"the global {name}() is not supported by this chat template interpreter")));
    }

    private static void Merge(PyDict target, object? source)
    {
        if (source is PyDict dict)
        {
            foreach (var (k, v) in dict) target[k] = v;
            return;
        }
        foreach (var pair in PyOps.Iterate(source))
        {
            var items = PyOps.Iterate(pair).ToList();
            if (items.Count != 2 || items[0] is null) throw new TemplateRuntimeException("dictionary update sequence element has the wrong length or a None key");
            target[items[0]!] = items[1];
        }
    }

    private static object? Range(List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        if (kwargs.Count > 0) throw new TemplateRuntimeException("range() takes no keyword arguments");
        if (args.Count is < 1 or > 3) throw new TemplateRuntimeException($"range expected 1 to 3 arguments, got {args.Count}");
        long[] a = args.Select((x, i) => PyArgs.AsInt(x, "range", $"argument {i + 1}")).ToArray();
        var range = a.Length == 1 ? new PyRange(0, a[0], 1) : new PyRange(a[0], a[1], a.Length == 3 ? a[2] : 1);
        if (range.Step == 0) throw new TemplateRuntimeException("range() arg 3 must not be zero");
        // jinja2's sandbox refuses ranges over MAX_RANGE items.
        if (range.Count > 100_000) throw new TemplateRuntimeException("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        return range;
    }
}

using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// jinja2's built-in filters as jinja2 3.1 defines them, plus transformers' own <c>tojson</c>. Filters jinja2 has
/// but this interpreter does not implement are refused at parse time by name, never rendered differently.
/// </summary>
internal static partial class TemplateFilters
{
    private delegate object? Filter(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs);

    private static readonly Dictionary<string, Filter> Filters = new(StringComparer.Ordinal)
    {
        ["abs"] = (v, a, k) => { PyArgs.Bind("abs", a, k); return v switch { bool b => (object)(b ? 1L : 0L), long l => Math.Abs(l), double d => Math.Abs(d), Undefined u => throw u.Fail(), _ => throw new TemplateRuntimeException($"bad operand type for abs(): '{PyOps.TypeName(v)}'") }; },
        ["attr"] = (v, a, k) => PyOps.GetAttr(v, PyArgs.AsString(PyArgs.Bind("attr", a, k, ("name", PyArgs.Required))[0], "attr", "name")),
        ["batch"] = Batch,
        ["capitalize"] = (v, a, k) => { PyArgs.Bind("capitalize", a, k); return PyText.Capitalize(PyText.Str(v)); },
        ["center"] = (v, a, k) => TemplateMethods.Pad(PyText.Str(v), PyArgs.AsInt(PyArgs.Bind("center", a, k, ("width", 80L))[0], "center", "width"), ' ', "center"),
        ["count"] = (v, a, k) => { PyArgs.Bind("count", a, k); return PyOps.Length(v); },
        ["d"] = Default,
        ["default"] = Default,
        ["dictsort"] = DictSort,
        ["e"] = (v, a, k) => { PyArgs.Bind("escape", a, k); return EscapeValue(v); },
        ["escape"] = (v, a, k) => { PyArgs.Bind("escape", a, k); return EscapeValue(v); },
        ["first"] = (v, a, k) => { PyArgs.Bind("first", a, k); foreach (var x in PyOps.Iterate(v)) return x; return Undefined.WithHint("No first item, sequence was empty."); },
        ["float"] = (v, a, k) => ToFloat(v, PyArgs.Bind("float", a, k, ("default", 0.0))[0]),
        ["forceescape"] = (v, a, k) => { PyArgs.Bind("forceescape", a, k); return new Markup(Escape(PyText.Str(v))); },
        ["indent"] = Indent,
        ["int"] = ToInt,
        ["items"] = Items,
        ["join"] = Join,
        ["last"] = Last,
        ["length"] = (v, a, k) => { PyArgs.Bind("length", a, k); return PyOps.Length(v); },
        ["list"] = (v, a, k) => { PyArgs.Bind("list", a, k); return PyOps.Iterate(v).ToList(); },
        ["lower"] = (v, a, k) => { PyArgs.Bind("lower", a, k); return PyText.Str(v).ToLowerInvariant(); },
        ["map"] = Map,
        ["max"] = (v, a, k) => MinOrMax(v, a, k, "max"),
        ["min"] = (v, a, k) => MinOrMax(v, a, k, "min"),
        ["reject"] = (v, a, k) => SelectOrReject(v, a, k, select: false, attribute: false, "reject"),
        ["rejectattr"] = (v, a, k) => SelectOrReject(v, a, k, select: false, attribute: true, "rejectattr"),
        ["replace"] = Replace,
        ["reverse"] = Reverse,
        ["round"] = Round,
        ["safe"] = (v, a, k) => { PyArgs.Bind("safe", a, k); return v as Markup ?? new Markup(PyText.Str(v)); },
        ["select"] = (v, a, k) => SelectOrReject(v, a, k, select: true, attribute: false, "select"),
        ["selectattr"] = (v, a, k) => SelectOrReject(v, a, k, select: true, attribute: true, "selectattr"),
        ["sort"] = Sort,
        ["string"] = (v, a, k) => { PyArgs.Bind("string", a, k); return v is Markup ? v : PyText.Str(v); },
        ["sum"] = Sum,
        ["title"] = (v, a, k) => { PyArgs.Bind("title", a, k); return JinjaTitle(PyText.Str(v)); },
        ["tojson"] = ToJson,
        ["trim"] = (v, a, k) => PyText.Strip(PyText.Str(v), PyArgs.AsOptionalString(PyArgs.Bind("trim", a, k, ("chars", null))[0], "trim", "chars")),
        ["unique"] = Unique,
        ["upper"] = (v, a, k) => { PyArgs.Bind("upper", a, k); return PyText.Str(v).ToUpperInvariant(); },
        ["wordcount"] = (v, a, k) => { PyArgs.Bind("wordcount", a, k); return (long)WordRegex().Matches(PyText.Str(v)).Count; },
    };

    private static readonly HashSet<string> Unsupported =
    [
        "filesizeformat", "format", "groupby", "pprint", "random", "slice", "striptags", "truncate", "urlencode", "urlize", "wordwrap", "xmlattr",
    ];

    /// <summary>Why <paramref name="name"/> cannot be used (unknown or not implemented), or null when it can.</summary>
    public static string? Problem(string name) =>
        Filters.ContainsKey(name) ? null
        : Unsupported.Contains(name) ? $"the filter '{name}' is not supported by this chat template interpreter"
        : $"no filter named '{name}'";

    public static object? Apply(string name, object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs) =>
        Filters.TryGetValue(name, out var filter) ? filter(value, args, kwargs) : throw new TemplateRuntimeException(Problem(name)!);

    [GeneratedRegex(@"\w+")]
    private static partial Regex WordRegex();

    /// <summary>markupsafe's escaping: &amp; &lt; &gt; " and '.</summary>
    public static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");

    private static Markup EscapeValue(object? v) => v as Markup ?? new Markup(Escape(PyText.Str(v)));

    private static object? Default(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("default", args, kwargs, ("default_value", ""), ("boolean", false));
        return value is Undefined || (PyOps.Truthy(p[1]) && !PyOps.Truthy(value)) ? p[0] : value;
    }

    /// <summary>jinja2's title filter: a word starts after whitespace or one of - ( { [ &lt;.</summary>
    private static string JinjaTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool wordStart = true;
        var runes = s.EnumerateRunes().ToList();
        foreach (var rune in runes)
        {
            bool separator = rune.Value < 0x10000 && (PyText.IsSpace((char)rune.Value) || rune.Value is '-' or '(' or '{' or '[' or '<');
            if (separator) { sb.Append(rune.ToString()); wordStart = true; continue; }
            sb.Append((wordStart ? Rune.ToUpperInvariant(rune) : Rune.ToLowerInvariant(rune)).ToString());
            wordStart = false;
        }
        return sb.ToString();
    }

    private static object? Indent(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("indent", args, kwargs, ("width", 4L), ("first", false), ("blank", false));
        string indention = p[0] is string w ? w : new string(' ', (int)PyArgs.AsInt(p[0], "indent", "width"));
        // jinja2 appends a newline first so that splitlines keeps a trailing empty line.
        var lines = PyText.SplitLines(PyText.Str(value) + "\n");
        string result;
        if (PyOps.Truthy(p[2])) result = string.Join("\n" + indention, lines);
        else
        {
            result = lines[0];
            if (lines.Count > 1) result += "\n" + string.Join("\n", lines.Skip(1).Select(line => line.Length > 0 ? indention + line : line));
        }
        return PyOps.Truthy(p[1]) ? indention + result : result;
    }

    private static object? ToInt(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("int", args, kwargs, ("default", 0L), ("base", 10L));
        long radix = PyArgs.AsInt(p[1], "int", "base");
        switch (value)
        {
            case bool b: return b ? 1L : 0L;
            case long l: return l;
            case double d when !double.IsNaN(d) && !double.IsInfinity(d) && Math.Abs(d) < 9.2e18: return (long)Math.Truncate(d);
            case string s:
                if (ParseInt(s, (int)radix) is { } parsed) return parsed;
                if (ParseFloat(s) is { } f && !double.IsNaN(f) && !double.IsInfinity(f) && Math.Abs(f) < 9.2e18) return (long)Math.Truncate(f);
                return p[0];
            default: return p[0];
        }
    }

    /// <summary>Python's int(text, base): surrounding whitespace, a sign, underscores between digits, 0x/0o/0b with their base.</summary>
    private static long? ParseInt(string text, int radix)
    {
        string s = PyText.Strip(text, null).Replace("_", "");
        if (s.Length == 0) return null;
        bool negative = s[0] == '-';
        if (s[0] is '+' or '-') s = s[1..];
        if (radix == 16 && s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        if (radix == 8 && s.StartsWith("0o", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        if (radix == 2 && s.StartsWith("0b", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        if (s.Length == 0 || radix is < 2 or > 36) return null;
        long value = 0;
        foreach (char c in s)
        {
            int digit = char.IsAsciiDigit(c) ? c - '0' : char.IsAsciiLetter(c) ? char.ToLowerInvariant(c) - 'a' + 10 : 99;
            if (digit >= radix) return null;
            try { value = checked(value * radix + digit); }
            catch (OverflowException) { return null; }
        }
        return negative ? -value : value;
    }

    /// <summary>Python's float(text).</summary>
    public static double? ParseFloat(string text)
    {
        string s = PyText.Strip(text, null);
        string lower = s.ToLowerInvariant().TrimStart('+', '-');
        double sign = s.StartsWith('-') ? -1 : 1;
        if (lower is "inf" or "infinity") return sign * double.PositiveInfinity;
        if (lower == "nan") return double.NaN;
        if (s.Length == 0 || s.Contains("__") || s.StartsWith('_') || s.EndsWith('_')) return null;
        return double.TryParse(s.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : null;
    }

    private static object? ToFloat(object? value, object? defaultValue) => value switch
    {
        bool b => b ? 1.0 : 0.0,
        long l => (double)l,
        double d => d,
        string s => ParseFloat(s) ?? defaultValue,
        _ => defaultValue,
    };

    private static object? Round(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("round", args, kwargs, ("precision", 0L), ("method", "common"));
        long precision = PyArgs.AsInt(p[0], "round", "precision");
        string method = PyArgs.AsString(p[1], "round", "method");
        if (method is not ("common" or "ceil" or "floor")) throw new TemplateRuntimeException("method must be common, ceil or floor");
        if (value is Undefined u) throw u.Fail();
        if (value is not (bool or long or double)) throw new TemplateRuntimeException($"type {PyOps.TypeName(value)} doesn't define __round__ method");
        if (method == "common")
        {
            // Python's round(x, n): ints stay ints; floats round half to even on the exact binary value.
            if (value is bool or long) return value is bool b ? (b ? 1L : 0L) : value;
            return RoundHalfEven((double)value, (int)precision);
        }
        double scale = Math.Pow(10, precision);
        double x = value switch { bool b => b ? 1 : 0, long l => l, _ => (double)value };
        return (method == "ceil" ? Math.Ceiling(x * scale) : Math.Floor(x * scale)) / scale;
    }

    private static double RoundHalfEven(double x, int digits)
    {
        if (double.IsNaN(x) || double.IsInfinity(x)) return x;
        // decimal holds the double's exact value for the magnitudes chat templates meet; fall back to Math.Round beyond.
        if (Math.Abs(x) < 7.9e27 && digits is >= 0 and <= 28)
        {
            try { return (double)Math.Round(new decimal(x), digits, MidpointRounding.ToEven); }
            catch (OverflowException) { }
        }
        return digits >= 0 ? Math.Round(x, Math.Min(digits, 15), MidpointRounding.ToEven) : Math.Round(x / Math.Pow(10, -digits), MidpointRounding.ToEven) * Math.Pow(10, -digits);
    }

    private static object? Items(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        PyArgs.Bind("items", args, kwargs);
        return value switch
        {
            Undefined => new PyIterator([], "do_items"),
            PyDict dict => new PyIterator(dict.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList(), "do_items"),
            _ => throw new TemplateRuntimeException("Can only get item pairs from a mapping."),
        };
    }

    private static object? Join(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("join", args, kwargs, ("d", ""), ("attribute", null));
        var items = PyOps.Iterate(value);
        if (p[1] is not null) items = items.Select(AttributeGetter(p[1], null)).ToList();
        return string.Join(PyText.Str(p[0]), items.Select(PyText.Str));
    }

    private static object? Last(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        PyArgs.Bind("last", args, kwargs);
        if (value is PyIterator) throw new TemplateRuntimeException("'generator' object is not reversible");
        var items = PyOps.Iterate(value).ToList();
        return items.Count > 0 ? items[^1] : Undefined.WithHint("No last item, sequence was empty.");
    }

    private static object? Reverse(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        PyArgs.Bind("reverse", args, kwargs);
        if (value is string s) return string.Concat(PyText.CodePoints(s).AsEnumerable().Reverse());
        var items = PyOps.Iterate(value).ToList();
        items.Reverse();
        // reversed() of a list or dict is an iterator; a generator is materialised into a list first.
        return value is PyIterator ? items : new PyIterator(items, "reversed");
    }

    private static object? Replace(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("replace", args, kwargs, ("old", PyArgs.Required), ("new", PyArgs.Required), ("count", null));
        long count = p[2] is null ? -1 : PyArgs.AsInt(p[2], "replace", "count");
        return PyText.Replace(PyText.Str(value), PyText.Str(p[0]), PyText.Str(p[1]), count);
    }

    private static object? Batch(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("batch", args, kwargs, ("linecount", PyArgs.Required), ("fill_with", null));
        long size = PyArgs.AsInt(p[0], "batch", "linecount");
        if (size <= 0) throw new TemplateRuntimeException("batch() linecount must be positive");
        var batches = new List<object?>();
        List<object?> current = [];
        foreach (var item in PyOps.Iterate(value))
        {
            if (current.Count == size) { batches.Add(current); current = []; }
            current.Add(item);
        }
        if (current.Count > 0)
        {
            if (p[1] is not null) while (current.Count < size) current.Add(p[1]);
            batches.Add(current);
        }
        return new PyIterator(batches, "do_batch");
    }

    /// <summary>jinja2's make_attrgetter: dotted path, digit parts as indices, looked up with getitem semantics.</summary>
    private static Func<object?, object?> AttributeGetter(object? attribute, Func<object?, object?>? postprocess, object? defaultValue = null)
    {
        var parts = attribute switch
        {
            null => [],
            string s => s.Split('.').Select(part => part.Length > 0 && part.All(char.IsAsciiDigit) ? (object?)long.Parse(part, CultureInfo.InvariantCulture) : part).ToList(),
            _ => [attribute],
        };
        return item =>
        {
            foreach (var part in parts)
            {
                item = PyOps.GetItem(item, part);
                if (defaultValue is not null && item is Undefined) item = defaultValue;
            }
            return postprocess is null ? item : postprocess(item);
        };
    }

    private static object? IgnoreCase(object? value) => value is string s ? s.ToLowerInvariant() : value;

    private static object? Map(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        Func<object?, object?> function;
        if (args.Count == 0 && kwargs.Any(k => k.Key == "attribute"))
        {
            var p = PyArgs.Bind("map", args, kwargs, ("attribute", PyArgs.Required), ("default", null));
            function = AttributeGetter(p[0], null, p[1]);
        }
        else
        {
            if (args.Count == 0) throw new TemplateRuntimeException("map requires a filter argument");
            string name = PyArgs.AsString(args[0], "map", "name");
            var rest = args.Skip(1).ToList();
            function = item => Apply(name, item, rest, kwargs);
        }
        return new PyIterator(PyOps.Iterate(value).Select(function).ToList(), "do_map");
    }

    private static object? SelectOrReject(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs, bool select, bool attribute, string function)
    {
        if (!PyOps.Truthy(value)) return new PyIterator([], "select_or_reject");
        Func<object?, object?> transform = x => x;
        int offset = 0;
        if (attribute)
        {
            if (args.Count == 0) throw new TemplateRuntimeException("Missing parameter for attribute name");
            transform = AttributeGetter(args[0], null);
            offset = 1;
        }
        Func<object?, bool> test = args.Count > offset
            ? item => TemplateTests.Apply(PyArgs.AsString(args[offset], function, "test"), item, args.Skip(offset + 1).ToList(), kwargs)
            : PyOps.Truthy;
        var kept = PyOps.Iterate(value).Where(item => test(transform(item)) == select).ToList();
        return new PyIterator(kept, "select_or_reject");
    }

    private static object? Sort(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("sort", args, kwargs, ("reverse", false), ("case_sensitive", false), ("attribute", null));
        Func<object?, object?>? post = PyOps.Truthy(p[1]) ? null : IgnoreCase;
        // make_multi_attrgetter: "a,b" sorts by a then b; each key is a list.
        var getters = (p[2] is string s ? s.Split(',').Cast<object?>() : [p[2]]).Select(a => AttributeGetter(a, post)).ToList();
        var items = PyOps.Iterate(value).ToList();
        var keyed = items.Select(item => (Item: item, Key: (object?)getters.Select(g => g(item)).ToList())).ToList();
        var comparer = Comparer<object?>.Create((x, y) => PyOps.Compare(x, y));
        // Python's sorted is stable, also with reverse=True (equal items keep their order).
        var sorted = PyOps.Truthy(p[0]) ? keyed.OrderByDescending(k => k.Key, comparer) : keyed.OrderBy(k => k.Key, comparer);
        return sorted.Select(k => k.Item).ToList();
    }

    private static object? Unique(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("unique", args, kwargs, ("case_sensitive", false), ("attribute", null));
        var getter = AttributeGetter(p[1], PyOps.Truthy(p[0]) ? null : IgnoreCase);
        var seen = new List<object?>();
        var kept = new List<object?>();
        foreach (var item in PyOps.Iterate(value))
        {
            var key = getter(item);
            if (seen.Any(s => PyOps.PyEquals(s, key))) continue;
            seen.Add(key);
            kept.Add(item);
        }
        return new PyIterator(kept, "do_unique");
    }

    private static object? MinOrMax(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs, string function)
    {
        var p = PyArgs.Bind(function, args, kwargs, ("case_sensitive", false), ("attribute", null));
        var items = PyOps.Iterate(value).ToList();
        if (items.Count == 0) return Undefined.WithHint("No aggregated item, sequence was empty.");
        var key = AttributeGetter(p[1], PyOps.Truthy(p[0]) ? null : IgnoreCase);
        var best = items[0];
        var bestKey = key(best);
        foreach (var item in items.Skip(1))
        {
            var k = key(item);
            int c = PyOps.Compare(k, bestKey);
            if (function == "max" ? c > 0 : c < 0) (best, bestKey) = (item, k);
        }
        return best;
    }

    private static object? Sum(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("sum", args, kwargs, ("attribute", null), ("start", 0L));
        var items = PyOps.Iterate(value);
        if (p[0] is not null) items = items.Select(AttributeGetter(p[0], null)).ToList();
        object? total = p[1];
        foreach (var item in items) total = PyOps.Arithmetic("+", total, item);
        return total;
    }

    private static object? DictSort(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var p = PyArgs.Bind("dictsort", args, kwargs, ("case_sensitive", false), ("by", "key"), ("reverse", false));
        int position = PyText.Str(p[1]) switch
        {
            "key" => 0,
            "value" => 1,
            _ => throw new TemplateRuntimeException("You can only sort by either \"key\" or \"value\""),
        };
        if (value is not PyDict dict) throw new TemplateRuntimeException($"dictsort needs a mapping, not {PyOps.TypeName(value)}");
        var pairs = dict.Select(kv => new PyTuple([kv.Key, kv.Value])).ToList();
        bool caseSensitive = PyOps.Truthy(p[0]);
        Func<PyTuple, object?> key = t => caseSensitive ? t[position] : IgnoreCase(t[position]);
        var comparer = Comparer<object?>.Create((x, y) => PyOps.Compare(x, y));
        var sorted = PyOps.Truthy(p[2]) ? pairs.OrderByDescending(key, comparer) : pairs.OrderBy(key, comparer);
        return sorted.Cast<object?>().ToList();
    }

    private static object? ToJson(object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        // transformers replaces jinja2's tojson: json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys).
        var p = PyArgs.Bind("tojson", args, kwargs, ("ensure_ascii", false), ("indent", null), ("separators", null), ("sort_keys", false));
        return PyJson.Dumps(value, PyOps.Truthy(p[0]), p[1], p[2], PyOps.Truthy(p[3]));
    }
}

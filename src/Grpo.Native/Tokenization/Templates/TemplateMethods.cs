using System.Globalization;
using System.Text;

namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// The Python methods templates call on strings, dicts and lists (<c>s.split('x')</c>, <c>d.items()</c>). Methods that
/// mutate are refused as jinja2's ImmutableSandboxedEnvironment refuses them; methods Python has but this interpreter
/// does not implement fail when called, naming the method.
/// </summary>
internal static class TemplateMethods
{
    private static readonly HashSet<string> UnsafeListMethods = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"];
    private static readonly HashSet<string> UnsafeDictMethods = ["clear", "pop", "popitem", "setdefault", "update"];

    private static readonly HashSet<string> OtherStrMethods =
        ["encode", "expandtabs", "format", "format_map", "isascii", "isidentifier", "isprintable", "maketrans", "translate"];

    /// <summary>
    /// The bound method <paramref name="name"/> of <paramref name="obj"/> (a callable, or an Undefined explaining why it is
    /// unsafe), or null when Python's object has no such attribute.
    /// </summary>
    public static object? Bind(object? obj, string name)
    {
        switch (obj)
        {
            case string or Markup:
            {
                string s = obj is Markup m ? m.Value : (string)obj;
                if (OtherStrMethods.Contains(name)) return Unsupported("str", name);
                return StrMethod(s, name) is { } f ? new PyCallable(name, f) : null;
            }
            case PyDict dict:
                if (UnsafeDictMethods.Contains(name)) return Unsafe("dict", name);
                return DictMethod(dict, name) is { } d ? new PyCallable(name, d) : null;
            case List<object?> list:
                if (UnsafeListMethods.Contains(name)) return Unsafe("list", name);
                return SequenceMethod(list, name) is { } l ? new PyCallable(name, l) : null;
            case PyTuple tuple:
                return SequenceMethod(tuple.Items.ToList(), name) is { } t ? new PyCallable(name, t) : null;
            default:
                return null;
        }
    }

    private static Undefined Unsafe(string type, string name) =>
        Undefined.WithHint($"access to attribute '{name}' of '{type}' object is unsafe.");

    private static PyCallable Unsupported(string type, string name) =>
        new(name, (_, _) => throw new TemplateRuntimeException($"the method {type}.{name}() is not supported by this chat template interpreter"));

    private static PyFunction? SequenceMethod(List<object?> items, string name) => name switch
    {
        "count" => (a, k) => (long)items.Count(x => PyOps.PyEquals(x, PyArgs.Bind("count", a, k, ("value", PyArgs.Required))[0])),
        "index" => (a, k) =>
        {
            var value = PyArgs.Bind("index", a, k, ("value", PyArgs.Required))[0];
            int at = items.FindIndex(x => PyOps.PyEquals(x, value));
            return at >= 0 ? (long)at : throw new TemplateRuntimeException($"{PyText.Repr(value)} is not in list");
        },
        "copy" => (a, k) => { PyArgs.Bind("copy", a, k); return items.ToList(); },
        _ => null,
    };

    private static PyFunction? DictMethod(PyDict dict, string name) => name switch
    {
        "items" => (a, k) => { PyArgs.Bind("items", a, k); return new PyDictView("items", dict.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList()); },
        "keys" => (a, k) => { PyArgs.Bind("keys", a, k); return new PyDictView("keys", dict.Keys.Cast<object?>().ToList()); },
        "values" => (a, k) => { PyArgs.Bind("values", a, k); return new PyDictView("values", dict.Values.ToList()); },
        "get" => (a, k) =>
        {
            var p = PyArgs.Bind("get", a, k, ("key", PyArgs.Required), ("default", null));
            return p[0] is not null and not Undefined && dict.TryGetValue(p[0]!, out var v) ? v : p[1];
        },
        "copy" => (a, k) =>
        {
            PyArgs.Bind("copy", a, k);
            var copy = new PyDict();
            foreach (var (key, value) in dict) copy[key] = value;
            return copy;
        },
        "fromkeys" => (_, _) => throw new TemplateRuntimeException("the method dict.fromkeys() is not supported by this chat template interpreter"),
        _ => null,
    };

    private static PyFunction? StrMethod(string s, string name) => name switch
    {
        "strip" => (a, k) => PyText.Strip(s, Chars("strip", a, k)),
        "lstrip" => (a, k) => PyText.Strip(s, Chars("lstrip", a, k), right: false),
        "rstrip" => (a, k) => PyText.Strip(s, Chars("rstrip", a, k), left: false),
        "split" => (a, k) =>
        {
            var p = PyArgs.Bind("split", a, k, ("sep", null), ("maxsplit", -1L));
            return PyText.Split(s, PyArgs.AsOptionalString(p[0], "split", "sep"), PyArgs.AsInt(p[1], "split", "maxsplit"));
        },
        "rsplit" => (a, k) =>
        {
            var p = PyArgs.Bind("rsplit", a, k, ("sep", null), ("maxsplit", -1L));
            return PyText.RSplit(s, PyArgs.AsOptionalString(p[0], "rsplit", "sep"), PyArgs.AsInt(p[1], "rsplit", "maxsplit"));
        },
        "splitlines" => (a, k) => PyText.SplitLines(s, PyOps.Truthy(PyArgs.Bind("splitlines", a, k, ("keepends", false))[0])).Cast<object?>().ToList(),
        "startswith" => (a, k) => Affix(s, "startswith", a, k, (text, affix) => text.StartsWith(affix, StringComparison.Ordinal)),
        "endswith" => (a, k) => Affix(s, "endswith", a, k, (text, affix) => text.EndsWith(affix, StringComparison.Ordinal)),
        "replace" => (a, k) =>
        {
            var p = PyArgs.Bind("replace", a, k, ("old", PyArgs.Required), ("new", PyArgs.Required), ("count", -1L));
            return PyText.Replace(s, PyArgs.AsString(p[0], "replace", "old"), PyArgs.AsString(p[1], "replace", "new"), PyArgs.AsInt(p[2], "replace", "count"));
        },
        "upper" => (a, k) => { PyArgs.Bind("upper", a, k); return s.ToUpperInvariant(); },
        "lower" => (a, k) => { PyArgs.Bind("lower", a, k); return s.ToLowerInvariant(); },
        "casefold" => (a, k) => { PyArgs.Bind("casefold", a, k); return s.ToLowerInvariant(); },
        "swapcase" => (a, k) =>
        {
            PyArgs.Bind("swapcase", a, k);
            return string.Concat(s.EnumerateRunes().Select(r => (Rune.IsUpper(r) ? Rune.ToLowerInvariant(r) : Rune.IsLower(r) ? Rune.ToUpperInvariant(r) : r).ToString()));
        },
        "title" => (a, k) => { PyArgs.Bind("title", a, k); return PyText.Title(s); },
        "capitalize" => (a, k) => { PyArgs.Bind("capitalize", a, k); return PyText.Capitalize(s); },
        "find" => (a, k) => Find(s, "find", a, k, last: false, raise: false),
        "rfind" => (a, k) => Find(s, "rfind", a, k, last: true, raise: false),
        "index" => (a, k) => Find(s, "index", a, k, last: false, raise: true),
        "rindex" => (a, k) => Find(s, "rindex", a, k, last: true, raise: true),
        "count" => (a, k) =>
        {
            string sub = PyArgs.AsString(PyArgs.Bind("count", a, k, ("sub", PyArgs.Required))[0], "count", "sub");
            if (sub.Length == 0) return (long)PyText.Length(s) + 1;
            long n = 0;
            for (int at = s.IndexOf(sub, StringComparison.Ordinal); at >= 0; at = s.IndexOf(sub, at + sub.Length, StringComparison.Ordinal)) n++;
            return n;
        },
        "join" => (a, k) =>
        {
            var items = PyOps.Iterate(PyArgs.Bind("join", a, k, ("iterable", PyArgs.Required))[0]).ToList();
            for (int i = 0; i < items.Count; i++)
                if (items[i] is not (string or Markup))
                    throw new TemplateRuntimeException($"sequence item {i}: expected str instance, {PyOps.TypeName(items[i])} found");
            return string.Join(s, items.Select(PyText.Str));
        },
        "isdigit" or "isdecimal" or "isnumeric" => (a, k) => { PyArgs.Bind(name, a, k); return s.Length > 0 && s.EnumerateRunes().All(r => Rune.IsDigit(r) || (name == "isnumeric" && Rune.IsNumber(r))); },
        "isalpha" => (a, k) => { PyArgs.Bind(name, a, k); return s.Length > 0 && s.EnumerateRunes().All(Rune.IsLetter); },
        "isalnum" => (a, k) => { PyArgs.Bind(name, a, k); return s.Length > 0 && s.EnumerateRunes().All(r => Rune.IsLetterOrDigit(r) || Rune.IsNumber(r)); },
        "isspace" => (a, k) => { PyArgs.Bind(name, a, k); return s.Length > 0 && s.All(PyText.IsSpace); },
        "islower" => (a, k) => { PyArgs.Bind(name, a, k); return IsLower(s); },
        "isupper" => (a, k) => { PyArgs.Bind(name, a, k); return IsUpper(s); },
        "istitle" => (a, k) => { PyArgs.Bind(name, a, k); return s == PyText.Title(s) && s.EnumerateRunes().Any(r => Rune.IsUpper(r) || Rune.IsLower(r)); },
        "zfill" => (a, k) =>
        {
            long width = PyArgs.AsInt(PyArgs.Bind("zfill", a, k, ("width", PyArgs.Required))[0], "zfill", "width");
            int fill = (int)Math.Max(0, width - PyText.Length(s));
            return s.Length > 0 && s[0] is '+' or '-' ? s[0] + new string('0', fill) + s[1..] : new string('0', fill) + s;
        },
        "center" or "ljust" or "rjust" => (a, k) =>
        {
            var p = PyArgs.Bind(name, a, k, ("width", PyArgs.Required), ("fillchar", " "));
            string fill = PyArgs.AsString(p[1], name, "fillchar");
            if (PyText.Length(fill) != 1) throw new TemplateRuntimeException("The fill character must be exactly one character long");
            return Pad(s, PyArgs.AsInt(p[0], name, "width"), fill[0], name);
        },
        "partition" or "rpartition" => (a, k) =>
        {
            string sep = PyArgs.AsString(PyArgs.Bind(name, a, k, ("sep", PyArgs.Required))[0], name, "sep");
            if (sep.Length == 0) throw new TemplateRuntimeException("empty separator");
            int at = name == "partition" ? s.IndexOf(sep, StringComparison.Ordinal) : s.LastIndexOf(sep, StringComparison.Ordinal);
            if (at < 0) return name == "partition" ? new PyTuple([s, "", ""]) : new PyTuple(["", "", s]);
            return new PyTuple([s[..at], sep, s[(at + sep.Length)..]]);
        },
        "removeprefix" => (a, k) =>
        {
            string prefix = PyArgs.AsString(PyArgs.Bind(name, a, k, ("prefix", PyArgs.Required))[0], name, "prefix");
            return s.StartsWith(prefix, StringComparison.Ordinal) ? s[prefix.Length..] : s;
        },
        "removesuffix" => (a, k) =>
        {
            string suffix = PyArgs.AsString(PyArgs.Bind(name, a, k, ("suffix", PyArgs.Required))[0], name, "suffix");
            return suffix.Length > 0 && s.EndsWith(suffix, StringComparison.Ordinal) ? s[..^suffix.Length] : s;
        },
        _ => null,
    };

    private static string? Chars(string function, List<object?> args, List<KeyValuePair<string, object?>> kwargs) =>
        PyArgs.AsOptionalString(PyArgs.Bind(function, args, kwargs, ("chars", null))[0], function, "chars");

    private static object? Affix(string s, string function, List<object?> args, List<KeyValuePair<string, object?>> kwargs, Func<string, string, bool> test)
    {
        var p = PyArgs.Bind(function, args, kwargs, ("prefix", PyArgs.Required), ("start", null), ("end", null));
        string text = Window(s, p[1], p[2], function);
        return p[0] switch
        {
            PyTuple tuple => tuple.Items.Any(item => test(text, PyArgs.AsString(item, function, "prefix"))),
            var one => test(text, PyArgs.AsString(one, function, "prefix")),
        };
    }

    /// <summary>s[start:end] by code points, for the optional start/end arguments of find, startswith and friends.</summary>
    private static string Window(string s, object? start, object? end, string function)
    {
        if (start is null && end is null) return s;
        return (string)PyOps.Slice(s, start, end, null)!;
    }

    private static object? Find(string s, string function, List<object?> args, List<KeyValuePair<string, object?>> kwargs, bool last, bool raise)
    {
        var p = PyArgs.Bind(function, args, kwargs, ("sub", PyArgs.Required), ("start", null), ("end", null));
        string sub = PyArgs.AsString(p[0], function, "sub");
        long offset = 0;
        if (p[1] is not null)
        {
            long start = PyArgs.AsInt(p[1], function, "start");
            long n = PyText.Length(s);
            offset = Math.Clamp(start < 0 ? start + n : start, 0, n);
        }
        string text = Window(s, p[1], p[2], function);
        int at = last ? text.LastIndexOf(sub, StringComparison.Ordinal) : text.IndexOf(sub, StringComparison.Ordinal);
        if (at < 0)
        {
            if (raise) throw new TemplateRuntimeException("substring not found");
            return -1L;
        }
        return offset + PyText.CodePointIndex(text, at);
    }

    /// <summary>Python's str.center/ljust/rjust (center puts the extra fill on the right when the padding is odd and the width even... as CPython).</summary>
    public static string Pad(string s, long width, char fill, string how)
    {
        long length = PyText.Length(s);
        if (width <= length) return s;
        int total = (int)(width - length);
        int left = how switch
        {
            "ljust" => 0,
            "rjust" => total,
            // CPython: left = pad/2 + (pad & width & 1)
            _ => total / 2 + (total & (int)width & 1),
        };
        return new string(fill, left) + s + new string(fill, total - left);
    }

    /// <summary>Python's str.islower: at least one cased character and no uppercase or titlecase one.</summary>
    public static bool IsLower(string s)
    {
        bool cased = false;
        foreach (var r in s.EnumerateRunes())
        {
            if (Rune.IsUpper(r) || Rune.GetUnicodeCategory(r) == UnicodeCategory.TitlecaseLetter) return false;
            if (Rune.IsLower(r)) cased = true;
        }
        return cased;
    }

    /// <summary>Python's str.isupper.</summary>
    public static bool IsUpper(string s)
    {
        bool cased = false;
        foreach (var r in s.EnumerateRunes())
        {
            if (Rune.IsLower(r) || Rune.GetUnicodeCategory(r) == UnicodeCategory.TitlecaseLetter) return false;
            if (Rune.IsUpper(r)) cased = true;
        }
        return cased;
    }
}

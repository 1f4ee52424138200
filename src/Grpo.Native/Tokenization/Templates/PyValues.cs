using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Grpo.Native.Tokenization.Templates;

// The runtime values of the interpreter mirror Python's, because jinja2 evaluates templates with Python
// semantics: null is None, bool, long (int), double (float), string (str), List<object?> (list),
// PyTuple, PyDict, and the few jinja2 objects below. Anything else never enters a render.

/// <summary>A Python-level error without a line; the renderer adds the line of the statement it was running.</summary>
internal sealed class TemplateRuntimeException(string message) : Exception(message);

/// <summary>jinja2's default Undefined: prints as "", is falsy, iterates as empty; any other use raises.</summary>
internal sealed class Undefined
{
    private readonly string _message;

    private Undefined(string message) => _message = message;

    /// <summary>A variable that does not exist.</summary>
    public static Undefined Name(string name) => new($"'{name}' is undefined");

    /// <summary>A missing attribute or key of <paramref name="owner"/>.</summary>
    public static Undefined Member(object? owner, object? key) => key is string s
        ? new($"'{PyOps.TypeName(owner)} object' has no attribute '{s}'")
        : new($"{PyOps.TypeName(owner)} object has no element {PyText.Repr(key)}");

    /// <summary>An undefined value with jinja2's explanation (for example an unsafe attribute or an empty sequence).</summary>
    public static Undefined WithHint(string hint) => new(hint);

    /// <summary>The error jinja2 raises when this value is used.</summary>
    public TemplateRuntimeException Fail() => new(_message);
}

/// <summary>A Python tuple: immutable, prints with parentheses, serialises as a JSON array.</summary>
internal sealed class PyTuple(object?[] items) : IReadOnlyList<object?>
{
    public object?[] Items { get; } = items;
    public int Count => Items.Length;
    public object? this[int index] => Items[index];
    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)Items).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => Items.GetEnumerator();
}

/// <summary>A Python dict: insertion-ordered, keys compared as Python compares them (1 == 1.0 == True).</summary>
internal sealed class PyDict() : OrderedDictionary<object, object?>(PyKeyComparer.Instance);

/// <summary>What <c>dict.items()</c>, <c>keys()</c> and <c>values()</c> return: iterable, sized, printed as dict_items([...]).</summary>
internal sealed class PyDictView(string kind, List<object?> items)
{
    public string Kind { get; } = kind;
    public List<object?> Items { get; } = items;
}

/// <summary>
/// A Python iterator (what jinja2's map/select/reverse/... return): truthy even when empty, consumed by the first
/// iteration, and without a length.
/// </summary>
internal sealed class PyIterator(IEnumerable<object?> source, string name)
{
    private IEnumerable<object?>? _source = source;
    public string Name { get; } = name;

    public IEnumerable<object?> Consume()
    {
        var source = _source ?? [];
        _source = null;
        return source;
    }
}

/// <summary>Python's range object (jinja2's sandbox caps it at 100,000 items).</summary>
internal sealed class PyRange(long start, long stop, long step)
{
    public long Start { get; } = start;
    public long Stop { get; } = stop;
    public long Step { get; } = step;

    public long Count => Step > 0
        ? Math.Max(0, (Stop - Start + Step - 1) / Step)
        : Math.Max(0, (Start - Stop - Step - 1) / -Step);

    public IEnumerable<object?> Items()
    {
        for (long i = 0, n = Count; i < n; i++) yield return Start + i * Step;
    }
}

/// <summary>markupsafe.Markup: what <c>safe</c> and <c>escape</c> return. Printed as is; <c>+</c> with a plain string escapes that string.</summary>
internal sealed class Markup(string value)
{
    public string Value { get; } = value;
    public override string ToString() => Value;
}

/// <summary>jinja2's namespace(): the one object a template may assign attributes on (<c>{% set ns.x = ... %}</c>).</summary>
internal sealed class Namespace
{
    public PyDict Attributes { get; } = new();
}

/// <summary>jinja2's <c>loop</c> variable.</summary>
internal sealed class LoopContext(List<object?> items, int depth0)
{
    public int Index0 { get; set; }

    public object? Attribute(string name) => name switch
    {
        "index0" => (long)Index0,
        "index" => (long)Index0 + 1,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => (long)depth0 + 1,
        "depth0" => (long)depth0,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : Undefined.WithHint("there is no previous item"),
        "nextitem" => Index0 < items.Count - 1 ? items[Index0 + 1] : Undefined.WithHint("there is no next item"),
        "cycle" => new PyCallable("cycle", (args, _) => args.Count == 0
            ? throw new TemplateRuntimeException("no items for cycling given")
            : args[Index0 % args.Count]),
        _ => Undefined.Member(this, name),
    };
}

/// <summary>A macro defined by the template; calling it renders its body to a string.</summary>
internal sealed class Macro(MacroNode node, Scope closure)
{
    public MacroNode Node { get; } = node;
    public string Name => Node.Name;
    public Scope Closure { get; } = closure;
}

/// <summary>A callable global or bound method: receives evaluated positional and keyword arguments.</summary>
internal delegate object? PyFunction(List<object?> args, List<KeyValuePair<string, object?>> kwargs);

/// <summary>A named callable value (a global like <c>range</c>, or a method bound to its object).</summary>
internal sealed class PyCallable(string name, PyFunction function)
{
    public string Name { get; } = name;
    public PyFunction Function { get; } = function;
}

/// <summary>Converts the caller's variables (CLR objects, System.Text.Json trees) into interpreter values.</summary>
internal static class PyConvert
{
    public static object? FromClr(object? value, string path)
    {
        switch (value)
        {
            case null: return null;
            case string or bool or long or double or PyDict or PyTuple or Markup or Namespace: return value;
            case int i: return (long)i;
            case short s: return (long)s;
            case byte b: return (long)b;
            case sbyte sb: return (long)sb;
            case ushort us: return (long)us;
            case uint ui: return (long)ui;
            case ulong ul when ul <= long.MaxValue: return (long)ul;
            // The shortest text of a float is what the caller wrote (0.1f means 0.1, not 0.100000001490116).
            case float f: return double.Parse(f.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
            case decimal m: return (double)m;
            case char c: return c.ToString();
            case JsonElement element: return FromJson(element, path);
            case JsonNode node: return FromJsonNode(node, path);
            case IReadOnlyDictionary<string, object?> readOnly:
            {
                var dict = new PyDict();
                foreach (var (k, v) in readOnly) dict[k] = FromClr(v, $"{path}.{k}");
                return dict;
            }
            case IDictionary<string, object?> mutable:
            {
                var dict = new PyDict();
                foreach (var (k, v) in mutable) dict[k] = FromClr(v, $"{path}.{k}");
                return dict;
            }
            case IDictionary untyped:
            {
                var dict = new PyDict();
                foreach (DictionaryEntry entry in untyped)
                    dict[FromClr(entry.Key, path) ?? throw new ArgumentException($"{path} has a null dictionary key.")] = FromClr(entry.Value, $"{path}.{entry.Key}");
                return dict;
            }
            case IEnumerable sequence:
            {
                var list = new List<object?>();
                int index = 0;
                foreach (var item in sequence) list.Add(FromClr(item, $"{path}[{index++}]"));
                return list;
            }
            default:
                throw new ArgumentException($"{path} is a {value.GetType().Name}; chat template variables can be null, bool, numbers, strings, dictionaries, lists and JSON trees.");
        }
    }

    private static object? FromJson(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
            {
                var dict = new PyDict();
                foreach (var property in element.EnumerateObject()) dict[property.Name] = FromJson(property.Value, $"{path}.{property.Name}");
                return dict;
            }
            case JsonValueKind.Array:
            {
                var list = new List<object?>();
                int index = 0;
                foreach (var item in element.EnumerateArray()) list.Add(FromJson(item, $"{path}[{index++}]"));
                return list;
            }
            case JsonValueKind.String: return element.GetString();
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            case JsonValueKind.Number:
            {
                // As Python's json.loads: a number without fraction or exponent is an int.
                string raw = element.GetRawText();
                if (raw.IndexOfAny(['.', 'e', 'E']) < 0 && element.TryGetInt64(out long l)) return l;
                return element.GetDouble();
            }
            default: return null;
        }
    }

    private static object? FromJsonNode(JsonNode node, string path) => node switch
    {
        JsonObject o => ObjectToDict(o, path),
        JsonArray a => a.Select((item, i) => item is null ? null : FromJsonNode(item, $"{path}[{i}]")).ToList(),
        JsonValue v when v.TryGetValue(out JsonElement element) => FromJson(element, path),
        JsonValue v => FromClr(v.GetValue<object>(), path),
        _ => null,
    };

    private static PyDict ObjectToDict(JsonObject o, string path)
    {
        var dict = new PyDict();
        foreach (var (k, v) in o) dict[k] = v is null ? null : FromJsonNode(v, $"{path}.{k}");
        return dict;
    }
}

/// <summary>Equality and hashing of dict keys with Python's rules (numbers by value across int/float/bool).</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => PyOps.PyEquals(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d => d == Math.Floor(d) && Math.Abs(d) < 9e18 ? ((long)d).GetHashCode() : d.GetHashCode(),
        string s => StringComparer.Ordinal.GetHashCode(s),
        Markup m => StringComparer.Ordinal.GetHashCode(m.Value),
        PyTuple t => t.Items.Aggregate(17, (h, item) => h * 31 + (item is null ? 0 : GetHashCode(item))),
        _ => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj),
    };
}

/// <summary>raise_exception(message) was called; the renderer turns it into a <see cref="TemplateRaisedException"/> with the line.</summary>
internal sealed class TemplateRaiseSignal(string message) : Exception(message);

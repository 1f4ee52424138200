namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// Python's operators on interpreter values, with jinja2's sandboxed attribute and item lookup: truthiness,
/// equality, ordering, arithmetic, membership, iteration, len(), <c>a.b</c> and <c>a[b]</c>.
/// </summary>
internal static class PyOps
{
    /// <summary>Python's type name of a value, as error messages print it.</summary>
    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        Markup => "Markup",
        List<object?> => "list",
        PyTuple => "tuple",
        PyDict => "dict",
        PyDictView v => "dict_" + v.Kind,
        PyRange => "range",
        PyIterator => "generator",
        Namespace => "Namespace",
        Undefined => "Undefined",
        PyCallable => "builtin_function_or_method",
        Macro => "Macro",
        LoopContext => "LoopContext",
        _ => value.GetType().Name,
    };

    public static bool Truthy(object? value) => value switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        Markup m => m.Value.Length > 0,
        List<object?> list => list.Count > 0,
        PyTuple t => t.Count > 0,
        PyDict dict => dict.Count > 0,
        PyDictView view => view.Items.Count > 0,
        PyRange r => r.Count > 0,
        _ => true,
    };

    private static bool IsNumber(object? v) => v is bool or long or double;

    private static double ToDouble(object? v) => v switch { bool b => b ? 1 : 0, long l => l, double d => d, _ => double.NaN };

    private static long ToLong(object? v) => v switch { bool b => b ? 1 : 0, long l => l, _ => 0 };

    private static string? AsString(object? v) => v switch { string s => s, Markup m => m.Value, _ => null };

    /// <summary>Python's ==.</summary>
    public static bool PyEquals(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        if (AsString(a) is { } sa && AsString(b) is { } sb) return string.Equals(sa, sb, StringComparison.Ordinal);
        if (a is List<object?> la && b is List<object?> lb) return la.Count == lb.Count && la.Zip(lb).All(p => PyEquals(p.First, p.Second));
        if (a is PyTuple ta && b is PyTuple tb) return ta.Count == tb.Count && ta.Items.Zip(tb.Items).All(p => PyEquals(p.First, p.Second));
        if (a is PyDict da && b is PyDict db)
            return da.Count == db.Count && da.All(kv => db.TryGetValue(kv.Key, out var v) && PyEquals(kv.Value, v));
        return ReferenceEquals(a, b);
    }

    /// <summary>Python's ordering (&lt; is negative): numbers, strings by code point, lists and tuples element-wise.</summary>
    public static int Compare(object? a, object? b, string op = "<")
    {
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        if (AsString(a) is { } sa && AsString(b) is { } sb) return CompareCodePoints(sa, sb);
        if ((a is List<object?> && b is List<object?>) || (a is PyTuple && b is PyTuple))
        {
            var la = ((IEnumerable<object?>)a).ToList();
            var lb = ((IEnumerable<object?>)b!).ToList();
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
                if (!PyEquals(la[i], lb[i])) return Compare(la[i], lb[i], op);
            return la.Count.CompareTo(lb.Count);
        }
        if (a is Undefined ua) throw ua.Fail();
        if (b is Undefined ub) throw ub.Fail();
        throw new TemplateRuntimeException($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static int CompareCodePoints(string a, string b)
    {
        // Ordinal UTF-16 order differs from code point order only when surrogates meet U+E000..U+FFFF.
        int i = 0;
        while (i < a.Length && i < b.Length)
        {
            if (a[i] != b[i])
            {
                return CodePointAt(a, i).CompareTo(CodePointAt(b, i));
            }
            i++;
        }
        return a.Length.CompareTo(b.Length);
    }

    private static int CodePointAt(string s, int i) =>
        char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? char.ConvertToUtf32(s[i], s[i + 1])
        : char.IsLowSurrogate(s[i]) && i > 0 && char.IsHighSurrogate(s[i - 1]) ? char.ConvertToUtf32(s[i - 1], s[i])
        : s[i];

    /// <summary>Python's <c>item in container</c>.</summary>
    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string or Markup:
                if (AsString(item) is not { } needle)
                    throw item is Undefined u ? u.Fail() : new TemplateRuntimeException($"'in <string>' requires string as left operand, not {TypeName(item)}");
                return AsString(container)!.Contains(needle, StringComparison.Ordinal);
            case PyDict dict: return item is not null && item is not Undefined && dict.ContainsKey(item);
            case Undefined: return false;
            default: return Iterate(container).Any(x => PyEquals(x, item));
        }
    }

    /// <summary>Python's iter(value) as jinja2 uses it (Undefined iterates as empty; a dict yields its keys).</summary>
    public static IEnumerable<object?> Iterate(object? value) => value switch
    {
        List<object?> list => list,
        PyTuple t => t.Items,
        string s => PyText.CodePoints(s),
        Markup m => PyText.CodePoints(m.Value),
        PyDict dict => dict.Keys.ToList(),
        PyDictView view => view.Items,
        PyRange r => r.Items(),
        PyIterator it => it.Consume(),
        Undefined => [],
        _ => throw new TemplateRuntimeException($"'{TypeName(value)}' object is not iterable"),
    };

    /// <summary>Python's len(value) (jinja2's <c>length</c> filter; Undefined has length 0).</summary>
    public static long Length(object? value) => value switch
    {
        string s => PyText.Length(s),
        Markup m => PyText.Length(m.Value),
        List<object?> list => list.Count,
        PyTuple t => t.Count,
        PyDict dict => dict.Count,
        PyDictView view => view.Items.Count,
        PyRange r => r.Count,
        Namespace => throw new TemplateRuntimeException("object of type 'Namespace' has no len()"),
        Undefined => 0,
        _ => throw new TemplateRuntimeException($"object of type '{TypeName(value)}' has no len()"),
    };

    /// <summary>jinja2's sandboxed getattr (<c>a.name</c>): Python attribute first (methods), then the item.</summary>
    public static object? GetAttr(object? obj, string name)
    {
        switch (obj)
        {
            case Undefined u: throw u.Fail();
            case Namespace ns: return ns.Attributes.TryGetValue(name, out var v) ? v : Undefined.Member(obj, name);
            case LoopContext loop: return loop.Attribute(name);
        }
        if (TemplateMethods.Bind(obj, name) is { } method) return method;
        if (obj is PyDict dict) return dict.TryGetValue(name, out var value) ? value : Undefined.Member(obj, name);
        return Undefined.Member(obj, name);
    }

    /// <summary>jinja2's sandboxed getitem (<c>a[key]</c>): the item first, then (for a string key) the attribute; missing gives Undefined.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        if (obj is Undefined u) throw u.Fail();
        if (key is Undefined uk) throw uk.Fail();
        switch (obj)
        {
            case PyDict dict when key is not null:
                if (dict.TryGetValue(key, out var value)) return value;
                break;
            case List<object?> or PyTuple or string or Markup or PyRange when key is bool or long:
            {
                IReadOnlyList<object?> items = obj switch
                {
                    List<object?> list => list,
                    PyTuple tuple => tuple,
                    string or Markup => PyText.CodePoints(AsString(obj)!),
                    _ => Iterate(obj).ToList(),
                };
                long index = ToLong(key);
                if (index < 0) index += items.Count;
                return index >= 0 && index < items.Count ? items[(int)index] : Undefined.Member(obj, key);
            }
        }
        if (key is string name && obj is not (Namespace or LoopContext) && TemplateMethods.Bind(obj, name) is { } method) return method;
        if (key is string attr && obj is Namespace or LoopContext) return GetAttr(obj, attr);
        return Undefined.Member(obj, key);
    }

    /// <summary>Python's slicing <c>obj[start:stop:step]</c> of a list, tuple or string.</summary>
    public static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        if (obj is Undefined u) throw u.Fail();
        long? Bound(object? v, string what) => v switch
        {
            null => null,
            bool or long => ToLong(v),
            Undefined ud => throw ud.Fail(),
            _ => throw new TemplateRuntimeException($"slice {what} must be an integer or None, not {TypeName(v)}"),
        };
        long stepValue = Bound(step, "step") ?? 1;
        if (stepValue == 0) throw new TemplateRuntimeException("slice step cannot be zero");
        List<object?> items = obj switch
        {
            string s => PyText.CodePoints(s).Cast<object?>().ToList(),
            Markup m => PyText.CodePoints(m.Value).Cast<object?>().ToList(),
            List<object?> or PyTuple or PyRange => Iterate(obj).ToList(),
            _ => throw new TemplateRuntimeException($"'{TypeName(obj)}' object is not subscriptable with a slice"),
        };
        long n = items.Count;
        long Clamp(long? v, long lowDefault, long highDefault)
        {
            if (v is null) return stepValue > 0 ? lowDefault : highDefault;
            long x = v.Value < 0 ? v.Value + n : v.Value;
            return stepValue > 0 ? Math.Clamp(x, 0, n) : Math.Clamp(x, -1, n - 1);
        }
        long from = Clamp(Bound(start, "start"), 0, n - 1), to = Clamp(Bound(stop, "stop"), n, -1);
        var result = new List<object?>();
        for (long i = from; stepValue > 0 ? i < to : i > to; i += stepValue) result.Add(items[(int)i]);
        return obj switch
        {
            string or Markup => string.Concat(result.Cast<string>()),
            PyTuple => new PyTuple(result.ToArray()),
            _ => result,
        };
    }

    /// <summary>Python's binary arithmetic: + - * / // % **.</summary>
    public static object? Arithmetic(string op, object? a, object? b)
    {
        if (a is Undefined ua) throw ua.Fail();
        if (b is Undefined ub) throw ub.Fail();
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return FloatArithmetic(op, ToDouble(a), ToDouble(b));
            return IntArithmetic(op, ToLong(a), ToLong(b));
        }
        switch (op)
        {
            case "+" when a is Markup || b is Markup:
                if (AsString(a) is { } ma && AsString(b) is { } mb)
                    return new Markup((a is Markup ? ma : TemplateFilters.Escape(ma)) + (b is Markup ? mb : TemplateFilters.Escape(mb)));
                break;
            case "+" when a is string sa && b is string sb: return sa + sb;
            case "+" when a is List<object?> la && b is List<object?> lb: return la.Concat(lb).ToList();
            case "+" when a is PyTuple ta && b is PyTuple tb: return new PyTuple(ta.Items.Concat(tb.Items).ToArray());
            case "*" when (a is string && b is bool or long) || (b is string && a is bool or long):
            {
                string s = a as string ?? (string)b!;
                long times = a is string ? ToLong(b) : ToLong(a);
                if (times > 0 && (long)s.Length * times > 10_000_000) throw new TemplateRuntimeException("string repetition too large");
                return times <= 0 ? "" : string.Concat(Enumerable.Repeat(s, (int)times));
            }
            case "*" when (a is List<object?> && b is bool or long) || (b is List<object?> && a is bool or long):
            {
                var list = a as List<object?> ?? (List<object?>)b!;
                long times = a is List<object?> ? ToLong(b) : ToLong(a);
                var result = new List<object?>();
                for (long i = 0; i < times; i++) result.AddRange(list);
                return result;
            }
            case "%" when a is string or Markup:
                throw new TemplateRuntimeException("printf-style string formatting ('...' % value) is not supported by this interpreter");
        }
        if (op == "+" && a is string && b is not string)
            throw new TemplateRuntimeException($"can only concatenate str (not \"{TypeName(b)}\") to str");
        if (op == "+" && a is List<object?>)
            throw new TemplateRuntimeException($"can only concatenate list (not \"{TypeName(b)}\") to list");
        throw new TemplateRuntimeException($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static object IntArithmetic(string op, long a, long b)
    {
        try
        {
            checked
            {
                switch (op)
                {
                    case "+": return a + b;
                    case "-": return a - b;
                    case "*": return a * b;
                    case "/":
                        if (b == 0) throw new TemplateRuntimeException("division by zero");
                        return (double)a / b;
                    case "//":
                        if (b == 0) throw new TemplateRuntimeException("integer division or modulo by zero");
                        return FloorDiv(a, b);
                    case "%":
                        if (b == 0) throw new TemplateRuntimeException("integer division or modulo by zero");
                        long r = a % b;
                        return r != 0 && (r < 0) != (b < 0) ? r + b : r;
                    case "**":
                        if (b < 0) return Math.Pow(a, b);
                        long result = 1;
                        for (long i = 0; i < b; i++) result *= a;
                        return result;
                }
            }
        }
        catch (OverflowException)
        {
            throw new TemplateRuntimeException($"integer result of {a} {op} {b} exceeds 64 bits (Python's unbounded ints are not supported)");
        }
        throw new TemplateRuntimeException($"unknown operator {op}");
    }

    private static long FloorDiv(long a, long b)
    {
        long q = a / b;
        return (a % b != 0) && ((a < 0) != (b < 0)) ? q - 1 : q;
    }

    private static object FloatArithmetic(string op, double a, double b)
    {
        switch (op)
        {
            case "+": return a + b;
            case "-": return a - b;
            case "*": return a * b;
            case "/":
                if (b == 0) throw new TemplateRuntimeException("float division by zero");
                return a / b;
            case "//":
                if (b == 0) throw new TemplateRuntimeException("float floor division by zero");
                return Math.Floor(a / b);
            case "%":
                if (b == 0) throw new TemplateRuntimeException("float modulo");
                // As CPython's float_rem: fmod, then the sign of the divisor.
                double m = a % b;
                return m != 0 ? ((b < 0) != (m < 0) ? m + b : m) : Math.CopySign(0, b);
            case "**": return Math.Pow(a, b);
        }
        throw new TemplateRuntimeException($"unknown operator {op}");
    }

    /// <summary>Unary minus and plus.</summary>
    public static object? Negate(object? value, bool minus) => value switch
    {
        // The casts keep ints ints: a switch over long and double arms would widen both to double.
        bool or long => (object)(minus ? -ToLong(value) : ToLong(value)),
        double d => (object)(minus ? -d : d),
        Undefined u => throw u.Fail(),
        _ => throw new TemplateRuntimeException($"bad operand type for unary {(minus ? "-" : "+")}: '{TypeName(value)}'"),
    };
}

namespace Grpo.Native.Tokenization.Templates;

/// <summary>jinja2's tests (<c>x is name</c>, and the test names select/reject take), as jinja2 3.1 defines them.</summary>
internal static class TemplateTests
{
    private delegate bool Test(object? value, object?[] args);

    private static readonly Dictionary<string, (int Arity, Test Test)> Tests = new(StringComparer.Ordinal)
    {
        ["odd"] = (0, (v, _) => Modulo(v, 2L) == 1),
        ["even"] = (0, (v, _) => Modulo(v, 2L) == 0),
        ["divisibleby"] = (1, (v, a) => Modulo(v, a[0]) == 0),
        ["defined"] = (0, (v, _) => v is not Undefined),
        ["undefined"] = (0, (v, _) => v is Undefined),
        ["filter"] = (0, (v, _) => v is string s && TemplateFilters.Problem(s) is null),
        ["test"] = (0, (v, _) => v is string s && Tests!.ContainsKey(s)),
        ["none"] = (0, (v, _) => v is null),
        ["boolean"] = (0, (v, _) => v is bool),
        ["false"] = (0, (v, _) => v is false),
        ["true"] = (0, (v, _) => v is true),
        ["integer"] = (0, (v, _) => v is long),
        ["float"] = (0, (v, _) => v is double),
        ["lower"] = (0, (v, _) => TemplateMethods.IsLower(PyText.Str(v))),
        ["upper"] = (0, (v, _) => TemplateMethods.IsUpper(PyText.Str(v))),
        ["string"] = (0, (v, _) => v is string or Markup),
        ["mapping"] = (0, (v, _) => v is PyDict),
        ["number"] = (0, (v, _) => v is bool or long or double),
        // len() and __getitem__: str, list, tuple, dict, range, and jinja2's Undefined.
        ["sequence"] = (0, (v, _) => v is string or Markup or List<object?> or PyTuple or PyDict or PyRange or Undefined),
        ["iterable"] = (0, (v, _) => v is string or Markup or List<object?> or PyTuple or PyDict or PyDictView or PyRange or PyIterator or Undefined or LoopContext),
        ["callable"] = (0, (v, _) => v is PyCallable or Macro or Undefined or LoopContext),
        ["sameas"] = (1, (v, a) => SameAs(v, a[0])),
        ["escaped"] = (0, (v, _) => v is Markup),
        ["in"] = (1, (v, a) => PyOps.Contains(a[0], v)),
        ["=="] = (1, (v, a) => PyOps.PyEquals(v, a[0])),
        ["eq"] = (1, (v, a) => PyOps.PyEquals(v, a[0])),
        ["equalto"] = (1, (v, a) => PyOps.PyEquals(v, a[0])),
        ["!="] = (1, (v, a) => !PyOps.PyEquals(v, a[0])),
        ["ne"] = (1, (v, a) => !PyOps.PyEquals(v, a[0])),
        [">"] = (1, (v, a) => PyOps.Compare(v, a[0], ">") > 0),
        ["gt"] = (1, (v, a) => PyOps.Compare(v, a[0], ">") > 0),
        ["greaterthan"] = (1, (v, a) => PyOps.Compare(v, a[0], ">") > 0),
        [">="] = (1, (v, a) => PyOps.Compare(v, a[0], ">=") >= 0),
        ["ge"] = (1, (v, a) => PyOps.Compare(v, a[0], ">=") >= 0),
        ["<"] = (1, (v, a) => PyOps.Compare(v, a[0], "<") < 0),
        ["lt"] = (1, (v, a) => PyOps.Compare(v, a[0], "<") < 0),
        ["lessthan"] = (1, (v, a) => PyOps.Compare(v, a[0], "<") < 0),
        ["<="] = (1, (v, a) => PyOps.Compare(v, a[0], "<=") <= 0),
        ["le"] = (1, (v, a) => PyOps.Compare(v, a[0], "<=") <= 0),
    };

    /// <summary>Why the test <paramref name="name"/> cannot be used, or null when it can.</summary>
    public static string? Problem(string name) => Tests.ContainsKey(name) ? null : $"no test named '{name}'";

    public static bool Apply(string name, object? value, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        if (!Tests.TryGetValue(name, out var entry)) throw new TemplateRuntimeException(Problem(name)!);
        if (kwargs.Count > 0) throw new TemplateRuntimeException($"test '{name}' takes no keyword arguments");
        if (args.Count != entry.Arity)
            throw new TemplateRuntimeException($"test '{name}' takes {entry.Arity} argument(s), {args.Count} given");
        return entry.Test(value, args.ToArray());
    }

    private static long Modulo(object? value, object? divisor)
    {
        var result = PyOps.Arithmetic("%", value, divisor);
        return result switch { long l => l, double d => d == 0 ? 0 : 1, _ => 1 };
    }

    private static bool SameAs(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (bool x, bool y) => x == y,
        // CPython caches the small ints, so `5 is 5` holds; larger equal ints are usually distinct objects.
        (long x, long y) => x == y && x is >= -5 and <= 256,
        _ => ReferenceEquals(a, b),
    };
}

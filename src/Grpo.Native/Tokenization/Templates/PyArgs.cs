namespace Grpo.Native.Tokenization.Templates;

/// <summary>Binds call arguments to a Python-style signature (positional, then by keyword, then defaults).</summary>
internal static class PyArgs
{
    /// <summary>Marks a parameter without a default.</summary>
    public static readonly object Required = new();

    public static object?[] Bind(string function, List<object?> args, List<KeyValuePair<string, object?>> kwargs,
        params (string Name, object? Default)[] parameters)
    {
        if (args.Count > parameters.Length)
            throw new TemplateRuntimeException($"{function}() takes at most {parameters.Length} argument(s) ({args.Count} given)");
        var bound = new object?[parameters.Length];
        var set = new bool[parameters.Length];
        for (int i = 0; i < args.Count; i++) (bound[i], set[i]) = (args[i], true);
        foreach (var (name, value) in kwargs)
        {
            int at = Array.FindIndex(parameters, p => p.Name == name);
            if (at < 0) throw new TemplateRuntimeException($"{function}() got an unexpected keyword argument '{name}'");
            if (set[at]) throw new TemplateRuntimeException($"{function}() got multiple values for argument '{name}'");
            (bound[at], set[at]) = (value, true);
        }
        for (int i = 0; i < parameters.Length; i++)
        {
            if (set[i]) continue;
            if (ReferenceEquals(parameters[i].Default, Required))
                throw new TemplateRuntimeException($"{function}() missing required argument '{parameters[i].Name}'");
            bound[i] = parameters[i].Default;
        }
        return bound;
    }

    public static string AsString(object? value, string function, string parameter) => value switch
    {
        string s => s,
        Markup m => m.Value,
        Undefined u => throw u.Fail(),
        _ => throw new TemplateRuntimeException($"{function}() argument '{parameter}' must be str, not {PyOps.TypeName(value)}"),
    };

    public static string? AsOptionalString(object? value, string function, string parameter) =>
        value is null ? null : AsString(value, function, parameter);

    public static long AsInt(object? value, string function, string parameter) => value switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        Undefined u => throw u.Fail(),
        _ => throw new TemplateRuntimeException($"{function}() argument '{parameter}' must be an integer, not {PyOps.TypeName(value)}"),
    };
}

using System.Globalization;
using System.Text;

namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// Python's json.dumps, which transformers' <c>tojson</c> filter calls: separators ", " and ": " by default ("," and ": "
/// once indenting), insertion order kept, floats as Python's repr, non-ASCII kept unless ensure_ascii.
/// </summary>
internal static class PyJson
{
    public static string Dumps(object? value, bool ensureAscii, object? indent, object? separators, bool sortKeys)
    {
        string? indentUnit = indent switch
        {
            null => null,
            string s => s,
            bool or long => new string(' ', (int)Math.Max(0, indent is bool b ? (b ? 1 : 0) : (long)indent)),
            _ => throw new TemplateRuntimeException($"tojson indent must be an int or a string, not {PyOps.TypeName(indent)}"),
        };
        (string item, string key) = separators switch
        {
            null => indentUnit is null ? (", ", ": ") : (",", ": "),
            List<object?> { Count: 2 } l => (PyText.Str(l[0]), PyText.Str(l[1])),
            PyTuple { Count: 2 } t => (PyText.Str(t[0]), PyText.Str(t[1])),
            _ => throw new TemplateRuntimeException("tojson separators must be an (item_separator, key_separator) pair"),
        };
        var sb = new StringBuilder();
        Write(sb, value, ensureAscii, indentUnit, item, key, sortKeys, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? value, bool ascii, string? indent, string item, string key, bool sortKeys, int level)
    {
        switch (value)
        {
            case null: sb.Append("null"); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d: sb.Append(Float(d)); return;
            case string or Markup: WriteString(sb, PyText.Str(value), ascii); return;
            case List<object?> or PyTuple:
            {
                var items = ((IEnumerable<object?>)value).ToList();
                if (items.Count == 0) { sb.Append("[]"); return; }
                sb.Append('[');
                for (int i = 0; i < items.Count; i++)
                {
                    sb.Append(i == 0 ? "" : item);
                    NewLine(sb, indent, level + 1);
                    Write(sb, items[i], ascii, indent, item, key, sortKeys, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                return;
            }
            case PyDict dict:
            {
                if (dict.Count == 0) { sb.Append("{}"); return; }
                var pairs = dict.Select(kv => (Key: KeyText(kv.Key), kv.Value)).ToList();
                if (sortKeys) pairs = pairs.OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
                sb.Append('{');
                for (int i = 0; i < pairs.Count; i++)
                {
                    sb.Append(i == 0 ? "" : item);
                    NewLine(sb, indent, level + 1);
                    WriteString(sb, pairs[i].Key, ascii);
                    sb.Append(key);
                    Write(sb, pairs[i].Value, ascii, indent, item, key, sortKeys, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                return;
            }
            case Undefined u: throw new TemplateRuntimeException("Object of type Undefined is not JSON serializable");
            default: throw new TemplateRuntimeException($"Object of type {PyOps.TypeName(value)} is not JSON serializable");
        }
    }

    private static void NewLine(StringBuilder sb, string? indent, int level)
    {
        if (indent is null) return;
        sb.Append('\n');
        for (int i = 0; i < level; i++) sb.Append(indent);
    }

    private static string Float(double d) =>
        double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyText.FloatRepr(d);

    /// <summary>json.dumps turns non-string keys into strings: true/false/null, numbers as their JSON text.</summary>
    private static string KeyText(object key) => key switch
    {
        string s => s,
        Markup m => m.Value,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Float(d),
        _ => throw new TemplateRuntimeException($"keys must be str, int, float, bool or None, not {PyOps.TypeName(key)}"),
    };

    private static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7e)) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}

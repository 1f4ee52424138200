using System.Globalization;
using System.Text;

namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// Python's text rules: str() and repr() of values (what <c>{{ }}</c> prints), float repr, whitespace, and the
/// string operations that count in code points (Python strings index code points, C# strings UTF-16 units).
/// </summary>
internal static class PyText
{
    /// <summary>Python's str(value), with jinja2's Undefined printing as "".</summary>
    public static string Str(object? value) => value switch
    {
        string s => s,
        Markup m => m.Value,
        Undefined => "",
        _ => Repr(value),
    };

    /// <summary>Python's repr(value).</summary>
    public static string Repr(object? value)
    {
        switch (value)
        {
            case null: return "None";
            case bool b: return b ? "True" : "False";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return FloatRepr(d);
            case string s: return StringRepr(s);
            case Markup m: return $"Markup({StringRepr(m.Value)})";
            case List<object?> list: return "[" + string.Join(", ", list.Select(Repr)) + "]";
            case PyTuple t: return t.Count == 1 ? $"({Repr(t[0])},)" : "(" + string.Join(", ", t.Items.Select(Repr)) + ")";
            case PyDict dict: return "{" + string.Join(", ", dict.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}";
            case PyDictView view: return $"dict_{view.Kind}([" + string.Join(", ", view.Items.Select(Repr)) + "])";
            case PyRange r: return r.Step == 1 ? $"range({r.Start}, {r.Stop})" : $"range({r.Start}, {r.Stop}, {r.Step})";
            case Namespace ns: return "<Namespace " + Repr(ns.Attributes) + ">";
            case Undefined: return "Undefined";
            case PyIterator it: return $"<generator object {it.Name}>";
            case PyCallable c: return $"<built-in function {c.Name}>";
            case Macro m: return $"<Macro '{m.Name}'>";
            case LoopContext: return "<LoopContext>";
            default: return value.ToString() ?? "";
        }
    }

    /// <summary>Python's float repr: shortest round-trip digits, exponent form below 1e-4 and from 1e16 on.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (double.IsNegative(d)) return "-" + FloatRepr(-d);
        if (d == 0) return "0.0";
        var (digits, decpt) = ShortestDigits(d);
        if (decpt <= -4 || decpt > 16)
        {
            string mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            int exp = decpt - 1;
            return mantissa + "e" + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
        }
        if (decpt <= 0) return "0." + new string('0', -decpt) + digits;
        if (decpt >= digits.Length) return digits + new string('0', decpt - digits.Length) + ".0";
        return digits[..decpt] + "." + digits[decpt..];
    }

    /// <summary>The shortest digits that round-trip (no leading/trailing zeros) and the decimal point position: value = 0.DIGITS × 10^decpt.</summary>
    private static (string Digits, int Decpt) ShortestDigits(double positive)
    {
        string r = positive.ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOfAny(['E', 'e']);
        int exp = e < 0 ? 0 : int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
        string mantissa = e < 0 ? r : r[..e];
        int dot = mantissa.IndexOf('.');
        int intLength = dot < 0 ? mantissa.Length : dot;
        string digits = mantissa.Replace(".", "");
        int decpt = intLength + exp;
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; decpt--; }
        digits = digits[lead..].TrimEnd('0');
        return (digits.Length == 0 ? "0" : digits, decpt);
    }

    /// <summary>Python's repr of a str: single quotes unless the text has ' and no ", escapes for the unprintable.</summary>
    public static string StringRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2).Append(quote);
        foreach (var rune in s.EnumerateRunes())
        {
            int c = rune.Value;
            if (c == quote || c == '\\') sb.Append('\\').Append((char)c);
            else if (c == '\t') sb.Append("\\t");
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(c.ToString("x2", CultureInfo.InvariantCulture));
            else if (c >= 0x80 && !IsPrintable(rune))
                sb.Append(c < 0x100 ? "\\x" + c.ToString("x2", CultureInfo.InvariantCulture)
                    : c < 0x10000 ? "\\u" + c.ToString("x4", CultureInfo.InvariantCulture)
                    : "\\U" + c.ToString("x8", CultureInfo.InvariantCulture));
            else sb.Append(rune.ToString());
        }
        return sb.Append(quote).ToString();
    }

    private static bool IsPrintable(Rune rune) => Rune.GetUnicodeCategory(rune) switch
    {
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
            or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
            or UnicodeCategory.SpaceSeparator => false,
        _ => true,
    };

    /// <summary>Python's str.isspace for one character (includes U+001C–U+001F and U+0085, unlike some other runtimes).</summary>
    public static bool IsSpace(char c) => c switch
    {
        ' ' or '\t' or '\n' or '\v' or '\f' or '\r' or '\x1c' or '\x1d' or '\x1e' or '\x1f' or '\x85' or '\xa0'
            or '\u1680' or '\u2028' or '\u2029' or '\u202f' or '\u205f' or '\u3000' => true,
        >= '\u2000' and <= '\u200a' => true,
        _ => false,
    };

    /// <summary>Python's str.strip/lstrip/rstrip: whitespace when <paramref name="chars"/> is null, else those characters.</summary>
    public static string Strip(string s, string? chars, bool left = true, bool right = true)
    {
        Func<char, bool> strip = chars is null ? IsSpace : chars.Contains;
        int start = 0, end = s.Length;
        if (left) while (start < end && strip(s[start])) start++;
        if (right) while (end > start && strip(s[end - 1])) end--;
        return s[start..end];
    }

    /// <summary>Python's str.split (sep null: runs of whitespace, ends dropped) with maxsplit (-1: no limit).</summary>
    public static List<object?> Split(string s, string? sep, long maxsplit)
    {
        var parts = new List<object?>();
        if (sep is null)
        {
            int i = 0, n = s.Length;
            while (true)
            {
                while (i < n && IsSpace(s[i])) i++;
                if (i >= n) break;
                if (maxsplit >= 0 && parts.Count >= maxsplit)
                {
                    parts.Add(s[i..]);
                    break;
                }
                int j = i;
                while (j < n && !IsSpace(s[j])) j++;
                parts.Add(s[i..j]);
                i = j;
            }
            return parts;
        }
        if (sep.Length == 0) throw new TemplateRuntimeException("empty separator");
        int start = 0;
        while (maxsplit < 0 || parts.Count < maxsplit)
        {
            int at = s.IndexOf(sep, start, StringComparison.Ordinal);
            if (at < 0) break;
            parts.Add(s[start..at]);
            start = at + sep.Length;
        }
        parts.Add(s[start..]);
        return parts;
    }

    /// <summary>Python's str.rsplit.</summary>
    public static List<object?> RSplit(string s, string? sep, long maxsplit)
    {
        if (maxsplit < 0) return Split(s, sep, -1);
        var parts = new List<object?>();
        if (sep is null)
        {
            int j = s.Length;
            while (true)
            {
                while (j > 0 && IsSpace(s[j - 1])) j--;
                if (j <= 0) break;
                if (parts.Count >= maxsplit)
                {
                    parts.Add(s[..j]);
                    break;
                }
                int i = j;
                while (i > 0 && !IsSpace(s[i - 1])) i--;
                parts.Add(s[i..j]);
                j = i;
            }
            parts.Reverse();
            return parts;
        }
        if (sep.Length == 0) throw new TemplateRuntimeException("empty separator");
        int end = s.Length;
        while (parts.Count < maxsplit)
        {
            int at = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
            if (at < 0 || at + sep.Length > end) break;
            parts.Add(s[(at + sep.Length)..end]);
            end = at;
        }
        parts.Add(s[..end]);
        parts.Reverse();
        return parts;
    }

    /// <summary>Python's str.splitlines (all of Python's line boundaries; keepends optional).</summary>
    public static List<string> SplitLines(string s, bool keepEnds = false)
    {
        var lines = new List<string>();
        int start = 0, i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            bool boundary = c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';
            if (!boundary) { i++; continue; }
            int eol = i + (c == '\r' && i + 1 < s.Length && s[i + 1] == '\n' ? 2 : 1);
            lines.Add(keepEnds ? s[start..eol] : s[start..i]);
            start = i = eol;
        }
        if (start < s.Length) lines.Add(s[start..]);
        return lines;
    }

    /// <summary>Python's str.replace (count -1: all; an empty old inserts between code points).</summary>
    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count == 0) return s;
        if (old.Length == 0)
        {
            var runes = CodePoints(s);
            var sb = new StringBuilder();
            long done = 0;
            for (int i = 0; i <= runes.Count; i++)
            {
                if (count < 0 || done < count) { sb.Append(replacement); done++; }
                if (i < runes.Count) sb.Append(runes[i]);
            }
            return sb.ToString();
        }
        if (count < 0) return s.Replace(old, replacement, StringComparison.Ordinal);
        var result = new StringBuilder();
        int start = 0;
        for (long n = 0; n < count; n++)
        {
            int at = s.IndexOf(old, start, StringComparison.Ordinal);
            if (at < 0) break;
            result.Append(s, start, at - start).Append(replacement);
            start = at + old.Length;
        }
        return result.Append(s, start, s.Length - start).ToString();
    }

    /// <summary>Python's str.title: a cased letter after an uncased character starts a word.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (var rune in s.EnumerateRunes())
        {
            bool cased = Rune.IsUpper(rune) || Rune.IsLower(rune) || Rune.GetUnicodeCategory(rune) == UnicodeCategory.TitlecaseLetter;
            sb.Append((previousCased ? Rune.ToLowerInvariant(rune) : Rune.ToUpperInvariant(rune)).ToString());
            previousCased = cased;
        }
        return sb.ToString();
    }

    /// <summary>Python's str.capitalize: first code point upper, the rest lower.</summary>
    public static string Capitalize(string s)
    {
        if (s.Length == 0) return s;
        int first = char.IsSurrogatePair(s, 0) ? 2 : 1;
        return s[..first].ToUpperInvariant() + s[first..].ToLowerInvariant();
    }

    /// <summary>The code points of <paramref name="s"/>, each as a string (what Python indexes and iterates).</summary>
    public static List<string> CodePoints(string s)
    {
        var list = new List<string>(s.Length);
        foreach (var rune in s.EnumerateRunes()) list.Add(rune.ToString());
        return list;
    }

    /// <summary>Python's len(str): code points.</summary>
    public static int Length(string s)
    {
        int n = s.Length;
        for (int i = 0; i < s.Length - 1; i++)
            if (char.IsSurrogatePair(s[i], s[i + 1])) { n--; i++; }
        return n;
    }

    /// <summary>The code point index of UTF-16 index <paramref name="charIndex"/> (for find/index results).</summary>
    public static int CodePointIndex(string s, int charIndex) => charIndex < 0 ? charIndex : Length(s[..charIndex]);
}

using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Grpo.Native.Rewards;

/// <summary>
/// A normalized final answer: its text and, when that text is a number, its value. Both sides of the
/// accuracy check are normalized alike, so they compare as numbers or, failing that, as text.
/// </summary>
/// <param name="Text">The normalized text: \text-like wrappers, $, LaTeX spacing, whitespace and trailing dots removed.</param>
/// <param name="Value">The value when <paramref name="Text"/> is a number (integer, decimal, thousands-grouped, a/b, \frac, a percentage); else null.</param>
internal sealed partial record MathAnswer(string Text, double? Value)
{
    /// <summary>Two numbers are equal when |a − b| ≤ 1e-9 · max(|a|, |b|) (Python's math.isclose default).</summary>
    public const double RelativeTolerance = 1e-9;

    private static readonly string[] Wrappers = ["\\text", "\\textbf", "\\textrm", "\\mathrm", "\\mathbf", "\\boxed"];

    /// <summary>The normalized answer, or null when nothing is left of <paramref name="raw"/>.</summary>
    public static MathAnswer? Parse(string raw)
    {
        string text = Normalize(raw);
        return text.Length == 0 ? null : new MathAnswer(text, TryNumber(text, out double value) ? value : null);
    }

    /// <summary>A number a dataset stores as a number; null when it is not finite.</summary>
    public static MathAnswer? FromNumber(double value) =>
        double.IsFinite(value) ? new MathAnswer(value.ToString("R", CultureInfo.InvariantCulture), value) : null;

    /// <summary>Equal numbers (within <see cref="RelativeTolerance"/>), else equal normalized text.</summary>
    public bool Matches(MathAnswer other) =>
        Value is double a && other.Value is double b
            ? Math.Abs(a - b) <= RelativeTolerance * Math.Max(Math.Abs(a), Math.Abs(b))
            : string.Equals(Text, other.Text, StringComparison.Ordinal);

    internal static string Normalize(string raw)
    {
        string text = raw;
        foreach (string wrapper in Wrappers) text = Latex.Unwrap(text, wrapper);
        var b = new StringBuilder(text)
            .Replace("\\$", "").Replace("$", "")
            .Replace("{,}", ",")                                  // 10{,}000: LaTeX's grouping comma
            .Replace("\\,", "").Replace("\\!", "").Replace("\\ ", "") // thin, negative and control spaces
            .Replace('\u2212', '-');                              // the Unicode minus sign
        for (int i = b.Length - 1; i >= 0; i--)
            if (char.IsWhiteSpace(b[i])) b.Remove(i, 1);
        return b.ToString().TrimEnd('.');
    }

    // A number: optional sign; a decimal (thousands groups of exactly 3 digits allowed), a/b,
    // \frac{a}{b} (\dfrac, \tfrac; \frac12 too); optionally a percent sign, which leaves the value as is (50% = 50).
    private const string Decimal = @"(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)";
    private const string NumberPattern = @"^(?<sign>[+-]?)(?:(?<num>" + Decimal + @")(?:/(?<den>" + Decimal + @"))?"
        + @"|\\[dt]?frac\{(?<num>[+-]?" + Decimal + @")\}\{(?<den>[+-]?" + Decimal + @")\}"
        + @"|\\[dt]?frac(?<num>[0-9])(?<den>[0-9]))(?:\\?%)?$";

    [GeneratedRegex(NumberPattern, RegexOptions.CultureInvariant)]
    private static partial Regex Number();

    private static bool TryNumber(string text, out double value)
    {
        value = 0;
        var m = Number().Match(text);
        if (!m.Success) return false;
        double numerator = Parse(m.Groups["num"].Value);
        double denominator = m.Groups["den"].Success ? Parse(m.Groups["den"].Value) : 1;
        if (denominator == 0) return false; // 1/0 is no number; it can still match as text
        value = (m.Groups["sign"].Value == "-" ? -numerator : numerator) / denominator;
        return double.IsFinite(value);

        static double Parse(string s) => double.Parse(s.Replace(",", ""), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint,
            CultureInfo.InvariantCulture);
    }
}

using System.Text.RegularExpressions;

namespace Grpo.Native.Rewards;

/// <summary>Finds the final answer in a reference solution and in a completion.</summary>
internal static partial class MathAnswerExtraction
{
    private const string Boxed = "\\boxed";

    /// <summary>
    /// The reference's answer: the text after the last <c>####</c> (GSM8K) if any; of that, the last
    /// <c>\boxed{}</c>'s argument if it has one; else all of it. Null when nothing usable is left or a
    /// <c>\boxed</c> has no balanced argument.
    /// </summary>
    public static MathAnswer? FromReference(string reference)
    {
        int hashes = reference.LastIndexOf("####", StringComparison.Ordinal);
        string text = hashes >= 0 ? reference[(hashes + 4)..] : reference;
        if (text.Contains(Boxed, StringComparison.Ordinal))
        {
            var boxed = Latex.Commands(text, Boxed);
            if (boxed.Count == 0) return null;
            text = boxed[^1].Argument;
        }
        return MathAnswer.Parse(text);
    }

    /// <summary>The completion's answer: its last balanced <c>\boxed{}</c>'s argument, else its last number; null when it has neither.</summary>
    public static MathAnswer? FromCompletion(string completion)
    {
        var boxed = Latex.Commands(completion, Boxed);
        if (boxed.Count > 0) return MathAnswer.Parse(boxed[^1].Argument);
        var numbers = LastNumberCandidates().Matches(completion.Replace('\u2212', '-'));
        return numbers.Count == 0 ? null : MathAnswer.Parse(numbers[^1].Value);
    }

    // A number in running text: \frac{a}{b}, or digits with thousands groups, decimals and an a/b fraction.
    // A '-' is a sign only where it cannot be a binary minus (not after a word character or a closing bracket): "10-4" ends in 4.
    [GeneratedRegex(@"(?:(?<![\w)\]}])-)?(?:\\[dt]?frac\{-?[0-9]+(?:\.[0-9]+)?\}\{-?[0-9]+(?:\.[0-9]+)?\}|(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?(?:/[0-9]+(?:\.[0-9]+)?)?)",
        RegexOptions.CultureInvariant)]
    private static partial Regex LastNumberCandidates();
}

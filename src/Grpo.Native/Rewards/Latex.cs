using System.Text;

namespace Grpo.Native.Rewards;

/// <summary>The little LaTeX the accuracy check reads: a command's braced argument, braces balanced.</summary>
internal static class Latex
{
    /// <summary>
    /// Every <c>\command{argument}</c> in <paramref name="text"/> whose braces balance, left to right.
    /// One nested inside another's argument is part of that argument, not a separate find.
    /// </summary>
    /// <param name="text">The text to search.</param>
    /// <param name="command">The command with its backslash, e.g. <c>\boxed</c>.</param>
    public static List<(int Start, int End, string Argument)> Commands(string text, string command)
    {
        var found = new List<(int, int, string)>();
        int i = 0;
        while ((i = text.IndexOf(command, i, StringComparison.Ordinal)) >= 0)
        {
            int j = i + command.Length;
            if (j < text.Length && char.IsAsciiLetter(text[j])) { i = j; continue; } // a longer name: \textbf is not \text
            while (j < text.Length && char.IsWhiteSpace(text[j])) j++;
            int close = j < text.Length && text[j] == '{' ? ClosingBrace(text, j) : -1;
            if (close < 0) { i = j; continue; } // no argument, or one cut off (a truncated completion)
            found.Add((i, close + 1, text[(j + 1)..close]));
            i = close + 1;
        }
        return found;
    }

    /// <summary>Replaces every <c>\command{x}</c> with x, nested ones too.</summary>
    public static string Unwrap(string text, string command)
    {
        var commands = Commands(text, command);
        if (commands.Count == 0) return text;
        var result = new StringBuilder(text.Length);
        int at = 0;
        foreach (var (start, end, argument) in commands)
        {
            result.Append(text, at, start - at).Append(Unwrap(argument, command));
            at = end;
        }
        return result.Append(text, at, text.Length - at).ToString();
    }

    // The index of the '}' that closes the '{' at open, or −1; \{ and \} are literal braces and do not count.
    private static int ClosingBrace(string text, int open)
    {
        int depth = 0;
        for (int k = open; k < text.Length; k++)
        {
            char c = text[k];
            if (c == '\\') k++;
            else if (c == '{') depth++;
            else if (c == '}' && --depth == 0) return k;
        }
        return -1;
    }
}

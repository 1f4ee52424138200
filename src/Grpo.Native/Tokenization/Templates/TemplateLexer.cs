using System.Globalization;
using System.Text;

namespace Grpo.Native.Tokenization.Templates;

internal enum TokenKind { Data, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

/// <summary>One token: <see cref="Text"/> is the source text (the operator, the name), <see cref="Value"/> the literal's value.</summary>
internal readonly record struct Token(TokenKind Kind, string Text, object? Value, int Line)
{
    public bool IsOperator(string op) => Kind == TokenKind.Operator && Text == op;
    public bool IsName(string name) => Kind == TokenKind.Name && Text == name;

    public string Describe() => Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VariableEnd => "end of print statement",
        TokenKind.String => "string literal",
        _ => $"'{Text}'",
    };
}

/// <summary>
/// Splits a template into tokens exactly as jinja2's lexer does with <c>trim_blocks</c> and <c>lstrip_blocks</c>
/// on (how transformers configures it): newlines normalised to \n, one trailing newline dropped, <c>-</c> strips all
/// whitespace on its side, <c>+</c> keeps it, lstrip removes the spaces and tabs before a <c>{% %}</c> or
/// <c>{# #}</c> tag that starts a line, and trim removes the one newline after it. <c>{{ }}</c> is never lstripped or trimmed.
/// </summary>
internal sealed class TemplateLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"];

    private readonly string _src;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private int _line = 1;
    private bool _lineStarting = true;

    private TemplateLexer(string source)
    {
        string normalized = source.Replace("\r\n", "\n").Replace('\r', '\n');
        // keep_trailing_newline=False: jinja2 drops exactly one trailing newline.
        _src = normalized.EndsWith('\n') ? normalized[..^1] : normalized;
    }

    public static List<Token> Tokenize(string source)
    {
        var lexer = new TemplateLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    private static ChatTemplateException Error(string message, int line) => new(message, line);

    private void Run()
    {
        while (_pos < _src.Length)
        {
            int tag = FindTagStart(_pos);
            if (tag < 0)
            {
                EmitData(_src[_pos..]);
                break;
            }
            char kind = _src[tag + 1];
            char sign = tag + 2 < _src.Length && _src[tag + 2] is '-' or '+' ? _src[tag + 2] : '\0';
            string text = _src[_pos..tag];
            int newlines = Count(text, '\n');
            int rawBodyStart = 0;
            bool isRaw = kind == '%' && IsRawBegin(tag, out rawBodyStart);
            text = ApplyLeftStrip(text, sign, stripsLine: kind != '{');
            EmitData(text);
            _line += newlines;
            _pos = tag + 2 + (sign != '\0' ? 1 : 0);
            switch (kind)
            {
                case '#': SkipComment(); break;
                case '%' when isRaw: ReadRaw(rawBodyStart); break;
                case '%': ReadTag(TokenKind.BlockBegin, TokenKind.BlockEnd); break;
                default: ReadTag(TokenKind.VariableBegin, TokenKind.VariableEnd); break;
            }
        }
        _tokens.Add(new Token(TokenKind.Eof, "", null, _line));
    }

    private int FindTagStart(int from)
    {
        for (int i = from; i < _src.Length - 1; i++)
            if (_src[i] == '{' && _src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    private void EmitData(string text)
    {
        if (text.Length > 0) _tokens.Add(new Token(TokenKind.Data, text, text, _line));
    }

    private string ApplyLeftStrip(string text, char sign, bool stripsLine)
    {
        if (sign == '-') return PyText.Strip(text, null, left: false);
        if (sign == '+' || !stripsLine) return text;
        // lstrip_blocks: only whitespace between the line start and the tag.
        int lineStart = text.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !_lineStarting) return text;
        for (int i = lineStart; i < text.Length; i++)
            if (!PyText.IsSpace(text[i])) return text;
        return text[..lineStart];
    }

    private static int Count(string s, char c)
    {
        int n = 0;
        foreach (char x in s) if (x == c) n++;
        return n;
    }

    /// <summary>Consumes a tag end: <c>-X}</c> strips all following whitespace, <c>X}</c> (blocks and comments) one newline.</summary>
    private void ConsumeEnd(int endLength, bool minus, bool plus, bool trims)
    {
        _pos += endLength;
        int start = _pos;
        if (minus)
            while (_pos < _src.Length && PyText.IsSpace(_src[_pos])) _pos++;
        else if (!plus && trims && _pos < _src.Length && _src[_pos] == '\n')
            _pos++;
        string consumed = _src[start.._pos];
        _line += Count(consumed, '\n');
        char last = _pos - 1 >= 0 ? _src[_pos - 1] : '\0';
        _lineStarting = last == '\n';
    }

    private void SkipComment()
    {
        int startLine = _line;
        int end = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (end < 0) throw Error("Missing end of comment tag", startLine);
        bool minus = end > _pos && _src[end - 1] == '-';
        bool plus = end > _pos && _src[end - 1] == '+';
        _line += Count(_src[_pos..end], '\n');
        _pos = end;
        ConsumeEnd(2, minus, plus, trims: true);
    }

    private bool IsRawBegin(int tag, out int bodyStart)
    {
        bodyStart = 0;
        int i = tag + 2;
        if (i < _src.Length && _src[i] is '-' or '+') i++;
        while (i < _src.Length && PyText.IsSpace(_src[i])) i++;
        if (string.CompareOrdinal(_src, i, "raw", 0, 3) != 0) return false;
        i += 3;
        while (i < _src.Length && PyText.IsSpace(_src[i])) i++;
        if (string.CompareOrdinal(_src, i, "-%}", 0, 3) == 0)
        {
            i += 3;
            while (i < _src.Length && PyText.IsSpace(_src[i])) i++;
        }
        else if (string.CompareOrdinal(_src, i, "%}", 0, 2) == 0) i += 2;
        else return false;
        bodyStart = i;
        return true;
    }

    /// <summary>{% raw %}...{% endraw %}: the body is data, with the end tag's whitespace control applied.</summary>
    private void ReadRaw(int bodyStart)
    {
        int startLine = _line;
        _line += Count(_src[_pos..bodyStart], '\n');
        for (int i = bodyStart; i < _src.Length - 1; i++)
        {
            if (_src[i] != '{' || _src[i + 1] != '%') continue;
            int j = i + 2;
            char sign = j < _src.Length && _src[j] is '-' or '+' ? _src[j] : '\0';
            if (sign != '\0') j++;
            while (j < _src.Length && PyText.IsSpace(_src[j])) j++;
            if (string.CompareOrdinal(_src, j, "endraw", 0, 6) != 0) continue;
            j += 6;
            while (j < _src.Length && PyText.IsSpace(_src[j])) j++;
            bool minus = string.CompareOrdinal(_src, j, "-%}", 0, 3) == 0;
            bool plus = string.CompareOrdinal(_src, j, "+%}", 0, 3) == 0;
            if (!minus && !plus && string.CompareOrdinal(_src, j, "%}", 0, 2) != 0) continue;
            string body = _src[bodyStart..i];
            int newlines = Count(body, '\n');
            _lineStarting = bodyStart > 0 && _src[bodyStart - 1] == '\n';
            EmitData(ApplyLeftStrip(body, sign, stripsLine: true));
            _line += newlines + Count(_src[i..j], '\n');
            _pos = j + (minus || plus ? 1 : 0);
            ConsumeEnd(2, minus, plus, trims: true);
            return;
        }
        throw Error("Missing end of raw directive", startLine);
    }

    private void ReadTag(TokenKind begin, TokenKind end)
    {
        int startLine = _line;
        _tokens.Add(new Token(begin, begin == TokenKind.BlockBegin ? "{%" : "{{", null, _line));
        var brackets = new Stack<char>();
        string close = begin == TokenKind.BlockBegin ? "%}" : "}}";
        while (true)
        {
            if (_pos >= _src.Length)
                throw Error($"unexpected end of template, expected '{close}' to close the tag opened at line {startLine}", _line);
            if (brackets.Count == 0)
            {
                bool minus = string.CompareOrdinal(_src, _pos, "-" + close, 0, 3) == 0;
                bool plus = begin == TokenKind.BlockBegin && string.CompareOrdinal(_src, _pos, "+" + close, 0, 3) == 0;
                if (minus || plus || string.CompareOrdinal(_src, _pos, close, 0, 2) == 0)
                {
                    _tokens.Add(new Token(end, close, null, _line));
                    if (minus || plus) _pos++;
                    ConsumeEnd(2, minus, plus, trims: begin == TokenKind.BlockBegin);
                    return;
                }
            }
            char c = _src[_pos];
            if (PyText.IsSpace(c))
            {
                if (c == '\n') _line++;
                _pos++;
                continue;
            }
            if (char.IsAsciiDigit(c) && ReadNumber()) continue;
            if (char.IsLetter(c) || c == '_')
            {
                int start = _pos;
                while (_pos < _src.Length && (char.IsLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                string name = _src[start.._pos];
                _tokens.Add(new Token(TokenKind.Name, name, name, _line));
                continue;
            }
            if (c is '\'' or '"')
            {
                ReadString(c);
                continue;
            }
            string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0);
            if (op is null) throw Error($"unexpected char '{c}'", _line);
            if (op is "(" or "[" or "{") brackets.Push(op switch { "(" => ')', "[" => ']', _ => '}' });
            else if (op is ")" or "]" or "}")
            {
                if (brackets.Count == 0) throw Error($"unexpected '{op}'", _line);
                char expected = brackets.Pop();
                if (expected != op[0]) throw Error($"unexpected '{op}', expected '{expected}'", _line);
            }
            _tokens.Add(new Token(TokenKind.Operator, op, null, _line));
            _pos += op.Length;
        }
    }

    /// <summary>jinja2's float and integer literals (underscores allowed, 0b/0o/0x prefixes).</summary>
    private bool ReadNumber()
    {
        int start = _pos;
        if (_src[_pos] == '0' && _pos + 1 < _src.Length && char.ToLowerInvariant(_src[_pos + 1]) is 'b' or 'o' or 'x')
        {
            char radix = char.ToLowerInvariant(_src[_pos + 1]);
            int i = _pos + 2;
            var digits = new StringBuilder();
            while (i < _src.Length && (Uri.IsHexDigit(_src[i]) || _src[i] == '_'))
            {
                if (_src[i] != '_') digits.Append(_src[i]);
                i++;
            }
            if (digits.Length == 0) return false;
            int radixBase = radix == 'b' ? 2 : radix == 'o' ? 8 : 16;
            long value = 0;
            foreach (char d in digits.ToString())
            {
                int digit = Convert.ToInt32(d.ToString(), 16);
                if (digit >= radixBase) throw Error($"invalid digit '{d}' in {radix} literal", _line);
                value = checked(value * radixBase + digit);
            }
            _pos = i;
            _tokens.Add(new Token(TokenKind.Integer, _src[start.._pos], value, _line));
            return true;
        }
        int end = ScanDigits(_pos);
        bool isFloat = false;
        if (end < _src.Length - 1 && _src[end] == '.' && char.IsAsciiDigit(_src[end + 1]))
        {
            end = ScanDigits(end + 1);
            isFloat = true;
        }
        if (end < _src.Length && _src[end] is 'e' or 'E')
        {
            int e = end + 1;
            if (e < _src.Length && _src[e] is '+' or '-') e++;
            if (e < _src.Length && char.IsAsciiDigit(_src[e]))
            {
                end = ScanDigits(e);
                isFloat = true;
            }
        }
        string text = _src[start..end];
        string clean = text.Replace("_", "");
        _pos = end;
        if (isFloat)
            _tokens.Add(new Token(TokenKind.Float, text, double.Parse(clean, NumberStyles.Float, CultureInfo.InvariantCulture), _line));
        else
        {
            if (clean.Length > 1 && clean[0] == '0' && clean.Trim('0').Length > 0)
                throw Error($"leading zeros in decimal integer literals are not permitted: {text}", _line);
            if (!long.TryParse(clean, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
                throw Error($"integer literal {text} does not fit in 64 bits", _line);
            _tokens.Add(new Token(TokenKind.Integer, text, value, _line));
        }
        return true;
    }

    private int ScanDigits(int i)
    {
        while (i < _src.Length && (char.IsAsciiDigit(_src[i]) || (_src[i] == '_' && i + 1 < _src.Length && char.IsAsciiDigit(_src[i + 1])))) i++;
        return i;
    }

    /// <summary>A quoted literal with Python's escapes (\n, \t, \xhh, \uXXXX, \UXXXXXXXX, octal; unknown ones stay as written).</summary>
    private void ReadString(char quote)
    {
        int startLine = _line;
        var sb = new StringBuilder();
        int i = _pos + 1;
        while (true)
        {
            if (i >= _src.Length) throw Error($"unexpected char {PyText.StringRepr(quote.ToString())} (unterminated string literal)", startLine);
            char c = _src[i];
            if (c == quote) break;
            if (c == '\n') _line++;
            if (c != '\\') { sb.Append(c); i++; continue; }
            if (i + 1 >= _src.Length) throw Error("unterminated string literal", startLine);
            char e = _src[i + 1];
            i += 2;
            switch (e)
            {
                case '\n': _line++; break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case 'x' or 'u' or 'U':
                {
                    int length = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (i + length > _src.Length || !_src.AsSpan(i, length).ToString().All(Uri.IsHexDigit))
                        throw Error($"truncated \\{e} escape in string literal", _line);
                    int code = int.Parse(_src.AsSpan(i, length), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    if (code > 0x10FFFF) throw Error($"illegal Unicode character \\{e}{_src.Substring(i, length)}", _line);
                    sb.Append(char.ConvertFromUtf32(code is >= 0xD800 and <= 0xDFFF ? 0xFFFD : code));
                    i += length;
                    break;
                }
                case >= '0' and <= '7':
                {
                    int code = e - '0', digits = 1;
                    while (digits < 3 && i < _src.Length && _src[i] is >= '0' and <= '7') { code = code * 8 + (_src[i] - '0'); i++; digits++; }
                    sb.Append((char)code);
                    break;
                }
                case 'N': throw Error("\\N{...} escapes in string literals are not supported by this interpreter", _line);
                default: sb.Append('\\').Append(e); break;
            }
        }
        _tokens.Add(new Token(TokenKind.String, _src[_pos..(i + 1)], sb.ToString(), startLine));
        _pos = i + 1;
    }
}

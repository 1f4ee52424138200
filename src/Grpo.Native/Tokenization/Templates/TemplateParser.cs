namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// Builds the syntax tree from tokens, following jinja2's parser rule by rule (precedence, tuples, tests with a
/// bare argument, slices). Unknown or unsupported tags, filters and tests fail here, before anything renders.
/// </summary>
internal sealed class TemplateParser
{
    private static readonly HashSet<string> UnsupportedTags =
        ["block", "extends", "include", "import", "from", "with", "autoescape", "call", "do", "trans", "pluralize", "endraw"];

    private readonly List<Token> _tokens;
    private int _index;
    private int _loopDepth;
    private readonly Stack<(string Tag, int Line)> _open = new();

    private TemplateParser(List<Token> tokens) => _tokens = tokens;

    public static List<Node> Parse(string source)
    {
        var parser = new TemplateParser(TemplateLexer.Tokenize(source));
        var body = parser.SubParse(null);
        if (parser.Current.Kind != TokenKind.Eof) throw Error($"unexpected {parser.Current.Describe()}", parser.Current.Line);
        return body;
    }

    private Token Current => _tokens[_index];
    private Token Look => _tokens[Math.Min(_index + 1, _tokens.Count - 1)];
    private Token Next() => _tokens[_index < _tokens.Count - 1 ? _index++ : _index];

    private static ChatTemplateException Error(string message, int line) => new(message, line);

    private Token Expect(TokenKind kind, string what)
    {
        if (Current.Kind != kind) throw Error($"expected {what}, got {Current.Describe()}", Current.Line);
        return Next();
    }

    private void ExpectOp(string op)
    {
        if (!Current.IsOperator(op)) throw Error($"expected '{op}', got {Current.Describe()}", Current.Line);
        Next();
    }

    private bool SkipOp(string op)
    {
        if (!Current.IsOperator(op)) return false;
        Next();
        return true;
    }

    private bool SkipName(string name)
    {
        if (!Current.IsName(name)) return false;
        Next();
        return true;
    }

    // ---- statements ----

    private List<Node> SubParse(string[]? endTags)
    {
        var body = new List<Node>();
        while (Current.Kind != TokenKind.Eof)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.Data:
                    body.Add(new TextNode((string)token.Value!, token.Line));
                    Next();
                    break;
                case TokenKind.VariableBegin:
                    Next();
                    body.Add(new PrintNode(ParseTuple(), token.Line));
                    Expect(TokenKind.VariableEnd, "end of print statement '}}'");
                    break;
                case TokenKind.BlockBegin:
                    Next();
                    if (endTags is not null && Current.Kind == TokenKind.Name && endTags.Contains(Current.Text)) return body;
                    body.AddRange(ParseStatement());
                    Expect(TokenKind.BlockEnd, "end of statement block '%}'");
                    break;
                default:
                    throw Error($"unexpected {token.Describe()}", token.Line);
            }
        }
        return body;
    }

    /// <summary>The body of a block up to one of <paramref name="endTags"/>; the current token is then that tag name (dropped when asked).</summary>
    private List<Node> ParseStatements(string[] endTags, bool dropNeedle = false)
    {
        SkipOp(":");
        Expect(TokenKind.BlockEnd, "end of statement block '%}'");
        var body = SubParse(endTags);
        if (Current.Kind == TokenKind.Eof)
        {
            var (tag, line) = _open.Peek();
            throw Error($"unexpected end of template: the '{tag}' block opened at line {line} is never closed (expected {string.Join(" or ", endTags.Select(t => $"'{t}'"))})", line);
        }
        if (dropNeedle) Next();
        return body;
    }

    private List<Node> ParseStatement()
    {
        var token = Current;
        if (token.Kind != TokenKind.Name) throw Error($"tag name expected, got {token.Describe()}", token.Line);
        _open.Push((token.Text, token.Line));
        try
        {
            switch (token.Text)
            {
                case "for": return [ParseFor()];
                case "if": return [ParseIf()];
                case "set": return [ParseSet()];
                case "macro": return [ParseMacro()];
                case "filter": return [ParseFilterBlock()];
                case "generation":
                    Next();
                    return [new ScopeNode(ParseStatements(["endgeneration"], dropNeedle: true), token.Line)];
                case "print":
                {
                    Next();
                    var nodes = new List<Node>();
                    while (Current.Kind != TokenKind.BlockEnd)
                    {
                        if (nodes.Count > 0) ExpectOp(",");
                        nodes.Add(new PrintNode(ParseExpression(), token.Line));
                    }
                    return nodes;
                }
                case "break" or "continue":
                    Next();
                    if (_loopDepth == 0) throw Error($"'{token.Text}' outside of a for loop", token.Line);
                    return [token.Text == "break" ? new BreakNode(token.Line) : new ContinueNode(token.Line)];
                default:
                    if (UnsupportedTags.Contains(token.Text))
                        throw Error($"the '{token.Text}' tag is not supported by this chat template interpreter", token.Line);
                    var enclosing = _open.Skip(1).FirstOrDefault();
                    throw Error(enclosing.Tag is null
                        ? $"unknown tag '{token.Text}'"
                        : $"unknown tag '{token.Text}' inside the '{enclosing.Tag}' block opened at line {enclosing.Line}", token.Line);
            }
        }
        finally
        {
            _open.Pop();
        }
    }

    private ForNode ParseFor()
    {
        int line = Next().Line;
        var target = ParseAssignTarget(withNamespace: false, extraEnd: "in");
        if (!SkipName("in")) throw Error($"expected 'in', got {Current.Describe()}", Current.Line);
        var iterable = ParseTuple(withCondExpr: false, extraEnd: "recursive");
        Expr? filter = SkipName("if") ? ParseExpression() : null;
        if (Current.IsName("recursive")) throw Error("recursive for loops are not supported by this chat template interpreter", Current.Line);
        _loopDepth++;
        List<Node> body;
        try { body = ParseStatements(["endfor", "else"]); }
        finally { _loopDepth--; }
        var elseBody = Next().Text == "endfor" ? [] : ParseStatements(["endfor"], dropNeedle: true);
        return new ForNode(target, iterable, filter, body, elseBody, line);
    }

    private IfNode ParseIf()
    {
        int line = Next().Line;
        var branches = new List<(Expr, List<Node>)>();
        var elseBody = new List<Node>();
        while (true)
        {
            var test = ParseTuple(withCondExpr: false);
            branches.Add((test, ParseStatements(["elif", "else", "endif"])));
            var end = Next();
            if (end.Text == "elif") continue;
            if (end.Text == "else") elseBody = ParseStatements(["endif"], dropNeedle: true);
            break;
        }
        return new IfNode(branches, elseBody, line);
    }

    private Node ParseSet()
    {
        int line = Next().Line;
        var target = ParseAssignTarget(withNamespace: true);
        if (SkipOp("=")) return new SetNode(target, ParseTuple(), line);
        var filter = Current.IsOperator("|") ? (FilterExpr?)ParseFilter(null) : null;
        return new SetBlockNode(target, filter, ParseStatements(["endset"], dropNeedle: true), line);
    }

    private MacroNode ParseMacro()
    {
        int line = Next().Line;
        string name = Expect(TokenKind.Name, "macro name").Text;
        ExpectOp("(");
        var parameters = new List<(string, Expr?)>();
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0) ExpectOp(",");
            string parameter = Expect(TokenKind.Name, "parameter name").Text;
            Expr? defaultValue = SkipOp("=") ? ParseExpression() : null;
            if (defaultValue is null && parameters.Any(p => p.Item2 is not null))
                throw Error("non-default argument follows default argument", Current.Line);
            parameters.Add((parameter, defaultValue));
        }
        ExpectOp(")");
        int depth = _loopDepth;
        _loopDepth = 0;
        try { return new MacroNode(name, parameters, ParseStatements(["endmacro"], dropNeedle: true), line); }
        finally { _loopDepth = depth; }
    }

    private FilterBlockNode ParseFilterBlock()
    {
        int line = Next().Line;
        var filter = ParseFilter(null, startInline: true);
        return new FilterBlockNode(filter, ParseStatements(["endfilter"], dropNeedle: true), line);
    }

    /// <summary>A name, <c>ns.attr</c> (set only) or a tuple of those, as jinja2's parse_assign_target.</summary>
    private Target ParseAssignTarget(bool withNamespace, string? extraEnd = null)
    {
        int line = Current.Line;
        var items = new List<Target>();
        bool isTuple = false;
        while (true)
        {
            if (items.Count > 0) ExpectOp(",");
            if (IsTupleEnd(extraEnd)) break;
            items.Add(ParseSimpleTarget(withNamespace));
            if (Current.IsOperator(",")) isTuple = true;
            else break;
        }
        if (items.Count == 0) throw Error($"expected an assignment target, got {Current.Describe()}", Current.Line);
        return isTuple ? new TupleTarget(items, line) : items[0];
    }

    private Target ParseSimpleTarget(bool withNamespace)
    {
        var token = Current;
        if (token.Kind == TokenKind.Name && token.Text is not ("true" or "false" or "True" or "False" or "none" or "None"))
        {
            Next();
            if (withNamespace && Current.IsOperator("."))
            {
                Next();
                return new NamespaceTarget(token.Text, Expect(TokenKind.Name, "attribute name").Text, token.Line);
            }
            return new NameTarget(token.Text, token.Line);
        }
        if (token.IsOperator("("))
        {
            Next();
            var inner = ParseAssignTarget(withNamespace);
            ExpectOp(")");
            return inner;
        }
        throw Error($"can't assign to {token.Describe()}", token.Line);
    }

    // ---- expressions ----

    private bool IsTupleEnd(string? extraEnd) =>
        Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd || Current.IsOperator(")") || (extraEnd is not null && Current.IsName(extraEnd));

    private Expr ParseTuple(bool withCondExpr = true, string? extraEnd = null, bool explicitParentheses = false)
    {
        int line = Current.Line;
        var items = new List<Expr>();
        bool isTuple = false;
        while (true)
        {
            if (items.Count > 0) ExpectOp(",");
            if (IsTupleEnd(extraEnd)) break;
            items.Add(withCondExpr ? ParseExpression() : ParseOr());
            if (Current.IsOperator(",")) isTuple = true;
            else break;
        }
        if (!isTuple)
        {
            if (items.Count > 0) return items[0];
            if (!explicitParentheses) throw Error($"expected an expression, got {Current.Describe()}", Current.Line);
        }
        return new TupleExpr(items, line);
    }

    private Expr ParseExpression() => ParseCondExpr();

    private Expr ParseCondExpr()
    {
        var expr = ParseOr();
        while (Current.IsName("if"))
        {
            int line = Next().Line;
            var test = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseCondExpr() : null;
            expr = new CondExpr(test, expr, otherwise, line);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            int line = Next().Line;
            left = new BinaryExpr("or", left, ParseAnd(), line);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            int line = Next().Line;
            left = new BinaryExpr("and", left, ParseNot(), line);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (!Current.IsName("not")) return ParseCompare();
        int line = Next().Line;
        return new UnaryExpr("not", ParseNot(), line);
    }

    private Expr ParseCompare()
    {
        int line = Current.Line;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && Current.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                string op = Next().Text;
                rest.Add((op, ParseMath1()));
            }
            else if (SkipName("in")) rest.Add(("in", ParseMath1()));
            else if (Current.IsName("not") && Look.IsName("in"))
            {
                Next();
                Next();
                rest.Add(("notin", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, line);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.Kind == TokenKind.Operator && Current.Text is "+" or "-")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParseConcat(), op.Line);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Current.IsOperator("~"))
        {
            int line = Next().Line;
            left = new BinaryExpr("~", left, ParseMath2(), line);
        }
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Text is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParsePow(), op.Line);
        }
        return left;
    }

    private Expr ParsePow()
    {
        // jinja2's ** is left-associative and binds looser than unary minus: -2**2 is 4.
        var left = ParseUnary();
        while (Current.IsOperator("**"))
        {
            int line = Next().Line;
            left = new BinaryExpr("**", left, ParseUnary(), line);
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter = true)
    {
        Expr node;
        if (Current.IsOperator("-") || Current.IsOperator("+"))
        {
            var op = Next();
            node = new UnaryExpr(op.Text, ParseUnary(withFilter: false), op.Line);
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimary()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                Next();
                return token.Text switch
                {
                    "true" or "True" => new ConstExpr(true, token.Line),
                    "false" or "False" => new ConstExpr(false, token.Line),
                    "none" or "None" => new ConstExpr(null, token.Line),
                    _ => new NameExpr(token.Text, token.Line),
                };
            case TokenKind.String:
            {
                // Adjacent string literals concatenate, as in Python.
                string value = (string)Next().Value!;
                while (Current.Kind == TokenKind.String) value += (string)Next().Value!;
                return new ConstExpr(value, token.Line);
            }
            case TokenKind.Integer or TokenKind.Float:
                Next();
                return new ConstExpr(token.Value, token.Line);
            case TokenKind.Operator when token.Text == "(":
            {
                Next();
                var inner = ParseTuple(explicitParentheses: true);
                ExpectOp(")");
                return inner;
            }
            case TokenKind.Operator when token.Text == "[":
            {
                Next();
                var items = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (Current.IsOperator("]")) break;
                    items.Add(ParseExpression());
                }
                ExpectOp("]");
                return new ListExpr(items, token.Line);
            }
            case TokenKind.Operator when token.Text == "{":
            {
                Next();
                var items = new List<(Expr, Expr)>();
                while (!Current.IsOperator("}"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (Current.IsOperator("}")) break;
                    var key = ParseExpression();
                    ExpectOp(":");
                    items.Add((key, ParseExpression()));
                }
                ExpectOp("}");
                return new DictExpr(items, token.Line);
            }
            default:
                throw Error($"unexpected {token.Describe()}", token.Line);
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator(".") || Current.IsOperator("[")) node = ParseSubscript(node);
            else if (Current.IsOperator("(")) node = ParseCall(node);
            else return node;
        }
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("|")) node = ParseFilter(node);
            else if (Current.IsName("is")) node = ParseTest(node);
            else if (Current.IsOperator("(")) node = ParseCall(node);
            else return node;
        }
    }

    private Expr ParseSubscript(Expr node)
    {
        var token = Next();
        if (token.IsOperator("."))
        {
            var attr = Next();
            if (attr.Kind == TokenKind.Name) return new GetAttrExpr(node, attr.Text, token.Line);
            if (attr.Kind == TokenKind.Integer) return new GetItemExpr(node, new ConstExpr(attr.Value, attr.Line), token.Line);
            throw Error($"expected name or number after '.', got {attr.Describe()}", attr.Line);
        }
        var args = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (args.Count > 0) ExpectOp(",");
            args.Add(ParseSubscribed());
        }
        ExpectOp("]");
        return new GetItemExpr(node, args.Count == 1 ? args[0] : new TupleExpr(args, token.Line), token.Line);
    }

    private Expr ParseSubscribed()
    {
        int line = Current.Line;
        Expr? start = null;
        if (!Current.IsOperator(":"))
        {
            var node = ParseExpression();
            if (!Current.IsOperator(":")) return node;
            start = node;
        }
        Next();
        Expr? stop = null, step = null;
        if (!Current.IsOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(",")) stop = ParseExpression();
        if (SkipOp(":") && !Current.IsOperator("]") && !Current.IsOperator(",")) step = ParseExpression();
        return new SliceExpr(start, stop, step, line);
    }

    private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseCallArgs()
    {
        var open = Current;
        ExpectOp("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        bool requireComma = false;
        while (!Current.IsOperator(")"))
        {
            if (requireComma)
            {
                ExpectOp(",");
                if (Current.IsOperator(")")) break;
            }
            if (Current.IsOperator("*") || Current.IsOperator("**"))
                throw Error("*args and **kwargs in calls are not supported by this chat template interpreter", Current.Line);
            if (Current.Kind == TokenKind.Name && Look.IsOperator("="))
            {
                string key = Next().Text;
                Next();
                kwargs.Add((key, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error("invalid syntax for function call expression (positional argument after keyword argument)", open.Line);
                args.Add(ParseExpression());
            }
            requireComma = true;
        }
        ExpectOp(")");
        return (args, kwargs);
    }

    private CallExpr ParseCall(Expr node)
    {
        int line = Current.Line;
        var (args, kwargs) = ParseCallArgs();
        return new CallExpr(node, args, kwargs, line);
    }

    private string ParseDottedName(string what)
    {
        string name = Expect(TokenKind.Name, what).Text;
        while (SkipOp(".")) name += "." + Expect(TokenKind.Name, what).Text;
        return name;
    }

    private FilterExpr ParseFilter(Expr? node, bool startInline = false)
    {
        FilterExpr? result = null;
        while (Current.IsOperator("|") || startInline)
        {
            if (!startInline) Next();
            startInline = false;
            int line = Current.Line;
            string name = ParseDottedName("filter name");
            if (TemplateFilters.Problem(name) is { } problem) throw Error(problem, line);
            var (args, kwargs) = Current.IsOperator("(") ? ParseCallArgs() : ([], []);
            result = new FilterExpr(node, name, args, kwargs, line);
            node = result;
        }
        return result!;
    }

    private Expr ParseTest(Expr node)
    {
        int line = Next().Line;
        bool negated = SkipName("not");
        string name = ParseDottedName("test name");
        if (TemplateTests.Problem(name) is { } problem) throw Error(problem, line);
        List<Expr> args = [];
        List<(string, Expr)> kwargs = [];
        if (Current.IsOperator("(")) (args, kwargs) = ParseCallArgs();
        else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                  || Current.IsOperator("(") || Current.IsOperator("[") || Current.IsOperator("{"))
                 && !(Current.IsName("else") || Current.IsName("or") || Current.IsName("and")))
        {
            if (Current.IsName("is")) throw Error("You cannot chain multiple tests with is", Current.Line);
            args = [ParsePostfix(ParsePrimary())];
        }
        Expr test = new TestExpr(node, name, args, kwargs, line);
        return negated ? new UnaryExpr("not", test, line) : test;
    }
}

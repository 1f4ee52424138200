namespace Grpo.Native.Tokenization.Templates;

// The syntax tree of a parsed template. Every node keeps its source line for error messages.

internal abstract record Node(int Line);

internal sealed record TextNode(string Text, int Line) : Node(Line);

internal sealed record PrintNode(Expr Value, int Line) : Node(Line);

internal sealed record IfNode(List<(Expr Test, List<Node> Body)> Branches, List<Node> Else, int Line) : Node(Line);

internal sealed record ForNode(Target Target, Expr Iterable, Expr? Filter, List<Node> Body, List<Node> Else, int Line) : Node(Line);

internal sealed record SetNode(Target Target, Expr Value, int Line) : Node(Line);

/// <summary><c>{% set x %}body{% endset %}</c>, optionally through filters (<c>{% set x | trim %}</c>).</summary>
internal sealed record SetBlockNode(Target Target, FilterExpr? Filter, List<Node> Body, int Line) : Node(Line);

internal sealed record MacroNode(string Name, List<(string Name, Expr? Default)> Parameters, List<Node> Body, int Line) : Node(Line);

/// <summary><c>{% filter name %}body{% endfilter %}</c>: the body's output goes through the filters; <see cref="Filter"/>'s innermost operand is null.</summary>
internal sealed record FilterBlockNode(FilterExpr Filter, List<Node> Body, int Line) : Node(Line);

/// <summary>transformers' <c>{% generation %}</c>: marks assistant text for masks; renders its body in a new scope.</summary>
internal sealed record ScopeNode(List<Node> Body, int Line) : Node(Line);

internal sealed record BreakNode(int Line) : Node(Line);

internal sealed record ContinueNode(int Line) : Node(Line);

/// <summary>What <c>set</c> and <c>for</c> assign to: a name, a namespace attribute, or a tuple of targets.</summary>
internal abstract record Target(int Line);

internal sealed record NameTarget(string Name, int Line) : Target(Line);

internal sealed record NamespaceTarget(string Namespace, string Attribute, int Line) : Target(Line);

internal sealed record TupleTarget(List<Target> Items, int Line) : Target(Line);

internal abstract record Expr(int Line);

internal sealed record ConstExpr(object? Value, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

internal sealed record ListExpr(List<Expr> Items, int Line) : Expr(Line);

internal sealed record TupleExpr(List<Expr> Items, int Line) : Expr(Line);

internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Line) : Expr(Line);

internal sealed record GetAttrExpr(Expr Target, string Name, int Line) : Expr(Line);

internal sealed record GetItemExpr(Expr Target, Expr Key, int Line) : Expr(Line);

internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

internal sealed record CallExpr(Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);

/// <summary><c>operand | name(args)</c>; the operand is null only inside filter blocks and block sets.</summary>
internal sealed record FilterExpr(Expr? Operand, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);

internal sealed record TestExpr(Expr Operand, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);

/// <summary>Unary <c>not</c>, <c>-</c>, <c>+</c>.</summary>
internal sealed record UnaryExpr(string Op, Expr Operand, int Line) : Expr(Line);

/// <summary>Binary arithmetic, <c>~</c>, and the short-circuit <c>and</c>/<c>or</c>.</summary>
internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line) : Expr(Line);

/// <summary>A comparison chain <c>a &lt; b &lt;= c</c> (==, !=, &lt;, &gt;, &lt;=, &gt;=, in, notin).</summary>
internal sealed record CompareExpr(Expr First, List<(string Op, Expr Right)> Rest, int Line) : Expr(Line);

/// <summary><c>Then if Test else Else</c>; a missing else is Undefined.</summary>
internal sealed record CondExpr(Expr Test, Expr Then, Expr? Else, int Line) : Expr(Line);

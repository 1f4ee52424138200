using System.Text;

namespace Grpo.Native.Tokenization.Templates;

/// <summary>
/// Walks the syntax tree and writes the output. One renderer per <see cref="ChatTemplate.Render"/> call, so a
/// parsed template can render on many threads at once.
/// </summary>
internal sealed class TemplateRenderer
{
    private enum Flow { Normal, Break, Continue }

    public string Render(List<Node> body, Scope scope)
    {
        var output = new StringBuilder();
        RenderBody(body, scope, output);
        return output.ToString();
    }

    private Flow RenderBody(List<Node> body, Scope scope, StringBuilder output)
    {
        foreach (var node in body)
        {
            Flow flow;
            try
            {
                flow = Execute(node, scope, output);
            }
            catch (TemplateRuntimeException e)
            {
                throw new ChatTemplateException(e.Message, node.Line);
            }
            catch (TemplateRaiseSignal e)
            {
                throw new TemplateRaisedException(e.Message, node.Line);
            }
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow Execute(Node node, Scope scope, StringBuilder output)
    {
        switch (node)
        {
            case TextNode text:
                output.Append(text.Text);
                return Flow.Normal;
            case PrintNode print:
                output.Append(PyText.Str(Evaluate(print.Value, scope)));
                return Flow.Normal;
            case IfNode ifNode:
                foreach (var (test, body) in ifNode.Branches)
                    if (PyOps.Truthy(Evaluate(test, scope))) return RenderBody(body, scope, output);
                return RenderBody(ifNode.Else, scope, output);
            case ForNode forNode:
                RenderFor(forNode, scope, output);
                return Flow.Normal;
            case SetNode set:
                Assign(set.Target, Evaluate(set.Value, scope), scope);
                return Flow.Normal;
            case SetBlockNode setBlock:
            {
                var captured = new StringBuilder();
                RenderBody(setBlock.Body, scope, captured);
                object? value = captured.ToString();
                if (setBlock.Filter is not null) value = ApplyFilter(setBlock.Filter, value, scope);
                Assign(setBlock.Target, value, scope);
                return Flow.Normal;
            }
            case MacroNode macro:
                scope.Set(macro.Name, new Macro(macro, scope));
                return Flow.Normal;
            case FilterBlockNode filterBlock:
            {
                var captured = new StringBuilder();
                RenderBody(filterBlock.Body, new Scope(scope), captured);
                output.Append(PyText.Str(ApplyFilter(filterBlock.Filter, captured.ToString(), scope)));
                return Flow.Normal;
            }
            case ScopeNode scoped:
                return RenderBody(scoped.Body, new Scope(scope), output);
            case BreakNode:
                return Flow.Break;
            case ContinueNode:
                return Flow.Continue;
            default:
                throw new TemplateRuntimeException($"unknown node {node.GetType().Name}");
        }
    }

    private void RenderFor(ForNode node, Scope scope, StringBuilder output)
    {
        var iterable = Evaluate(node.Iterable, scope);
        var items = new List<object?>();
        foreach (var item in PyOps.Iterate(iterable))
        {
            if (node.Filter is not null)
            {
                // The inline filter sees the loop target but not the loop variable.
                var filterScope = new Scope(scope);
                Assign(node.Target, item, filterScope);
                if (!PyOps.Truthy(Evaluate(node.Filter, filterScope))) continue;
            }
            items.Add(item);
        }
        if (items.Count == 0)
        {
            RenderBody(node.Else, scope, output);
            return;
        }
        // loop.depth counts recursive loops only, which this interpreter does not support: always 1.
        var loop = new LoopContext(items, depth0: 0);
        for (int i = 0; i < items.Count; i++)
        {
            loop.Index0 = i;
            // Each iteration has its own scope: a set inside the loop is gone at the next iteration (as jinja2).
            var iteration = new Scope(scope);
            iteration.Set("loop", loop);
            Assign(node.Target, items[i], iteration);
            if (RenderBody(node.Body, iteration, output) == Flow.Break) break;
        }
    }

    private void Assign(Target target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameTarget name:
                scope.Set(name.Name, value);
                break;
            case NamespaceTarget ns:
                if (!scope.TryGet(ns.Namespace, out var holder) || holder is not Namespace nsObject)
                    throw new TemplateRuntimeException($"cannot assign attribute '{ns.Attribute}' on '{ns.Namespace}': only namespace() objects take attribute assignments");
                nsObject.Attributes[ns.Attribute] = value;
                break;
            case TupleTarget tuple:
            {
                if (value is Undefined u) throw u.Fail();
                var items = PyOps.Iterate(value).ToList();
                if (items.Count != tuple.Items.Count)
                    throw new TemplateRuntimeException(items.Count > tuple.Items.Count
                        ? $"too many values to unpack (expected {tuple.Items.Count})"
                        : $"not enough values to unpack (expected {tuple.Items.Count}, got {items.Count})");
                for (int i = 0; i < items.Count; i++) Assign(tuple.Items[i], items[i], scope);
                break;
            }
        }
    }

    // ---- expressions ----

    private object? Evaluate(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case ConstExpr c: return c.Value;
            case NameExpr name: return scope.TryGet(name.Name, out var value) ? value : Undefined.Name(name.Name);
            case ListExpr list: return list.Items.Select(item => Evaluate(item, scope)).ToList();
            case TupleExpr tuple: return new PyTuple(tuple.Items.Select(item => Evaluate(item, scope)).ToArray());
            case DictExpr dict:
            {
                var result = new PyDict();
                foreach (var (k, v) in dict.Items)
                {
                    var key = Evaluate(k, scope);
                    if (key is null or Undefined or List<object?> or PyDict)
                        throw new TemplateRuntimeException($"unhashable or unsupported dict key of type '{PyOps.TypeName(key)}'");
                    result[key] = Evaluate(v, scope);
                }
                return result;
            }
            case GetAttrExpr attr: return PyOps.GetAttr(Evaluate(attr.Target, scope), attr.Name);
            case GetItemExpr item:
            {
                var target = Evaluate(item.Target, scope);
                if (item.Key is SliceExpr slice)
                    return PyOps.Slice(target, EvaluateOptional(slice.Start, scope), EvaluateOptional(slice.Stop, scope), EvaluateOptional(slice.Step, scope));
                return PyOps.GetItem(target, Evaluate(item.Key, scope));
            }
            case SliceExpr: throw new TemplateRuntimeException("a slice is only valid inside [ ]");
            case CallExpr call: return EvaluateCall(call, scope);
            case FilterExpr filter: return ApplyFilter(filter, null, scope);
            case TestExpr test:
            {
                var operand = Evaluate(test.Operand, scope);
                return TemplateTests.Apply(test.Name, operand, EvaluateArgs(test.Args, scope), EvaluateKwargs(test.Kwargs, scope));
            }
            case UnaryExpr unary:
            {
                var operand = Evaluate(unary.Operand, scope);
                return unary.Op == "not" ? !PyOps.Truthy(operand) : PyOps.Negate(operand, unary.Op == "-");
            }
            case BinaryExpr binary: return EvaluateBinary(binary, scope);
            case CompareExpr compare:
            {
                var left = Evaluate(compare.First, scope);
                foreach (var (op, rightExpr) in compare.Rest)
                {
                    var right = Evaluate(rightExpr, scope);
                    if (!CompareOnce(op, left, right)) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr cond:
                if (PyOps.Truthy(Evaluate(cond.Test, scope))) return Evaluate(cond.Then, scope);
                return cond.Else is null ? Undefined.WithHint("the inline if-expression on this line evaluated to false and no else section was defined") : Evaluate(cond.Else, scope);
            default:
                throw new TemplateRuntimeException($"unknown expression {expr.GetType().Name}");
        }
    }

    private object? EvaluateOptional(Expr? expr, Scope scope) => expr is null ? null : Evaluate(expr, scope);

    private List<object?> EvaluateArgs(List<Expr> args, Scope scope) => args.Select(a => Evaluate(a, scope)).ToList();

    private List<KeyValuePair<string, object?>> EvaluateKwargs(List<(string Name, Expr Value)> kwargs, Scope scope) =>
        kwargs.Select(k => new KeyValuePair<string, object?>(k.Name, Evaluate(k.Value, scope))).ToList();

    private object? EvaluateBinary(BinaryExpr binary, Scope scope)
    {
        switch (binary.Op)
        {
            case "and":
            {
                var left = Evaluate(binary.Left, scope);
                return PyOps.Truthy(left) ? Evaluate(binary.Right, scope) : left;
            }
            case "or":
            {
                var left = Evaluate(binary.Left, scope);
                return PyOps.Truthy(left) ? left : Evaluate(binary.Right, scope);
            }
            case "~":
                return PyText.Str(Evaluate(binary.Left, scope)) + PyText.Str(Evaluate(binary.Right, scope));
            default:
                return PyOps.Arithmetic(binary.Op, Evaluate(binary.Left, scope), Evaluate(binary.Right, scope));
        }
    }

    private static bool CompareOnce(string op, object? left, object? right) => op switch
    {
        "==" => PyOps.PyEquals(left, right),
        "!=" => !PyOps.PyEquals(left, right),
        "<" => PyOps.Compare(left, right, op) < 0,
        "<=" => PyOps.Compare(left, right, op) <= 0,
        ">" => PyOps.Compare(left, right, op) > 0,
        ">=" => PyOps.Compare(left, right, op) >= 0,
        "in" => PyOps.Contains(right, left),
        "notin" => !PyOps.Contains(right, left),
        _ => throw new TemplateRuntimeException($"unknown comparison {op}"),
    };

    private object? EvaluateCall(CallExpr call, Scope scope)
    {
        var callee = Evaluate(call.Callee, scope);
        var args = EvaluateArgs(call.Args, scope);
        var kwargs = EvaluateKwargs(call.Kwargs, scope);
        switch (callee)
        {
            case PyCallable function: return function.Function(args, kwargs);
            case Macro macro: return CallMacro(macro, args, kwargs);
            case Undefined u: throw u.Fail();
            default: throw new TemplateRuntimeException($"'{PyOps.TypeName(callee)}' object is not callable");
        }
    }

    private string CallMacro(Macro macro, List<object?> args, List<KeyValuePair<string, object?>> kwargs)
    {
        var parameters = macro.Node.Parameters;
        if (args.Count > parameters.Count)
            throw new TemplateRuntimeException($"macro '{macro.Name}' takes not more than {parameters.Count} argument(s)");
        var callScope = new Scope(macro.Closure);
        var given = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Count; i++)
        {
            callScope.Set(parameters[i].Name, args[i]);
            given.Add(parameters[i].Name);
        }
        foreach (var (name, value) in kwargs)
        {
            if (!parameters.Any(p => p.Name == name)) throw new TemplateRuntimeException($"macro '{macro.Name}' takes no keyword argument '{name}'");
            if (!given.Add(name)) throw new TemplateRuntimeException($"macro '{macro.Name}' got multiple values for argument '{name}'");
            callScope.Set(name, value);
        }
        foreach (var (name, defaultValue) in parameters)
            if (!given.Contains(name))
                callScope.Set(name, defaultValue is null ? Undefined.WithHint($"parameter '{name}' was not provided") : Evaluate(defaultValue, callScope));
        var output = new StringBuilder();
        RenderBody(macro.Node.Body, callScope, output);
        return output.ToString();
    }

    /// <summary>
    /// Applies a filter chain. Filters nest (the operand of <c>g</c> in <c>a|f|g</c> is <c>f</c>); in filter blocks and
    /// block sets the innermost operand is null and stands for <paramref name="input"/>, the captured text.
    /// </summary>
    private object? ApplyFilter(FilterExpr filter, object? input, Scope scope)
    {
        object? operand = filter.Operand switch
        {
            null => input,
            FilterExpr inner => ApplyFilter(inner, input, scope),
            var other => Evaluate(other, scope),
        };
        return TemplateFilters.Apply(filter.Name, operand, EvaluateArgs(filter.Args, scope), EvaluateKwargs(filter.Kwargs, scope));
    }
}

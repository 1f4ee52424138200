using System.Management.Automation.Language;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace Grpo.Native.Tests.Repository;

/// <summary>
/// PowerShell is not installed where CI runs, so build.ps1 is checked with the PowerShell language
/// parser: it must parse, every target it offers must be handled, and every target the README
/// documents must exist.
/// </summary>
public sealed class BuildScriptTests
{
    private static string ScriptPath => Path.Combine(TestContext.CurrentContext.TestDirectory, "build.ps1");
    private static string ReadmePath => Path.Combine(TestContext.CurrentContext.TestDirectory, "README.md");

    private static ScriptBlockAst Parse()
    {
        var ast = Parser.ParseFile(ScriptPath, out _, out ParseError[] errors);
        Assert.That(errors, Is.Empty,
            "build.ps1 does not parse: " + string.Join("; ", errors.Select(e => $"line {e.Extent.StartLineNumber}: {e.Message}")));
        return ast;
    }

    private static string[] OfferedTargets(ScriptBlockAst ast)
    {
        var target = ast.ParamBlock?.Parameters.SingleOrDefault(p => p.Name.VariablePath.UserPath == "Target");
        Assert.That(target, Is.Not.Null, "build.ps1 has no -Target parameter");
        var validateSet = target!.Attributes.OfType<AttributeAst>()
            .Single(a => a.TypeName.Name == "ValidateSet");
        return validateSet.PositionalArguments.OfType<StringConstantExpressionAst>().Select(s => s.Value).ToArray();
    }

    [Test]
    public void ScriptParses() => Parse();

    [Test]
    public void EveryOfferedTargetIsHandled()
    {
        var ast = Parse();
        string[] offered = OfferedTargets(ast);
        var handled = ast.FindAll(n => n is SwitchStatementAst, searchNestedScriptBlocks: true)
            .Cast<SwitchStatementAst>()
            .Single(s => s.Condition.Extent.Text.Contains("$Target"))
            .Clauses.Select(c => c.Item1).OfType<StringConstantExpressionAst>().Select(s => s.Value).ToArray();
        TestContext.Out.WriteLine($"offered: {string.Join(", ", offered)}; handled: {string.Join(", ", handled)}");
        Assert.That(offered, Is.Not.Empty);
        Assert.That(handled, Is.EquivalentTo(offered));
    }

    [Test]
    public void EveryTargetTheReadmeDocumentsExists()
    {
        string[] offered = OfferedTargets(Parse());
        var documented = Regex.Matches(File.ReadAllText(ReadmePath), @"build\.ps1\s+([a-z]+)")
            .Select(m => m.Groups[1].Value).Distinct().ToArray();
        TestContext.Out.WriteLine($"README documents: {string.Join(", ", documented)}");
        Assert.That(documented, Is.Not.Empty, "the README documents no build.ps1 target");
        Assert.That(offered, Is.SupersetOf(documented));
    }

    [Test]
    public void CallsOnlyDotnetAndTheTestScript()
    {
        var commands = Parse().FindAll(n => n is CommandAst, searchNestedScriptBlocks: true).Cast<CommandAst>()
            .Select(c => c.GetCommandName()).Where(n => n is not null).Distinct().ToArray();
        TestContext.Out.WriteLine($"commands: {string.Join(", ", commands)}");
        // bash only for scripts/test.sh, the README's test command (it installs Open MPI for the data-parallel tests).
        string[] allowed = ["dotnet", "Invoke-Dotnet", "Write-Host", "Set-Location", "bash"];
        Assert.That(commands, Is.SubsetOf(allowed));
    }
}

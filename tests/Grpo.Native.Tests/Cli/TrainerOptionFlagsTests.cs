using System.Collections;
using System.CommandLine;
using System.Reflection;
using Grpo.Cli;
using Grpo.Native.Operations;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary>
/// The <c>grpo train</c> trainer-option flags: one for every <see cref="GrpoTrainerOptions"/> field (a field added
/// without one fails here), each really setting its field, TRL's value names, derived values, and bad values.
/// </summary>
public sealed class TrainerOptionFlagsTests
{
    private static readonly TrainerOptionFlags Flags = new();

    /// <summary>Flags that only apply together with another.</summary>
    private static readonly Dictionary<string, string[]> Prerequisites = new() { ["--max-generation-batches"] = ["--dynamic-sampling"] };

    private static GrpoTrainerOptions Build(Func<GrpoTrainerOptions, GrpoTrainerOptions> defaults, params string[] args)
    {
        var command = new Command("train");
        Flags.AddTo(command);
        var parse = command.Parse(args);
        Assert.That(parse.Errors, Is.Empty, string.Join("; ", parse.Errors.Select(e => e.Message)));
        return Flags.Read(parse).Build(defaults);
    }

    private static GrpoTrainerOptions BuildOverTrlDefaults(params string[] args) => Build(_ => new GrpoTrainerOptions(), args);

    /// <summary>Every public settable field, as a path ("Sampling.TopK"), recursing into the nested option records.</summary>
    private static IEnumerable<string> SettableFields(Type type, string prefix = "")
    {
        var nullability = new NullabilityInfoContext();
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.SetMethod is not { IsPublic: true }) continue;
            string path = prefix + property.Name;
            bool nestedRecord = property.PropertyType.IsClass && property.PropertyType.Namespace?.StartsWith("Grpo.Native", StringComparison.Ordinal) == true;
            if (!nestedRecord)
            {
                yield return path;
                continue;
            }
            // A nested record that may be null (a feature that is off) needs its own on/off flag, and flags for its fields.
            if (nullability.Create(property).WriteState == NullabilityState.Nullable) yield return path;
            foreach (string field in SettableFields(property.PropertyType, path + ".")) yield return field;
        }
    }

    private static object? ValueAt(GrpoTrainerOptions options, string path)
    {
        object? value = options;
        foreach (string name in path.Split('.'))
            value = value?.GetType().GetProperty(name)!.GetValue(value);
        return value;
    }

    private static bool SameValue(object? a, object? b) =>
        a is IEnumerable x && b is IEnumerable y && a is not string ? x.Cast<object>().SequenceEqual(y.Cast<object>()) : Equals(a, b);

    [Test]
    public void EveryTrainerOptionFieldHasAFlag()
    {
        var fields = SettableFields(typeof(GrpoTrainerOptions)).ToArray();
        Assert.That(fields, Does.Contain("Sampling.TopK").And.Contain("AdamW.Beta1").And.Contain("DynamicSampling.MaxGenerationBatches"),
            "the reflection reaches the nested option records");
        var covered = Flags.Flags.SelectMany(f => f.Properties).ToHashSet();
        var missing = fields.Where(f => !covered.Contains(f)).ToArray();
        Assert.That(missing, Is.Empty, "GrpoTrainerOptions fields with no grpo train flag: add one to src/Grpo.Cli/TrainerOptionFlags.cs and the README's table");
        Assert.That(covered.Where(p => !fields.Contains(p)), Is.Empty, "flags that name no field");
    }

    [Test]
    public void EveryFlagSetsTheFieldItNames()
    {
        foreach (var flag in Flags.Flags)
        {
            string[] before = Prerequisites.GetValueOrDefault(flag.Name, []);
            var without = BuildOverTrlDefaults(before);
            var with = BuildOverTrlDefaults([.. before, flag.Name, flag.Example]);
            foreach (string field in flag.Properties)
                Assert.That(SameValue(ValueAt(with, field), ValueAt(without, field)), Is.False,
                    $"{flag.Name} {flag.Example} leaves {field} at {ValueAt(without, field)}");
        }
    }

    [Test]
    public void FlagsTakeTrlNamesAndValues()
    {
        var o = BuildOverTrlDefaults("--num-generations", "4", "--prompts", "2", "--gradient-accumulation-steps", "2", "--loss-type", "dr_grpo",
            "--scale-rewards", "false", "--lr-scheduler-type", "constant_with_warmup", "--steps", "25", "--warmup-ratio", "0.1",
            "--max-grad-norm", "0", "--top-p", "0.95", "--top-k", "50", "--adam-beta2", "0.95", "--epsilon-high", "0.28",
            "--importance-sampling-level", "sequence", "--kl-estimator", "k2", "--mask-truncated-completions", "--stop-token-ids", "7, 9");
        Assert.That(o.GroupSize, Is.EqualTo(4));
        Assert.That(o.MicroBatchSize, Is.EqualTo(4), "2 prompts x 4 completions in 2 accumulated micro-batches");
        Assert.That(o.LossType, Is.EqualTo(LossType.DrGrpo));
        Assert.That(o.ScaleRewards, Is.EqualTo(RewardScaling.None));
        Assert.That(o.Schedule, Is.EqualTo(LearningRateScheduleKind.LinearWarmup));
        Assert.That(o.TotalSteps, Is.EqualTo(25));
        Assert.That(o.WarmupSteps, Is.EqualTo(3), "ceil(0.1 x 25), as Hugging Face rounds warmup_ratio");
        Assert.That(o.MaxGradNorm, Is.Null, "0 turns clipping off, as in TRL");
        Assert.That(o.Sampling, Is.EqualTo(new SamplingOptions { TopP = 0.95f, TopK = 50 }));
        Assert.That(o.AdamW, Is.EqualTo(new GrpoTrainerOptions().AdamW with { Beta2 = 0.95f }));
        Assert.That(o.EpsilonHigh, Is.EqualTo(0.28f));
        Assert.That(o.ImportanceSamplingLevel, Is.EqualTo(ImportanceSamplingLevel.Sequence));
        Assert.That(o.KlEstimator, Is.EqualTo(KlEstimator.K2));
        Assert.That(o.MaskTruncatedCompletions, Is.True);
        Assert.That(o.StopTokens, Is.EqualTo(new[] { 7, 9 }));
        Assert.That(BuildOverTrlDefaults("--dynamic-sampling", "--max-generation-batches", "2").DynamicSampling,
            Is.EqualTo(new DynamicSamplingOptions { MaxGenerationBatches = 2 }));
        Assert.That(BuildOverTrlDefaults("--group-size", "3", "--max-steps", "9"), Is.EqualTo(new GrpoTrainerOptions { GroupSize = 3, TotalSteps = 9 }),
            "only the fields the flags name change");
    }

    /// <summary>
    /// A bool flag left out is not given (System.CommandLine still reports its implicit false): a run stored with
    /// true bools resumes without repeating them, and an explicit different value is refused, naming the flag.
    /// </summary>
    [Test]
    public void ResumingKeepsStoredBoolsUnlessAFlagChangesThem()
    {
        var stored = new GrpoTrainerOptions { MaskTruncatedCompletions = true, RecomputeActivations = false };
        TrainerOptionFlags.Values Read(params string[] args)
        {
            var command = new Command("train");
            Flags.AddTo(command);
            return Flags.Read(command.Parse(args));
        }
        Assert.That(Read().Given, Is.Empty);
        Assert.DoesNotThrow(() => Read().CheckResumed(stored, "run"));
        Assert.DoesNotThrow(() => Read("--mask-truncated-completions", "true").CheckResumed(stored, "run"));
        var error = Assert.Throws<ArgumentException>(() => Read("--mask-truncated-completions", "false").CheckResumed(stored, "run"));
        Assert.That(error!.Message, Does.Contain("--mask-truncated-completions").And.Not.Contain("--recompute-activations"));
    }

    [Test]
    public void ARunKindsDefaultsStandUnlessAFlagIsGivenAndFollowTheFlagsTheyDependOn()
    {
        // As the built-in task's run: its own learning rate and steps, and warmup a tenth of the run (at most 10).
        static GrpoTrainerOptions Defaults(GrpoTrainerOptions given) =>
            new() { LearningRate = 3e-4f, TotalSteps = 3000, WarmupSteps = Math.Min(10, given.TotalSteps / 10), Seed = 1 };
        Assert.That(Build(Defaults), Is.EqualTo(Defaults(new GrpoTrainerOptions { TotalSteps = 3000 })));
        Assert.That(Build(Defaults, "--steps", "50").WarmupSteps, Is.EqualTo(5));
        Assert.That(Build(Defaults, "--steps", "50", "--warmup-steps", "2").WarmupSteps, Is.EqualTo(2));
        Assert.That(Build(Defaults, "--learning-rate", "1e-5").LearningRate, Is.EqualTo(1e-5f));
    }

    [TestCase("--group-size", "1", "--group-size")]
    [TestCase("--num-generations", "1", "--group-size")]
    [TestCase("--temperature", "0", "--temperature")]
    [TestCase("--top-p", "1.5", "--top-p")]
    [TestCase("--top-k", "-1", "--top-k")]
    [TestCase("--min-p", "1", "--min-p")]
    [TestCase("--loss-type", "ppo", "grpo, bnpo, dapo, dr_grpo, cispo, sapo")]
    [TestCase("--scale-rewards", "maybe", "--scale-rewards")]
    [TestCase("--lr-scheduler-type", "step", "constant_with_warmup")]
    [TestCase("--epsilon", "-0.1", "--epsilon")]
    [TestCase("--epsilon-high", "-1", "--epsilon-high")]
    [TestCase("--delta", "0.5", "--delta")]
    [TestCase("--dual-clip", "1", "--dual-clip")]
    [TestCase("--beta", "-1", "--beta")]
    [TestCase("--entropy-coeff", "NaN", "--entropy-coeff")]
    [TestCase("--top-entropy-quantile", "1.5", "--top-entropy-quantile")]
    [TestCase("--multi-objective-aggregation", "mean", "normalize_then_sum")]
    [TestCase("--num-iterations", "0", "--num-iterations")]
    [TestCase("--learning-rate", "-1", "--learning-rate")]
    [TestCase("--warmup-steps", "5000", "--warmup-steps")]
    [TestCase("--warmup-ratio", "2", "--warmup-ratio")]
    [TestCase("--gradient-accumulation-steps", "3", "--gradient-accumulation-steps")]
    [TestCase("--adam-beta1", "1", "--adam-beta1")]
    [TestCase("--adam-beta2", "-0.5", "--adam-beta2")]
    [TestCase("--adam-epsilon", "-1", "--adam-epsilon")]
    [TestCase("--weight-decay", "-1", "--weight-decay")]
    [TestCase("--max-grad-norm", "-1", "--max-grad-norm")]
    [TestCase("--micro-batch-size", "0", "--micro-batch-size")]
    [TestCase("--sapo-temperature-pos", "0", "--sapo-temperature-pos")]
    [TestCase("--sapo-temperature-neg", "0", "--sapo-temperature-neg")]
    [TestCase("--max-consecutive-skipped-steps", "0", "--max-consecutive-skipped-steps")]
    [TestCase("--max-generation-batches", "2", "--dynamic-sampling")]
    [TestCase("--stop-token-ids", "1,x", "--stop-token-ids")]
    [TestCase("--steps", "0", "--steps")]
    [TestCase("--max-prompt-length", "0", "--max-prompt-length")]
    [TestCase("--max-completion-length", "0", "--max-completion-length")]
    public void ABadValueExitsWithTwoAndNamesTheFlag(string flag, string value, string expected)
    {
        string run = Path.Combine(Path.GetTempPath(), "grpo-flags-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (exit, _, error) = CliRun.Grpo("train", "--output", run, "--device", "cpu", flag, value);
            Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(error, Does.Contain(expected).And.Not.Contain("   at "));
            Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1), "one line");
            var fieldNames = SettableFields(typeof(GrpoTrainerOptions)).Select(p => p[(p.LastIndexOf('.') + 1)..]);
            Assert.That(fieldNames.Where(name => System.Text.RegularExpressions.Regex.IsMatch(error, $@"\b{name}\b")), Is.Empty,
                "the message names the flag, not the C# field");
        }
        finally
        {
            if (Directory.Exists(run)) Directory.Delete(run, recursive: true);
        }
    }

    [TestCase("--warmup-ratio", "0.1", "--warmup-steps", "2")]
    [TestCase("--gradient-accumulation-steps", "2", "--micro-batch-size", "4")]
    public void FlagsThatSetTheSameFieldExcludeEachOther(string one, string oneValue, string other, string otherValue)
    {
        var (exit, _, error) = CliRun.Grpo("train", "--output", Path.Combine(Path.GetTempPath(), "grpo-none"), one, oneValue, other, otherValue);
        Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
        Assert.That(error, Does.Contain(one).And.Contain(other));
    }

    [Test]
    public void TheReadmeTableListsEveryFlagWithItsTrlName()
    {
        string readme = File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "README.md"));
        foreach (var flag in Flags.Flags)
        {
            var row = readme.Split('\n').FirstOrDefault(line => line.StartsWith($"| `{flag.Name}`", StringComparison.Ordinal));
            Assert.That(row, Is.Not.Null, $"README: no table row for {flag.Name}");
            if (flag.TrlName is not null) Assert.That(row, Does.Contain($"`{flag.TrlName}`"), flag.Name);
        }
    }
}

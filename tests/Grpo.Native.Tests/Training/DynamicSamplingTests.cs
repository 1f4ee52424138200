using Grpo.Native.Cpu;
using Grpo.Native.Models;
using Grpo.Native.Training;
using NUnit.Framework;

using static Grpo.Native.Tests.Training.TinyRuns;

namespace Grpo.Native.Tests.Training;

/// <summary>DAPO's dynamic sampling: uninformative groups are dropped and more prompts generated, within a limit.</summary>
public sealed class DynamicSamplingTests
{
    /// <summary>Constant for prompts whose first letter has an even id, varied otherwise: half the groups carry no signal.</summary>
    private static readonly RewardFunction HalfInformative = RewardFunction.Create("half", input =>
        input.PromptTokens[1] % 2 == 0 ? 1f : input.CompletionTokens.Count % 3);

    private static (GrpoStepMetrics Metrics, int Calls, GrpoStepCompletions Completions) Step(RewardFunction reward, int maxBatches)
    {
        using var device = new CpuDevice();
        var options = Options(seed: 4) with { DynamicSampling = new DynamicSamplingOptions { MaxGenerationBatches = maxBatches } };
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 3);
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [reward], options);
        int calls = 0;
        var metrics = trainer.TrainStep(() => new PromptBatch(Prompts(options, 100 + calls++)));
        return (metrics, calls, trainer.LastStepCompletions!);
    }

    [Test]
    public void UninformativeGroupsAreDroppedAndMorePromptsGenerated()
    {
        var (metrics, calls, completions) = Step(HalfInformative, maxBatches: 8);
        int g = Options().GroupSize, b = Options().PromptsPerStep;
        TestContext.Out.WriteLine($"{calls} batches, {metrics.DroppedGroups} groups dropped");
        Assert.That(metrics.GenerationBatches, Is.EqualTo(calls));
        Assert.That(calls, Is.GreaterThan(1), "half the groups are dropped, so one batch of 4 cannot be enough with these prompts");
        Assert.That(completions.Inputs, Has.Count.EqualTo(b * g), "the step trains on PromptsPerStep groups");
        Assert.That(metrics.DroppedGroups, Is.EqualTo(calls * b - b), "every generated group is trained on or dropped");
        for (int group = 0; group < b; group++)
        {
            Assert.That(completions.Inputs[group * g].PromptTokens[1] % 2, Is.EqualTo(1), "only informative prompts are kept");
            Assert.That(completions.Advantages.Skip(group * g).Take(g).Any(a => a != 0), "a kept group has a learning signal");
        }
        var metricNames = metrics.ToDictionary();
        Assert.That(metricNames["dynamic_sampling/generation_batches"], Is.EqualTo(calls));
        Assert.That(Step(HalfInformative, maxBatches: 8).Metrics.ToDictionary().Where(kv => kv.Key is not ("step_time" or "tokens/s")),
            Is.EqualTo(metricNames.Where(kv => kv.Key is not ("step_time" or "tokens/s"))), "deterministic for a seed");
    }

    [Test]
    public void AtTheLimitTheStepTrainsOnWhatThereIs()
    {
        var constant = RewardFunction.Create("constant", _ => 1f);
        var (metrics, calls, completions) = Step(constant, maxBatches: 3);
        Assert.That(calls, Is.EqualTo(3));
        Assert.That(metrics.GenerationBatches, Is.EqualTo(3));
        Assert.That(metrics.DroppedGroups, Is.EqualTo(2 * Options().PromptsPerStep), "the last batch is trained on, the two before dropped");
        Assert.That(completions.Advantages, Is.All.EqualTo(0f));
        Assert.That(metrics.Skipped, Is.False);
    }

    [Test]
    public void DynamicSamplingNeedsAPromptSourceAndAValidLimit()
    {
        using var device = new CpuDevice();
        var options = Options() with { DynamicSampling = new DynamicSamplingOptions() };
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 3);
        using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, [Varied], options);
        var error = Assert.Throws<InvalidOperationException>(() => trainer.TrainStep(Prompts(options, 1)))!;
        Assert.That(error.Message, Does.Contain("Func<PromptBatch>"));
        var bad = Options() with { DynamicSampling = new DynamicSamplingOptions { MaxGenerationBatches = 0 } };
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => bad.Validate())!.Message, Does.Contain("MaxGenerationBatches"));
    }
}

using System.Text.Json;
using Grpo.Cli;
using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tokenization;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary>
/// <c>grpo eval</c> on a tiny random GPT-2 with GPT-2's real tokenizer. Its folder has no tokenizer_config.json, so the
/// tokenizer has no EOS: without a generation_config.json nothing stops a completion, every one runs to
/// --max-completion-length, and the length rewards of greedy and sampled completions are known exactly.
/// </summary>
public sealed class EvalCommandTests
{
    private string _model = "", _work = "", _dataset = "";

    private static readonly string[] ShortPrompts = ["2+2=", "3+3=", "1+1="];

    [OneTimeSetUp]
    public void WriteModelAndDataset()
    {
        _model = DatasetTrainTests.TinyGpt2WithTokenizer();
        _work = Path.Combine(Path.GetTempPath(), "grpo-eval-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_work);
        _dataset = Path.Combine(_work, "test.jsonl");
        string longPrompt = string.Join(' ', Enumerable.Repeat("a very long question", 8));
        // An answer no two-token completion can match; the third row is over --max-prompt-length 12; the last has no answer,
        // so accuracy cannot score it.
        File.WriteAllLines(_dataset, [
            JsonSerializer.Serialize(new { prompt = ShortPrompts[0], answer = "#### 12345.678" }),
            JsonSerializer.Serialize(new { prompt = ShortPrompts[1], answer = "#### 12345.678" }),
            JsonSerializer.Serialize(new { prompt = longPrompt, answer = "#### 1" }),
            JsonSerializer.Serialize(new { prompt = ShortPrompts[2], answer = (string?)null }),
        ]);
    }

    [OneTimeTearDown]
    public void Remove()
    {
        Directory.Delete(_model, recursive: true);
        Directory.Delete(_work, recursive: true);
    }

    [TearDown]
    public void RemoveGenerationConfig() => File.Delete(Path.Combine(_model, GenerationConfig.FileName));

    private (int Exit, JsonElement Json, string Error) Eval(params string[] extra)
    {
        var (exit, output, error) = CliRun.Grpo(["eval", "--model", _model, "--dataset", _dataset, "--max-prompt-length", "12",
            "--max-completion-length", "2", "--device", "cpu", "--json", .. extra]);
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
        return (exit, JsonDocument.Parse(output).RootElement, error);
    }

    private static void AssertJson(JsonElement json, double passAt1, double meanReward, int prompts, int samples, int skipped)
    {
        Assert.That(json.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "pass@1", "mean_reward", "prompts", "samples", "skipped" }));
        Assert.That(json.GetProperty("pass@1").GetDouble(), Is.EqualTo(passAt1).Within(1e-12), "pass@1");
        Assert.That(json.GetProperty("mean_reward").GetDouble(), Is.EqualTo(meanReward).Within(1e-6), "mean_reward");
        Assert.That(json.GetProperty("prompts").GetInt32(), Is.EqualTo(prompts), "prompts");
        Assert.That(json.GetProperty("samples").GetInt32(), Is.EqualTo(samples), "samples");
        Assert.That(json.GetProperty("skipped").GetInt32(), Is.EqualTo(skipped), "skipped");
    }

    [Test]
    public void RepetitionPenaltyOfTwoTokenCompletionsIsAlwaysItsMaximumSoEveryPromptPasses()
    {
        // Two tokens are at most two words: fewer than repetition_penalty's 3-grams, so it scores 0, its maximum.
        var (_, json, _) = Eval("--reward", "repetition_penalty", "--samples", "3", "--seed", "5");
        AssertJson(json, passAt1: 1, meanReward: 0, prompts: 3, samples: 3, skipped: 1);
    }

    [Test]
    public void AWeightedSumOfAccuracyAndSoftOverlongIsKnownWhenEveryCompletionRunsToTheLimit()
    {
        // L = L_max = 2, buffer max(1, 2/5) = 1: soft_overlong_punishment = (2 - 1 - 2) / 1 = -1 for every completion;
        // accuracy is 0 on the first two rows and unscored (NaN, left out of the sum) on the last. Each weighted reward is
        // 1·0 + 0.5·(-1) = -0.5, below the best 1·1 + 0.5·0 = 1.5: nothing passes.
        var (_, json, _) = Eval("--reward", "accuracy,soft_overlong_punishment", "--reward-weights", "1,0.5", "--samples", "2");
        AssertJson(json, passAt1: 0, meanReward: -0.5, prompts: 3, samples: 2, skipped: 1);

        var limited = Eval("--reward", "accuracy,soft_overlong_punishment", "--reward-weights", "1,0.5", "--samples", "2", "--limit", "2").Json;
        AssertJson(limited, passAt1: 0, meanReward: -0.5, prompts: 2, samples: 2, skipped: 0);
    }

    [Test]
    public void GenerationConfigGivesTheStopTokensAndDoSampleFalseMakesTheSamplesGreedy()
    {
        // The stop token is the greedy first token of the first prompt: that completion ends after 1 token (L = 1 <= L_max - 1,
        // soft_overlong_punishment 0, a pass); a completion that runs on to 2 tokens scores -1. do_sample false makes the
        // samples greedy, so the mean reward is the greedy one's.
        int[] first = GreedyFirstTokens();
        int stop = first[0];
        int passing = first.Count(t => t == stop);
        File.WriteAllText(Path.Combine(_model, GenerationConfig.FileName), $$"""{"eos_token_id": [{{stop}}], "do_sample": false, "repetition_penalty": 1.2}""");
        var (_, json, error) = Eval("--reward", "soft_overlong_punishment", "--samples", "4");
        AssertJson(json, passAt1: passing / 3.0, meanReward: -(3 - passing) / 3.0, prompts: 3, samples: 4, skipped: 1);
        Assert.That(error, Does.Contain("repetition_penalty 1.2").And.Contain("ignored"));
    }

    [Test]
    public void TheReadableSummaryShowsTheCounts()
    {
        var (exit, output, error) = CliRun.Grpo("eval", "--model", _model, "--dataset", _dataset, "--max-prompt-length", "12",
            "--max-completion-length", "2", "--device", "cpu", "--reward", "accuracy", "--samples", "2");
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
        // accuracy alone leaves the row without an answer unscored: out of pass@1 and the mean, and counted.
        Assert.That(output, Does.Contain("3 evaluated, 1 skipped").And.Contain("0 of 2 scored greedy completions; 1 unscored")
            .And.Contain("4 scored samples, 2 per prompt; 2 unscored").And.Contain("pass@1       0.0000"));
    }

    [TestCase("--reward", "exactness", "--reward")]
    [TestCase("--samples", "0", "--samples")]
    [TestCase("--limit", "0", "--limit")]
    [TestCase("--prompt-column", "question", "--prompt-column")]
    [TestCase("--max-completion-length", "30", "--max-completion-length")]
    public void BadArgumentsExitWithTwoAndNameTheOption(string option, string value, string named)
    {
        string[] args = ["eval", "--model", _model, "--dataset", _dataset, "--max-prompt-length", "12", "--device", "cpu"];
        if (option != "--reward") args = [.. args, "--reward", "repetition_penalty"];
        if (option != "--max-completion-length") args = [.. args, "--max-completion-length", "2"];
        var (exit, _, error) = CliRun.Grpo([.. args, option, value]);
        Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
        Assert.That(error, Does.Contain(named).And.Not.Contain("   at "));
    }

    [Test]
    public void AccuracyOnADatasetWithoutAReferenceColumnIsRefusedNamingTheColumns()
    {
        string noAnswers = Path.Combine(_work, "no-answers.jsonl");
        File.WriteAllText(noAnswers, "{\"prompt\": \"2+2=\", \"topic\": \"sums\"}\n");
        var (exit, _, error) = CliRun.Grpo("eval", "--model", _model, "--dataset", noAnswers, "--max-prompt-length", "12",
            "--max-completion-length", "2", "--device", "cpu", "--reward", "accuracy");
        Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
        Assert.That(error, Does.Contain("--reward accuracy").And.Contain("'answer'").And.Contain("topic"));
    }

    /// <summary>The greedy first token of each short prompt, through the library, as grpo eval encodes them (no chat template).</summary>
    private int[] GreedyFirstTokens()
    {
        using var device = Device.Create("cpu");
        using var model = TransformerModel.Load(device, _model);
        using var tokenizer = HuggingFaceTokenizer.Load(_model);
        var prompts = ShortPrompts.Select(p => tokenizer.Encode(p)).ToArray();
        int longest = prompts.Max(p => p.Length);
        using var generator = new RolloutGenerator(model, prompts.Length, longest, 1, prompts.Length * longest);
        return generator.Generate(prompts, 1, 1, new SamplingOptions { Temperature = 0 }, [], 0).Completions.Select(c => c[0]).ToArray();
    }
}

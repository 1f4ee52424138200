using System.Text.Json;
using System.Text.RegularExpressions;
using Grpo.Cli;
using Grpo.Native.Tests.Models;
using Grpo.Native.Tests.Tokenization;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary><c>grpo train --model DIR --dataset FILE --reward ...</c> as a user runs it, on a tiny GPT-2 with GPT-2's real tokenizer.</summary>
public sealed class DatasetTrainTests
{
    /// <summary>A tiny random GPT-2 folder with GPT-2's real vocabulary (vocab.json + merges.txt, 50,257 tokens).</summary>
    public static string TinyGpt2WithTokenizer()
    {
        var config = TinyModels.Config("gpt2", vocab: 50257);
        string folder = TinyModels.WriteFolder(config, TinyModels.Parameters(config, new Random(5)));
        foreach (string file in new[] { "vocab.json", "merges.txt" })
            File.Copy(Path.Combine(TokenizerTestData.Folder("gpt2"), file), Path.Combine(folder, file));
        return folder;
    }

    [Test]
    public void ADatasetRunFeedsRowColumnsToRewardsSkipsLongPromptsCheckpointsTheTokenizerAndResumes()
    {
        string model = TinyGpt2WithTokenizer(), work = Path.Combine(Path.GetTempPath(), "grpo-dataset-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            // Three short prompts and three over --max-prompt-length 12: two steps of two prompts need four short ones, so
            // the run passes over every long row at least once.
            string dataset = Path.Combine(work, "train.jsonl");
            string longPrompt = string.Join(' ', Enumerable.Repeat("a very long question", 8));
            File.WriteAllLines(dataset, new[] { ("2+2=", "#### 4"), (longPrompt, "#### 1"), ("3+3=", "#### 6"), (longPrompt, "#### 2"), ("1+1=", "#### 2"), (longPrompt, "#### 3") }
                .Select(r => JsonSerializer.Serialize(new { prompt = r.Item1, answer = r.Item2 })));
            string run = Path.Combine(work, "run");
            string[] common = ["train", "--model", model, "--dataset", dataset, "--reward", "accuracy,repetition_penalty", "--reward-weights", "1,0.5",
                "--prompts", "2", "--group-size", "2", "--max-prompt-length", "12", "--max-completion-length", "6", "--checkpoint-every", "1",
                "--device", "cpu", "--seed", "3", "--output", run];
            var (exit, output, error) = CliRun.Grpo([.. common, "--steps", "3"]);
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            Assert.That(output, Does.Contain("6 rows").And.Contain("accuracy x1").And.Contain("repetition_penalty x0.5"));

            var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
            Assert.That(lines, Has.Length.EqualTo(3));
            foreach (string line in lines)
            {
                var metrics = JsonDocument.Parse(line).RootElement;
                // The answer column reached the accuracy reward: without it every score would be NaN ("no score").
                double accuracy = metrics.GetProperty("rewards/accuracy/mean").GetDouble();
                Assert.That(accuracy, Is.InRange(0.0, 1.0), line);
                Assert.That(metrics.GetProperty("rewards/repetition_penalty/mean").GetDouble(), Is.InRange(-1.0, 0.0));
            }
            Assert.That(JsonDocument.Parse(lines[1]).RootElement.GetProperty("prompts/skipped").GetDouble(), Is.GreaterThanOrEqualTo(3));

            string modelFolder = Path.Combine(run, "checkpoint-3", "model");
            foreach (string file in new[] { "config.json", "model.safetensors", "vocab.json", "merges.txt" })
                Assert.That(File.Exists(Path.Combine(modelFolder, file)), file);
            var sample = CliRun.Grpo("sample", "--model", modelFolder, "--prompt", "2+2=", "--temperature", "0", "--max-tokens", "3", "--device", "cpu");
            Assert.That(sample.Exit, Is.EqualTo(GrpoCommand.Success), sample.Error);

            // Resuming from checkpoint-2 continues at the same row: step 3 is logged exactly as before. The run.json is
            // rewritten as runs wrote it before the trainer options moved to the checkpoint alone: it still reads.
            Directory.Delete(Path.Combine(run, "checkpoint-3"), recursive: true);
            var runInfo = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!;
            runInfo["Dataset"]!["MaxPromptLength"] = 12;
            runInfo["Dataset"]!["MaxCompletionLength"] = 6;
            runInfo["Dataset"]!["Temperature"] = 1.0;
            runInfo["Dataset"]!["DynamicSamplingBatches"] = 0;
            File.WriteAllText(Path.Combine(run, "run.json"), runInfo.ToJsonString());
            var resumed = CliRun.Grpo("train", "--resume", "--output", run, "--device", "cpu");
            Assert.That(resumed.Exit, Is.EqualTo(GrpoCommand.Success), resumed.Error);
            Assert.That(resumed.Output, Does.Contain("resuming from").And.Contain("at step 2"));
            static string Stable(string line) => Regex.Replace(line, "\"(step_time|tokens/s)\":[^,}]*", "");
            Assert.That(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(Stable), Is.EqualTo(lines.Select(Stable)));
        }
        finally
        {
            Directory.Delete(model, recursive: true);
            Directory.Delete(work, recursive: true);
        }
    }

    [Test]
    public void DynamicSamplingGeneratesMoreBatchesWhenGroupsCarryNoSignal()
    {
        // A random tiny model never writes the right number, so accuracy is 0 for every completion: no group carries a
        // signal, and each step generates --max-generation-batches batches before training on the last one.
        string model = TinyGpt2WithTokenizer(), work = Path.Combine(Path.GetTempPath(), "grpo-dynamic-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            string dataset = Path.Combine(work, "train.jsonl");
            File.WriteAllLines(dataset, Enumerable.Range(1, 8).Select(i => JsonSerializer.Serialize(new { prompt = $"{i}+{i}=", answer = $"#### {2 * i}" })));
            var (exit, _, error) = CliRun.Grpo("train", "--model", model, "--dataset", dataset, "--reward", "accuracy", "--dynamic-sampling",
                "--max-generation-batches", "3", "--steps", "1", "--prompts", "2", "--group-size", "2", "--max-prompt-length", "12",
                "--max-completion-length", "4", "--device", "cpu", "--output", Path.Combine(work, "run"));
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            var metrics = JsonDocument.Parse(File.ReadAllLines(Path.Combine(work, "run", "metrics.jsonl"))[0]).RootElement;
            Assert.That(metrics.GetProperty("rewards/accuracy/mean").GetDouble(), Is.EqualTo(0.0));
            Assert.That(metrics.GetProperty("dynamic_sampling/generation_batches").GetDouble(), Is.EqualTo(3));
            Assert.That(metrics.GetProperty("dynamic_sampling/dropped_groups").GetDouble(), Is.EqualTo(4));

            var bad = CliRun.Grpo("train", "--model", model, "--dataset", dataset, "--reward", "accuracy", "--dynamic-sampling",
                "--max-generation-batches", "0", "--output", Path.Combine(work, "bad"));
            Assert.That(bad.Exit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(bad.Error, Does.Contain("--max-generation-batches"));
        }
        finally
        {
            Directory.Delete(model, recursive: true);
            Directory.Delete(work, recursive: true);
        }
    }

    [TestCase("--reward", "exactness", "not a built-in reward")]
    [TestCase("--reward-weights", "1,2", "weights")]
    [TestCase("--prompt-column", "question", "question")]
    public void BadDatasetArgumentsExitWithTwoAndNameTheProblem(string option, string value, string expected)
    {
        string model = TinyGpt2WithTokenizer(), dataset = Path.Combine(Path.GetTempPath(), $"grpo-ds-{Guid.NewGuid():N}.jsonl");
        File.WriteAllText(dataset, "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n");
        try
        {
            string[] args = ["train", "--model", model, "--dataset", dataset, "--steps", "1", "--device", "cpu", "--output", dataset + ".run"];
            if (option != "--reward") args = [.. args, "--reward", "accuracy"];
            var (exit, _, error) = CliRun.Grpo([.. args, option, value]);
            Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(error, Does.Contain(expected).IgnoreCase.And.Not.Contain("   at "));

            var noReward = CliRun.Grpo("train", "--model", model, "--dataset", dataset, "--steps", "1", "--device", "cpu", "--output", dataset + ".run");
            Assert.That(noReward.Exit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(noReward.Error, Does.Contain("--reward"));
        }
        finally
        {
            Directory.Delete(model, recursive: true);
            File.Delete(dataset);
            if (Directory.Exists(dataset + ".run")) Directory.Delete(dataset + ".run", true);
        }
    }
}

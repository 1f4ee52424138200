using System.Text.Json;
using Grpo.Cli;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary>completions.jsonl of <c>grpo train --dataset</c>: its lines, how many, and how --resume cuts it back.</summary>
public sealed class CompletionsLogTests
{
    [Test]
    public void EveryLoggedStepWritesOneLinePerCompletionAndResumeDropsTheLinesAfterTheCheckpoint()
    {
        string model = DatasetTrainTests.TinyGpt2WithTokenizer(), work = Path.Combine(Path.GetTempPath(), "grpo-completions-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            string dataset = Path.Combine(work, "train.jsonl");
            File.WriteAllLines(dataset, new[] { ("2+2=", "4"), ("3+3=", "6"), ("1+1=", "2") }
                .Select(r => JsonSerializer.Serialize(new { prompt = r.Item1, answer = r.Item2 })));
            string run = Path.Combine(work, "run"), log = Path.Combine(run, "completions.jsonl");
            string[] common = ["train", "--model", model, "--dataset", dataset, "--reward", "accuracy,soft_overlong_punishment", "--reward-weights", "1,0.5",
                "--prompts", "2", "--group-size", "2", "--max-prompt-length", "12", "--max-completion-length", "4", "--checkpoint-every", "1",
                "--device", "cpu", "--seed", "3", "--output", run, "--steps", "3"];
            var (exit, _, error) = CliRun.Grpo([.. common, "--log-completions-steps", "1"]);
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);

            var lines = File.ReadAllLines(log);
            Assert.That(lines, Has.Length.EqualTo(3 * 2 * 2), "3 steps of 2 prompts x 2 completions");
            var rows = lines.Select(l => JsonDocument.Parse(l).RootElement).ToArray();
            Assert.That(rows.Select(r => r.GetProperty("step").GetInt32()), Is.EqualTo(new[] { 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3 }));
            foreach (var (row, line) in rows.Zip(lines))
            {
                Assert.That(row.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "step", "prompt", "completion", "rewards", "reward", "advantage" }), line);
                Assert.That(row.GetProperty("prompt").GetString(), Is.AnyOf("2+2=", "3+3=", "1+1="));
                Assert.That(row.GetProperty("completion").ValueKind, Is.EqualTo(JsonValueKind.String));
                var rewards = row.GetProperty("rewards");
                double accuracy = rewards.GetProperty("accuracy").GetDouble(), overlong = rewards.GetProperty("soft_overlong_punishment").GetDouble();
                Assert.That(accuracy, Is.AnyOf(0.0, 1.0), line);
                Assert.That(overlong, Is.InRange(-1.0, 0.0), line);
                Assert.That(row.GetProperty("reward").GetDouble(), Is.EqualTo(accuracy + 0.5 * overlong).Within(1e-6), line);
            }
            // The advantages of each group (2 consecutive completions of one prompt) are centred on its mean.
            for (int g = 0; g < rows.Length; g += 2)
                Assert.That(rows[g].GetProperty("advantage").GetDouble() + rows[g + 1].GetProperty("advantage").GetDouble(), Is.EqualTo(0).Within(1e-5));

            // A crash after step 3's checkpoint was lost, with a line cut short: resuming from checkpoint-2 drops step 3's lines
            // and the torn one, and logs step 3 again exactly as before.
            Directory.Delete(Path.Combine(run, "checkpoint-3"), recursive: true);
            File.AppendAllText(log, "{\"step\": 3, \"prompt\": \"2+2");
            var resumed = CliRun.Grpo("train", "--resume", "--output", run, "--device", "cpu");
            Assert.That(resumed.Exit, Is.EqualTo(GrpoCommand.Success), resumed.Error);
            Assert.That(File.ReadAllLines(log), Is.EqualTo(lines));

            // The run keeps its --log-completions-steps; a resumed run may change it (here: every second step, so step 3 logs nothing).
            Directory.Delete(Path.Combine(run, "checkpoint-3"), recursive: true);
            resumed = CliRun.Grpo("train", "--resume", "--output", run, "--device", "cpu", "--log-completions-steps", "2");
            Assert.That(resumed.Exit, Is.EqualTo(GrpoCommand.Success), resumed.Error);
            Assert.That(File.ReadAllLines(log), Is.EqualTo(lines[..8]));

            // The default is every 10 steps: a new 3-step run logs none.
            string quiet = Path.Combine(work, "quiet");
            (exit, _, error) = CliRun.Grpo([.. common[..^3], quiet, "--steps", "3"]);
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            Assert.That(File.Exists(Path.Combine(quiet, "completions.jsonl")), Is.False);

            var bad = CliRun.Grpo([.. common[..^3], Path.Combine(work, "bad"), "--steps", "1", "--log-completions-steps", "-1"]);
            Assert.That(bad.Exit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(bad.Error, Does.Contain("--log-completions-steps"));
        }
        finally
        {
            Directory.Delete(model, recursive: true);
            Directory.Delete(work, recursive: true);
        }
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Grpo.Cli;
using Grpo.Native.Checkpoints;
using Grpo.Native.Tests.Models;
using Grpo.Native.Tests.Tokenization;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary>A Qwen3 folder through the CLI: trained from, checkpointed as a Qwen3 folder transformers reads, sampled from, benchmarked.</summary>
public sealed class Qwen3CommandsTests
{
    [Test]
    public void TrainCheckpointsAQwen3FolderThatSampleLoads()
    {
        // The tiny qwen3 (head_dim 6 over a width of 16 with 4 heads) with GPT-2's real tokenizer files for text in and out.
        var config = TinyModels.Config("qwen3", vocab: 50257);
        string model = TinyModels.WriteFolder(config, TinyModels.Parameters(config, new Random(7)));
        string work = Path.Combine(Path.GetTempPath(), "grpo-qwen3-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            foreach (string file in new[] { "vocab.json", "merges.txt" })
                File.Copy(Path.Combine(TokenizerTestData.Folder("gpt2"), file), Path.Combine(model, file));
            string dataset = Path.Combine(work, "train.jsonl");
            File.WriteAllLines(dataset, new[] { ("2+2=", "#### 4"), ("3+3=", "#### 6") }
                .Select(r => JsonSerializer.Serialize(new { prompt = r.Item1, answer = r.Item2 })));
            string run = Path.Combine(work, "run");
            var (exit, _, error) = CliRun.Grpo("train", "--model", model, "--dataset", dataset, "--reward", "accuracy", "--prompts", "2",
                "--group-size", "2", "--max-prompt-length", "12", "--max-completion-length", "4", "--steps", "1", "--checkpoint-every", "1", "--device", "cpu", "--output", run);
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);

            string checkpoint = Path.Combine(run, "checkpoint-1", "model");
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json")))!.AsObject();
            Assert.That(json["architectures"]!.ToJsonString(), Is.EqualTo("[\"Qwen3ForCausalLM\"]"));
            Assert.That(((string?)json["model_type"], (int?)json["head_dim"]), Is.EqualTo(("qwen3", config.HeadDim)));
            Assert.That(ModelConfig.Load(checkpoint).ToJson(), Is.EqualTo(config.ToJson()), "the checkpoint's config is the model's");
            using (var file = SafetensorsFile.OpenFolder(checkpoint))
                Assert.That(file.ParameterNames, Does.Contain("model.layers.0.self_attn.q_norm.weight").And.Contain("model.layers.1.self_attn.k_norm.weight"));

            var sample = CliRun.Grpo("sample", "--model", checkpoint, "--prompt", "2+2=", "--temperature", "0", "--max-tokens", "3", "--device", "cpu");
            Assert.That(sample.Exit, Is.EqualTo(GrpoCommand.Success), sample.Error);
        }
        finally
        {
            Directory.Delete(model, recursive: true);
            Directory.Delete(work, recursive: true);
        }
    }

    [Test]
    public void BenchRunsTheQwen3Family()
    {
        var (exit, output, error) = CliRun.Grpo("bench", "--family", "qwen3", "--vocab", "64", "--layers", "1", "--embd", "32", "--prompts", "2",
            "--group", "2", "--prompt-len", "4", "--completion-len", "4", "--steps", "1", "--json", "--device", "cpu");
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
        Assert.That(output, Does.Contain("\"family\": \"qwen3\"").Or.Contain("\"family\":\"qwen3\""));
    }
}

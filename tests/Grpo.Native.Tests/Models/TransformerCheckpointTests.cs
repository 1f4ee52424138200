using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Models;

/// <summary>Hugging Face model folders in and out: bit-exact round trips, and a config that disagrees with the weights is named.</summary>
public sealed class TransformerCheckpointTests
{
    [TestCaseSource(typeof(TinyModels), nameof(TinyModels.NamesWithRopeScaling))]
    public void SaveThenLoadIsBitExactInTheHuggingFaceLayout(string name)
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var config = TinyModels.Config(name);
        var parameters = TinyModels.Parameters(config, TestRandom.Create());
        string folder = TinyModels.WriteFolder(config, parameters);
        string saved = folder + "-saved";
        try
        {
            using var model = TransformerModel.Load(device, folder);
            model.Save(saved);
            // What we wrote is what the hub folder held, tensor for tensor, bit for bit, in the on-disk layout.
            using (var file = SafetensorsFile.OpenFolder(saved))
            {
                var layout = TransformerReference.Layout(config);
                Assert.That(file.ParameterNames.OrderBy(n => n), Is.EqualTo(layout.Select(t => t.Name).OrderBy(n => n)));
                foreach (var (tensorName, shape) in layout)
                {
                    Assert.That(file.Get(tensorName).Shape, Is.EqualTo(shape), tensorName);
                    Assert.That(file.ReadFloat32(tensorName), Is.EqualTo(Array.ConvertAll(parameters[tensorName], v => (float)v)), tensorName);
                }
            }
            Assert.That(ModelConfig.Load(saved), Is.EqualTo(config).Using<ModelConfig>((a, b) => a.ToJson() == b.ToJson()));
            using var again = TransformerModel.Load(device, saved);
            Assert.That(again.Parameters.Buffer.ToArray(), Is.EqualTo(model.Parameters.Buffer.ToArray()));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
            if (Directory.Exists(saved)) Directory.Delete(saved, recursive: true);
        }
    }

    [Test]
    public void AQwen3FolderIsWrittenUnderTransformersNamesAndAHeadWidthMismatchIsNamed()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var config = TinyModels.Config("qwen3");
        Assert.That(config.NumHeads * config.HeadDim, Is.Not.EqualTo(config.HiddenSize), "the tiny qwen3 must have H·D ≠ C");
        string folder = TinyModels.WriteFolder(config, TinyModels.Parameters(config, TestRandom.Create()));
        string saved = folder + "-saved";
        try
        {
            using (var model = TransformerModel.Load(device, folder))
                model.Save(saved);
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(saved, "config.json")))!.AsObject();
            Assert.That(json["architectures"]!.ToJsonString(), Is.EqualTo("[\"Qwen3ForCausalLM\"]"));
            Assert.That((string?)json["model_type"], Is.EqualTo("qwen3"));
            Assert.That((int?)json["head_dim"], Is.EqualTo(config.HeadDim));
            Assert.That((bool?)json["attention_bias"], Is.False);
            Assert.That((bool?)json["tie_word_embeddings"], Is.True);
            using (var file = SafetensorsFile.OpenFolder(saved))
            {
                int c = config.HiddenSize, q = config.NumHeads * config.HeadDim;
                Assert.That(file.Get("model.layers.1.self_attn.q_norm.weight").Shape, Is.EqualTo(new[] { config.HeadDim }));
                Assert.That(file.Get("model.layers.1.self_attn.k_norm.weight").Shape, Is.EqualTo(new[] { config.HeadDim }));
                Assert.That(file.Get("model.layers.0.self_attn.q_proj.weight").Shape, Is.EqualTo(new[] { q, c }));
                Assert.That(file.Get("model.layers.0.self_attn.o_proj.weight").Shape, Is.EqualTo(new[] { c, q }));
                Assert.That(file.ParameterNames.Where(n => n.EndsWith(".bias", StringComparison.Ordinal) || n == "lm_head.weight"), Is.Empty,
                    "no attention_bias, tied");
            }

            // A config whose head_dim disagrees with the weights fails on the first projection it reshapes.
            File.WriteAllText(Path.Combine(folder, "config.json"), (config with { HeadDim = 4 }).ToJson());
            var e = Assert.Throws<CheckpointFormatException>(() => TransformerModel.Load(device, folder));
            TestContext.Out.WriteLine(e!.Message);
            Assert.That(e.Message, Does.Contain("q_proj").And.Contain("disagrees"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
            if (Directory.Exists(saved)) Directory.Delete(saved, recursive: true);
        }
    }

    [TestCaseSource(typeof(TinyModels), nameof(TinyModels.NamesWithRopeScaling))]
    public void TheConfigsParameterCountIsTheLayoutsSize(string name)
    {
        // The count the config checks against the one-buffer cap before anything is allocated is exact.
        var config = TinyModels.Config(name);
        Assert.That(config.ParameterCountEstimate, Is.EqualTo(TransformerLayout.For(config).Sum(p => p.Length)));
    }

    [TestCase("h.3.attn.bias")]
    [TestCase("transformer.h.0.attn.masked_bias")]
    [TestCase("model.layers.0.self_attn.rotary_emb.inv_freq")]
    public void BuffersHubCheckpointsCarryAreNotParameters(string name) => Assert.That(SafetensorsFile.IsBuffer(name));

    [Test]
    public void AHubStyleFolderWithPrefixedNamesAndBuffersLoads()
    {
        // GPT-2 on the hub: "transformer."-prefixed names, causal-mask buffers, and a duplicated lm_head.weight.
        var config = TinyModels.Config("gpt2");
        var parameters = TinyModels.Parameters(config, TestRandom.Create());
        string folder = Path.Combine(Path.GetTempPath(), "grpo-hub-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJson());
            var tensors = TransformerReference.Layout(config)
                .Select(t => ("transformer." + t.Name, t.Shape, (ReadOnlyMemory<float>)Array.ConvertAll(parameters[t.Name], v => (float)v)))
                .Append(("transformer.h.0.attn.bias", new[] { 1, 1, 4, 4 }, (ReadOnlyMemory<float>)new float[16]))
                .Append(("lm_head.weight", new[] { config.VocabSize, config.HiddenSize }, (ReadOnlyMemory<float>)new float[config.VocabSize * config.HiddenSize]));
            SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
            using var model = TransformerModel.Load(TestDevices.Get(DeviceKind.Cpu), folder);
            Assert.That(model.Parameters["wte.weight"].ToArray(), Is.EqualTo(Array.ConvertAll(parameters["wte.weight"], v => (float)v)));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void ConfigThatDisagreesWithTheWeightsIsNamed()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var config = TinyModels.Config("llama");
        string folder = TinyModels.WriteFolder(config, TinyModels.Parameters(config, TestRandom.Create()));
        try
        {
            File.WriteAllText(Path.Combine(folder, "config.json"), (config with { NumLayers = 1 }).ToJson());
            var extra = Assert.Throws<CheckpointFormatException>(() => TransformerModel.Load(device, folder));
            Assert.That(extra!.Message, Does.Contain("model.layers.1.").And.Contain("num_hidden_layers"));

            File.WriteAllText(Path.Combine(folder, "config.json"), (config with { NumLayers = 3 }).ToJson());
            var missing = Assert.Throws<CheckpointFormatException>(() => TransformerModel.Load(device, folder));
            Assert.That(missing!.Message, Does.Contain("model.layers.2.").And.Contain("do not contain"));

            File.WriteAllText(Path.Combine(folder, "config.json"), (config with { IntermediateSize = 20 }).ToJson());
            var shape = Assert.Throws<CheckpointFormatException>(() => TransformerModel.Load(device, folder));
            Assert.That(shape!.Message, Does.Contain("gate_proj").And.Contain("disagrees"));

            File.Delete(Path.Combine(folder, "config.json"));
            Assert.Throws<FileNotFoundException>(() => TransformerModel.Load(device, folder));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

using System.Text.Json.Nodes;
using Grpo.Native.Checkpoints;
using NUnit.Framework;

namespace Grpo.Native.Tests.Checkpoints;

/// <summary>config.json parsing, defaults, validation messages and the HF-compatible writer.</summary>
public sealed class ModelConfigTests
{
    // Modelled on the hub's openai-community/gpt2 config.json.
    private const string Gpt2 = """
        {
          "activation_function": "gelu_new",
          "architectures": ["GPT2LMHeadModel"],
          "attn_pdrop": 0.1,
          "bos_token_id": 50256,
          "embd_pdrop": 0.1,
          "eos_token_id": 50256,
          "initializer_range": 0.02,
          "layer_norm_epsilon": 1e-05,
          "model_type": "gpt2",
          "n_ctx": 1024,
          "n_embd": 768,
          "n_head": 12,
          "n_layer": 12,
          "n_positions": 1024,
          "resid_pdrop": 0.1,
          "summary_activation": null,
          "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
          "vocab_size": 50257
        }
        """;

    // Modelled on TinyLlama/TinyLlama-1.1B-Chat-v1.0.
    private const string Llama = """
        {
          "architectures": ["LlamaForCausalLM"],
          "attention_bias": false,
          "bos_token_id": 1,
          "eos_token_id": 2,
          "hidden_act": "silu",
          "hidden_size": 2048,
          "initializer_range": 0.02,
          "intermediate_size": 5632,
          "max_position_embeddings": 2048,
          "model_type": "llama",
          "num_attention_heads": 32,
          "num_hidden_layers": 22,
          "num_key_value_heads": 4,
          "pretraining_tp": 1,
          "rms_norm_eps": 1e-05,
          "rope_scaling": null,
          "rope_theta": 10000.0,
          "tie_word_embeddings": false,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.35.0",
          "use_cache": true,
          "vocab_size": 32000
        }
        """;

    // Modelled on Qwen/Qwen2-0.5B.
    private const string Qwen2 = """
        {
          "architectures": ["Qwen2ForCausalLM"],
          "attention_dropout": 0.0,
          "bos_token_id": 151643,
          "eos_token_id": 151643,
          "hidden_act": "silu",
          "hidden_size": 896,
          "initializer_range": 0.02,
          "intermediate_size": 4864,
          "max_position_embeddings": 131072,
          "max_window_layers": 24,
          "model_type": "qwen2",
          "num_attention_heads": 14,
          "num_hidden_layers": 24,
          "num_key_value_heads": 2,
          "rms_norm_eps": 1e-06,
          "rope_theta": 1000000.0,
          "sliding_window": 131072,
          "tie_word_embeddings": true,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.40.1",
          "use_cache": true,
          "use_sliding_window": false,
          "vocab_size": 151936
        }
        """;

    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "grpo-cfg-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private ModelConfig LoadText(string json)
    {
        File.WriteAllText(Path.Combine(_dir, "config.json"), json);
        return ModelConfig.Load(_dir);
    }

    [Test]
    public void Gpt2ConfigLoads()
    {
        var c = LoadText(Gpt2);
        Assert.That(c.ModelType, Is.EqualTo("gpt2"));
        Assert.That((c.VocabSize, c.HiddenSize, c.NumLayers, c.NumHeads, c.NumKeyValueHeads), Is.EqualTo((50257, 768, 12, 12, 12)));
        Assert.That(c.IntermediateSize, Is.EqualTo(3072), "n_inner absent: 4 * n_embd");
        Assert.That(c.MaxPositions, Is.EqualTo(1024));
        Assert.That(c.NormEpsilon, Is.EqualTo(1e-5));
        Assert.That(c.TieWordEmbeddings, Is.True);
        Assert.That(c.HeadDim, Is.EqualTo(64));
        Assert.That(c.HasQkvBias, Is.True);
        Assert.That(LoadText(Gpt2.Replace("\"n_embd\": 768", "\"n_inner\": 1000, \"n_embd\": 768")).IntermediateSize, Is.EqualTo(1000));
        Assert.That(LoadText(Gpt2.Replace("\"n_embd\": 768", "\"n_inner\": null, \"n_embd\": 768")).IntermediateSize, Is.EqualTo(3072));
    }

    [Test]
    public void LlamaConfigLoads()
    {
        var c = LoadText(Llama);
        Assert.That((c.VocabSize, c.HiddenSize, c.NumLayers, c.NumHeads, c.NumKeyValueHeads), Is.EqualTo((32000, 2048, 22, 32, 4)));
        Assert.That(c.IntermediateSize, Is.EqualTo(5632));
        Assert.That(c.MaxPositions, Is.EqualTo(2048));
        Assert.That(c.NormEpsilon, Is.EqualTo(1e-5));
        Assert.That(c.RopeTheta, Is.EqualTo(10000));
        Assert.That(c.TieWordEmbeddings, Is.False);
        Assert.That(c.HasQkvBias, Is.False);
    }

    [Test]
    public void Qwen2ConfigLoads()
    {
        var c = ModelConfig.Parse(Qwen2);
        Assert.That((c.VocabSize, c.HiddenSize, c.NumLayers, c.NumHeads, c.NumKeyValueHeads), Is.EqualTo((151936, 896, 24, 14, 2)));
        Assert.That(c.IntermediateSize, Is.EqualTo(4864));
        Assert.That(c.MaxPositions, Is.EqualTo(131072));
        Assert.That(c.NormEpsilon, Is.EqualTo(1e-6));
        Assert.That(c.RopeTheta, Is.EqualTo(1e6));
        Assert.That(c.TieWordEmbeddings, Is.True);
        Assert.That(c.HasQkvBias, Is.True);
        Assert.That(c.HeadDim, Is.EqualTo(64));
    }

    [Test]
    public void DefaultsApplyWhenOptionalFieldsAreAbsent()
    {
        var node = JsonNode.Parse(Llama)!.AsObject();
        node.Remove("num_key_value_heads"); node.Remove("rope_theta"); node.Remove("tie_word_embeddings"); node.Remove("rms_norm_eps");
        var c = ModelConfig.Parse(node.ToJsonString());
        Assert.That(c.NumKeyValueHeads, Is.EqualTo(32), "kv heads default to heads");
        Assert.That(c.RopeTheta, Is.EqualTo(10000));
        Assert.That(c.TieWordEmbeddings, Is.False, "llama default");
        Assert.That(c.NormEpsilon, Is.EqualTo(1e-6));
        var g = JsonNode.Parse(Gpt2)!.AsObject();
        g.Remove("layer_norm_epsilon");
        Assert.That(ModelConfig.Parse(g.ToJsonString()).NormEpsilon, Is.EqualTo(1e-5));
    }

    private static IEnumerable<TestCaseData> InvalidFields()
    {
        TestCaseData Case(string source, string field, JsonNode? value, string mentions) =>
            new TestCaseData(source, field, value?.ToJsonString(), mentions).SetName($"Invalid_{(source == Gpt2 ? "gpt2" : source == Llama ? "llama" : "qwen2")}_{field}_{value?.ToJsonString() ?? "missing"}");
        foreach (string f in new[] { "vocab_size", "n_embd", "n_layer", "n_head", "n_positions" })
        {
            yield return Case(Gpt2, f, 0, f);
            yield return Case(Gpt2, f, null, f);
            yield return Case(Gpt2, f, "12", f);
        }
        yield return Case(Gpt2, "n_inner", -1, "n_inner");
        yield return Case(Gpt2, "n_embd", 770, "n_embd");
        yield return Case(Gpt2, "layer_norm_epsilon", 0, "layer_norm_epsilon");
        foreach (string f in new[] { "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings" })
        {
            yield return Case(Llama, f, -3, f);
            yield return Case(Llama, f, null, f);
        }
        yield return Case(Llama, "num_key_value_heads", 0, "num_key_value_heads");
        yield return Case(Llama, "num_key_value_heads", 5, "num_key_value_heads");
        yield return Case(Llama, "hidden_size", 2050, "hidden_size");
        yield return Case(Llama, "rms_norm_eps", -1e-5, "rms_norm_eps");
        yield return Case(Llama, "rope_theta", 0, "rope_theta");
        yield return Case(Llama, "vocab_size", 1e12, "vocab_size");
        yield return Case(Llama, "vocab_size", 3.5, "vocab_size");
        yield return Case(Qwen2, "tie_word_embeddings", "yes", "tie_word_embeddings");
        yield return Case(Qwen2, "num_attention_heads", 15, "num_attention_heads");
        yield return Case(Qwen2, "model_type", "mistral", "mistral");
        yield return Case(Qwen2, "model_type", null, "model_type");
    }

    [TestCaseSource(nameof(InvalidFields))]
    public void InvalidFieldIsNamed(string source, string field, string? value, string mentions)
    {
        var node = JsonNode.Parse(source)!.AsObject();
        node.Remove(field);
        if (value is not null) node[field] = JsonNode.Parse(value);
        var e = Assert.Throws<CheckpointFormatException>(() => LoadText(node.ToJsonString()));
        TestContext.Out.WriteLine(e!.Message);
        Assert.That(e.Message, Does.Contain(mentions).And.Contain("config.json"));
    }

    [Test]
    public void UnsupportedModelTypeListsTheSupportedOnes()
    {
        var e = Assert.Throws<CheckpointFormatException>(() => ModelConfig.Parse(Llama.Replace("\"llama\"", "\"mistral\"")));
        Assert.That(e!.Message, Does.Contain("mistral").And.Contain("gpt2").And.Contain("llama").And.Contain("qwen2"));
    }

    [Test]
    public void ValidateNamesTheFieldOfAConfigBuiltInCode()
    {
        var c = ModelConfig.Parse(Qwen2);
        var e = Assert.Throws<CheckpointFormatException>(() => (c with { NumKeyValueHeads = 3 }).Validate());
        Assert.That(e!.Message, Does.Contain("num_key_value_heads"));
        e = Assert.Throws<CheckpointFormatException>(() => (c with { HiddenSize = 0 }).Validate());
        Assert.That(e!.Message, Does.Contain("hidden_size"));
        var g = ModelConfig.Parse(Gpt2);
        e = Assert.Throws<CheckpointFormatException>(() => (g with { NumHeads = 7, NumKeyValueHeads = 7 }).Validate());
        Assert.That(e!.Message, Does.Contain("n_embd").And.Contain("n_head"));
    }

    [Test]
    public void BrokenOrMissingFilesAreReported()
    {
        var e = Assert.Throws<CheckpointFormatException>(() => LoadText("{\"model_type\": "));
        Assert.That(e!.Message, Does.Contain("config.json").And.Contain("JSON"));
        Assert.That(Assert.Throws<CheckpointFormatException>(() => LoadText("[]"))!.Message, Does.Contain("not an object"));
        string missing = Path.Combine(_dir, "sub");
        var nf = Assert.Throws<FileNotFoundException>(() => ModelConfig.Load(missing));
        Assert.That(nf!.Message, Does.Contain(missing).And.Contain("config.json"));
    }

    [TestCase(Gpt2)]
    [TestCase(Llama)]
    [TestCase(Qwen2)]
    public void ToJsonRoundTripsAndUsesHuggingFaceFieldNames(string source)
    {
        var c = ModelConfig.Parse(source);
        string json = c.ToJson();
        Assert.That(ModelConfig.Parse(json), Is.EqualTo(c));
        var node = JsonNode.Parse(json)!.AsObject();
        var original = JsonNode.Parse(source)!.AsObject();
        // Every architecture field the hub config states appears with the same value.
        foreach (string key in new[] { "model_type", "vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "hidden_size",
                     "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "max_position_embeddings",
                     "tie_word_embeddings", "architectures" })
        {
            if (original.ContainsKey(key))
                Assert.That(node[key]?.ToJsonString(), Is.EqualTo(original[key]!.ToJsonString()), key);
        }
    }
}

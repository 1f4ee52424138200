using Grpo.Native.Checkpoints;
using NUnit.Framework;

namespace Grpo.Native.Tests.Checkpoints;

/// <summary>generation_config.json: eos ids as a number or a list, optional sampling fields, corrupt files named.</summary>
public sealed class GenerationConfigTests
{
    [Test]
    public void ANumberEosAndNoSamplingFieldsGiveTheLibrarysDefaults()
    {
        // openai-community/gpt2's generation_config.json.
        var config = GenerationConfig.Parse("""{"_from_model_config": true, "bos_token_id": 50256, "eos_token_id": 50256, "transformers_version": "4.26.0"}""");
        Assert.That(config.EosTokenIds, Is.EqualTo(new[] { 50256 }));
        Assert.That((config.Temperature, config.TopP, config.TopK, config.DoSample, config.RepetitionPenalty), Is.EqualTo(((float?)null, (float?)null, (int?)null, (bool?)null, (float?)null)));
        var sampling = config.SamplingDefaults();
        Assert.That((sampling.Temperature, sampling.TopK, sampling.TopP, sampling.MinP), Is.EqualTo((1f, 0, 1f, 0f)));
        Assert.That(config.HasIgnoredRepetitionPenalty, Is.False);
    }

    [Test]
    public void AListOfEosIdsAndEverySamplingFieldAreRead()
    {
        // Modelled on Qwen2.5-Instruct's: two end tokens, sampling settings and a repetition penalty.
        var config = GenerationConfig.Parse("""
            {"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
             "repetition_penalty": 1.05, "temperature": 0.7, "top_k": 20, "top_p": 0.8}
            """);
        Assert.That(config.EosTokenIds, Is.EqualTo(new[] { 151645, 151643 }));
        var sampling = config.SamplingDefaults();
        Assert.That((sampling.Temperature, sampling.TopK, sampling.TopP), Is.EqualTo((0.7f, 20, 0.8f)));
        Assert.That(config.RepetitionPenalty, Is.EqualTo(1.05f));
        Assert.That(config.HasIgnoredRepetitionPenalty, Is.True);
    }

    [Test]
    public void DoSampleFalseIsGreedyWhateverTheTemperature()
    {
        var config = GenerationConfig.Parse("""{"do_sample": false, "temperature": 0.6, "top_p": 0.9}""");
        Assert.That(config.SamplingDefaults().Temperature, Is.EqualTo(0f));
        Assert.That(GenerationConfig.Parse("""{"do_sample": true, "temperature": 0.6}""").SamplingDefaults().Temperature, Is.EqualTo(0.6f));
    }

    [Test]
    public void StopTokensAreTheConfigsEosFirstThenTheTokenizersWithoutRepeats()
    {
        var config = GenerationConfig.Parse("""{"eos_token_id": [7, 3, 7]}""");
        Assert.That(config.EosTokenIds, Is.EqualTo(new[] { 7, 3 }));
        Assert.That(config.StopTokens(tokenizerEos: 5), Is.EqualTo(new[] { 7, 3, 5 }));
        Assert.That(config.StopTokens(tokenizerEos: 3), Is.EqualTo(new[] { 7, 3 }));
        Assert.That(config.StopTokens(tokenizerEos: null), Is.EqualTo(new[] { 7, 3 }));
        Assert.That(new GenerationConfig().StopTokens(tokenizerEos: 5), Is.EqualTo(new[] { 5 }));
        Assert.That(GenerationConfig.Parse("""{"eos_token_id": null, "temperature": null}""").EosTokenIds, Is.Empty);
    }

    [TestCase("{\"eos_token_id\": 50256", "not valid JSON")]
    [TestCase("[1, 2]", "not an object")]
    [TestCase("{\"eos_token_id\": \"</s>\"}", "eos_token_id")]
    [TestCase("{\"eos_token_id\": [2, -1]}", "eos_token_id")]
    [TestCase("{\"eos_token_id\": [2, 1.5]}", "eos_token_id")]
    [TestCase("{\"temperature\": \"hot\"}", "temperature")]
    [TestCase("{\"temperature\": -1}", "temperature")]
    [TestCase("{\"top_p\": 1.5}", "top_p")]
    [TestCase("{\"top_p\": 0}", "top_p")]
    [TestCase("{\"top_k\": 2.5}", "top_k")]
    [TestCase("{\"do_sample\": \"yes\"}", "do_sample")]
    [TestCase("{\"repetition_penalty\": 0}", "repetition_penalty")]
    public void ACorruptFileIsACheckpointFormatErrorNamingTheFileAndField(string json, string expected)
    {
        string folder = Path.Combine(Path.GetTempPath(), "grpo-genconfig-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            File.WriteAllText(Path.Combine(folder, GenerationConfig.FileName), json);
            var e = Assert.Throws<CheckpointFormatException>(() => GenerationConfig.Load(folder))!;
            TestContext.Out.WriteLine(e.Message);
            Assert.That(e.Message, Does.Contain(GenerationConfig.FileName).And.Contain(expected));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void AFolderWithoutTheFileHasNoConfigButANamedMissingFileIsAnError()
    {
        string folder = Path.Combine(Path.GetTempPath(), "grpo-genconfig-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            Assert.That(GenerationConfig.Load(folder), Is.Null);
            Assert.Throws<FileNotFoundException>(() => GenerationConfig.Load(Path.Combine(folder, GenerationConfig.FileName)));
            File.WriteAllText(Path.Combine(folder, GenerationConfig.FileName), """{"eos_token_id": 2}""");
            Assert.That(GenerationConfig.Load(folder)!.EosTokenIds, Is.EqualTo(new[] { 2 }));
            Assert.That(GenerationConfig.Load(Path.Combine(folder, GenerationConfig.FileName))!.EosTokenIds, Is.EqualTo(new[] { 2 }));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

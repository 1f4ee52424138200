using Grpo.Cli;
using Grpo.Native.Checkpoints;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary><c>grpo sample</c> takes its defaults from generation_config.json; explicit flags win.</summary>
public sealed class SampleGenerationConfigTests
{
    private string _model = "";

    [SetUp]
    public void WriteModel() => _model = DatasetTrainTests.TinyGpt2WithTokenizer();

    [TearDown]
    public void Remove() => Directory.Delete(_model, recursive: true);

    private string Sample(params string[] extra)
    {
        var (exit, output, error) = CliRun.Grpo(["sample", "--model", _model, "--prompt-ids", "17,10,17,28", "--max-tokens", "3", "--device", "cpu", .. extra]);
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
        return output;
    }

    private void WriteGenerationConfig(string json) => File.WriteAllText(Path.Combine(_model, GenerationConfig.FileName), json);

    [Test]
    public void DoSampleFalseMakesSamplingGreedyUnlessTemperatureIsGiven()
    {
        string greedy = Sample("--temperature", "0");
        Assert.That(greedy, Does.StartWith("[0] ").And.Contain("(3 tokens, hit --max-tokens"));

        WriteGenerationConfig("""{"do_sample": false, "temperature": 0.7, "repetition_penalty": 1.3}""");
        var (exit, output, error) = CliRun.Grpo("sample", "--model", _model, "--prompt-ids", "17,10,17,28", "--max-tokens", "3", "--device", "cpu", "--count", "2");
        Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
        Assert.That(output, Is.EqualTo(greedy + "[1]" + greedy[3..]), "two greedy completions");
        Assert.That(error, Does.Contain("repetition_penalty 1.3").And.Contain("ignored"));

        string sampled = Sample("--count", "2", "--temperature", "1", "--seed", "1");
        Assert.That(sampled, Is.Not.EqualTo(greedy + "[1]" + greedy[3..]), "--temperature 1 samples");
    }

    [Test]
    public void EosTokenIdStopsCompletionsUnlessStopIdsAreGiven()
    {
        // The second of generation_config's eos ids is the greedy first token: the greedy completion ends right there.
        int first = GreedyFirstToken();

        WriteGenerationConfig($$"""{"eos_token_id": [{{(first + 1) % 50257}}, {{first}}]}""");
        Assert.That(Sample("--temperature", "0"), Does.Contain("(1 tokens,"));
        Assert.That(Sample("--temperature", "0", "--stop-ids", ((first + 1) % 50257).ToString()), Does.Contain("(3 tokens, hit --max-tokens"));
    }

    [Test]
    public void ACorruptGenerationConfigExitsWithTwoNamingTheFile()
    {
        WriteGenerationConfig("""{"top_p": 2}""");
        var (exit, _, error) = CliRun.Grpo("sample", "--model", _model, "--prompt-ids", "17", "--max-tokens", "1", "--device", "cpu");
        Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
        Assert.That(error, Does.Contain(GenerationConfig.FileName).And.Contain("top_p").And.Not.Contain("   at "));
    }

    private int GreedyFirstToken()
    {
        using var device = Grpo.Native.Devices.Device.Create("cpu");
        using var model = Grpo.Native.Models.TransformerModel.Load(device, _model);
        using var generator = new Grpo.Native.Training.RolloutGenerator(model, 1, 4, 1, 4);
        return generator.Generate([[17, 10, 17, 28]], 1, 1, new Grpo.Native.Operations.SamplingOptions { Temperature = 0 }, [], 0).Completions[0][0];
    }
}

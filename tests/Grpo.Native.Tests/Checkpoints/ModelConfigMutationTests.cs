using System.Diagnostics;
using System.Text;
using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Tests.Models;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Checkpoints;

/// <summary>Hostile or broken config.json files: only the documented exception, and no allocation sized by the hostile numbers.</summary>
public sealed class ModelConfigMutationTests
{
    private static readonly string[] Hostile =
        ["0", "-1", "2147483647", "-2147483648", "1e300", "NaN", "null", "true", "\"x\"", "[]", "{}", "3.5", "99999999999999999999"];

    [Test]
    public void ThousandsOfMutatedConfigsOnlyEverThrowCheckpointFormatException()
    {
        var random = TestRandom.Create();
        string[] valid = TinyModels.NamesWithRopeScaling.Select(n => TinyModels.Config(n).ToJson()).ToArray();
        int accepted = 0, rejected = 0;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 4000; i++)
        {
            string json = Mutate(valid[random.Next(valid.Length)], random);
            try
            {
                var config = ModelConfig.Parse(json, "mutated");
                _ = TransformerLayout.For(config); // what loading does next with the parsed sizes
                accepted++;
            }
            catch (CheckpointFormatException)
            {
                rejected++;
            }
        }
        TestContext.Out.WriteLine($"4000 mutated configs: {accepted} accepted, {rejected} rejected with CheckpointFormatException, {clock.ElapsedMilliseconds} ms");
        Assert.That(rejected, Is.GreaterThan(1000), "most mutations should break the config");
    }

    private static string Mutate(string json, Random random)
    {
        var text = new StringBuilder(json);
        int edits = 1 + random.Next(3);
        for (int e = 0; e < edits && text.Length > 0; e++)
        {
            int at = random.Next(text.Length);
            switch (random.Next(4))
            {
                case 0: text.Remove(at, Math.Min(1 + random.Next(8), text.Length - at)); break;                  // delete
                case 1: text.Insert(at, (char)random.Next(32, 127)); break;                                        // insert a character
                case 2: text[at] = (char)random.Next(32, 127); break;                                              // replace a character
                default:                                                                                           // replace a value
                    int colon = text.ToString().IndexOf(':', at);
                    if (colon < 0) break;
                    int end = colon + 1;
                    while (end < text.Length && text[end] is not (',' or '}' or '\n')) end++;
                    text.Remove(colon + 1, end - colon - 1).Insert(colon + 1, " " + Hostile[random.Next(Hostile.Length)]);
                    break;
            }
        }
        return text.ToString();
    }

    [Test]
    public void SizesBeyondOneParameterBufferAreRefusedByTheConfig()
    {
        var huge = TinyModels.Config("llama") with { VocabSize = 1 << 27, HiddenSize = 1 << 13, NumHeads = 8, NumKeyValueHeads = 8 };
        Assert.That(Assert.Throws<CheckpointFormatException>(() => huge.Validate())!.Message, Does.Contain("parameters"));
        var layers = TinyModels.Config("gpt2") with { NumLayers = int.MaxValue };
        Assert.That(Assert.Throws<CheckpointFormatException>(() => layers.Validate())!.Message, Does.Contain("layer count"));
    }

    [Test]
    public void AHugeConfigOverSmallWeightsFailsBeforeAllocating()
    {
        var config = TinyModels.Config("llama");
        string folder = TinyModels.WriteFolder(config, TinyModels.Parameters(config, TestRandom.Create()));
        try
        {
            // A 2^20 × 2^10 embedding would be 4 GiB: loading must reject it from the file's header alone.
            File.WriteAllText(Path.Combine(folder, "config.json"), (config with { VocabSize = 1 << 20, HiddenSize = 1 << 10 }).ToJson());
            long before = GC.GetTotalAllocatedBytes(precise: true);
            var error = Assert.Throws<CheckpointFormatException>(() => TransformerModel.Load(TestDevices.Get(DeviceKind.Cpu), folder));
            long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
            Assert.That(error!.Message, Does.Contain("disagrees"));
            Assert.That(allocated, Is.LessThan(16L << 20), "no allocation sized by the config's numbers");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

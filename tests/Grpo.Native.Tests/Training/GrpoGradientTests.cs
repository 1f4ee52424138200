using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.References;
using Grpo.Native.Tests.Models;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Training;

/// <summary>
/// The parity interface (<c>grpo grad</c>) against the double references end to end: advantages from
/// the rewards, log-probs from the reference transformer, the loss from the reference objective, and
/// every parameter's gradient from central differences of Σ_t (d loss / d logp_t) · logp_t(θ) — the
/// chain rule with the objective's own reference gradient, so ratio-1 (μ = 1) batches are checked too.
/// </summary>
public sealed class GrpoGradientTests
{
    public static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds()
        from c in new[] { ("gpt2", "dapo", false, 0.0), ("llama", "grpo", true, 0.04), ("qwen2", "dr_grpo", true, 0.0) }
        select new TestCaseData(kind, c.Item1, c.Item2, c.Item3, c.Item4);

    [TestCaseSource(nameof(Cases))]
    public void LossAndGradientMatchTheReferences(DeviceKind kind, string family, string lossType, bool withOldLogprobs, double beta)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var config = TinyModels.Config(family);
        var parameters = TinyModels.Parameters(config, random, scale: 0.4);
        var refParameters = TinyModels.Parameters(config, random, scale: 0.4);
        string folder = TinyModels.WriteFolder(config, parameters);
        string refFolder = TinyModels.WriteFolder(config, refParameters);
        try
        {
            const int g = 3;
            int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 3, 5);
            int[][] completions = TinyModels.Sequences(random, config.VocabSize, 4, 1, 6, 2, 6, 3);
            float[] rewards = [0.5f, 1f, float.NaN, 0.2f, 0.9f, 0.4f];
            const float temperature = 0.9f;
            float[][]? old = withOldLogprobs
                ? completions.Select(c => c.Select(_ => (float)(-2.5 + random.NextDouble())).ToArray()).ToArray()
                : null;
            string json = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["group_size"] = g, ["prompts"] = prompts, ["completions"] = completions,
                ["rewards"] = rewards.Select(r => float.IsNaN(r) ? (float?)null : r).ToArray(),
                ["old_logprobs"] = old, ["loss_type"] = lossType, ["beta"] = beta, ["epsilon_low"] = 0.2, ["epsilon_high"] = 0.28,
                ["scale_rewards"] = "group", ["temperature"] = temperature, ["max_completion_length"] = 8,
            });
            var batch = GrpoGradBatch.Parse(json);
            using var policy = TransformerModel.Load(device, folder);
            using var reference = TransformerModel.Load(device, refFolder);
            var result = GrpoGradient.Compute(policy, beta > 0 ? reference : null, batch);

            int n = completions.Length, t = completions.Max(c => c.Length);
            var advantages = AdvantageReference.Compute(rewards.Select(r => (double)r).ToArray(), [1.0], g, "group").Advantages;
            Compare.WorstRelativeError("advantages", advantages, result.Advantages);

            double[] LogProbGrid(Dictionary<string, double[]> p)
            {
                var grid = new double[n * t];
                for (int i = 0; i < n; i++)
                {
                    int[] sequence = [.. prompts[i / g], .. completions[i]];
                    int[] targets = sequence.Skip(1).Append(0).ToArray();
                    var lp = TransformerReference.TokenLogProbs(config, p, sequence, targets, temperature);
                    for (int s = 0; s < completions[i].Length; s++) grid[i * t + s] = lp[prompts[i / g].Length - 1 + s];
                }
                return grid;
            }
            double[] logp = LogProbGrid(parameters);
            double[] mask = Enumerable.Range(0, n * t).Select(k => k % t < completions[k / t].Length ? 1.0 : 0.0).ToArray();
            double[]? oldGrid = old is null ? null : Enumerable.Range(0, n * t).Select(k => mask[k] > 0 ? (double)old[k / t][k % t] : 0).ToArray();
            double[]? refGrid = beta > 0 ? LogProbGrid(refParameters) : null;
            var objective = GrpoObjectiveReference.Compute(logp, oldGrid, refGrid, advantages, mask, n, t,
                new GrpoReferenceOptions(lossType, 0.2, 0.28, beta, false, 8));
            Compare.WorstRelativeError("logprobs (padding zeroed)", logp, result.Logprobs);
            Compare.WorstRelativeError("loss", objective.Loss, result.Loss);

            // d loss / d θ = Σ_t g_t · d logp_t / d θ, with g the reference objective's gradient: central differences of the surrogate.
            double Surrogate(Dictionary<string, double[]> p)
            {
                double[] lp = LogProbGrid(p);
                double sum = 0;
                for (int k = 0; k < lp.Length; k++) sum += objective.Gradient[k] * lp[k];
                return sum;
            }
            var byName = policy.ToHuggingFace(result.Gradient).ToDictionary(x => x.name, x => x.data.ToArray());
            var expected = new List<double>();
            var actual = new List<float>();
            const double h = 1e-5;
            foreach (var (name, _) in TransformerReference.Layout(config))
            {
                double[] values = parameters[name];
                foreach (int i in Enumerable.Range(0, 4).Select(_ => random.Next(values.Length)))
                {
                    double original = values[i];
                    values[i] = original + h;
                    double plus = Surrogate(parameters);
                    values[i] = original - h;
                    double minus = Surrogate(parameters);
                    values[i] = original;
                    expected.Add((plus - minus) / (2 * h));
                    actual.Add(byName[name][i]);
                }
            }
            // The model's gradient bound (TransformerModelTests: cancelling sums in the gather and attention).
            Compare.WorstRelativeError($"{family} {lossType} gradient ({expected.Count} coordinates)", expected.ToArray(), actual.ToArray(), 4e-3);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
            Directory.Delete(refFolder, recursive: true);
        }
    }

    [TestCase("{\"group_size\": 1, \"prompts\": [[1]], \"completions\": [[2]], \"rewards\": [1]}", "group_size")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2]], \"rewards\": [1, 2]}", "completions has 1")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1]}", "rewards has 1")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"loss_type\": \"ppo\"}", "loss_type 'ppo'")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"scale_rewards\": \"max\"}", "scale_rewards 'max'")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"old_logprobs\": [[0.1], [\"x\"]]}", "old_logprobs[1][0]")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"loss_type\": \"dr_grpo\"}", "max_completion_length")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"typo\": 1}", "unknown field 'typo'")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2]", "not valid JSON")]
    public void BadBatchesAreNamed(string json, string expected) =>
        Assert.That(Assert.Throws<FormatException>(() => GrpoGradBatch.Parse(json))!.Message, Does.Contain(expected));
}

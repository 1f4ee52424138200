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
    /// <summary>
    /// The newer options, one case each through the whole model: extra batch-file fields, the same for the
    /// reference, and what must be active (asserted). Their old log-probs are planted rather than drawn:
    /// token k (row-major over N × T) gets ratio <see cref="PlantedRatios"/>[k mod 7] times 1 ± 0.02, so
    /// every region of the loss is reached and no ratio comes within 0.04 of a kink (0.8, 1.25, 1.28,
    /// δ = 1.5, c = 2) where fp32 and double could take different branches.
    /// </summary>
    private static readonly Dictionary<string, (Dictionary<string, object> Fields, Func<GrpoReferenceOptions, GrpoReferenceOptions> Reference)> Variants = new()
    {
        [""] = (new(), o => o),
        ["cispo, k1"] = (new() { ["epsilon_high"] = 1.25, ["kl_estimator"] = "k1" }, o => o with { EpsilonHigh = 1.25, KlEstimator = "k1" }),
        ["sapo, temperatures, k2"] = (new() { ["sapo_temperature_pos"] = 1.5, ["sapo_temperature_neg"] = 0.7, ["kl_estimator"] = "k2" },
            o => o with { SapoTemperaturePositive = 1.5, SapoTemperatureNegative = 0.7, KlEstimator = "k2" }),
        ["delta"] = (new() { ["delta"] = 1.5 }, o => o with { Delta = 1.5 }),
        ["dual clip"] = (new() { ["dual_clip"] = 2.0 }, o => o with { DualClip = 2.0 }),
    };

    private static readonly double[] PlantedRatios = [0.6, 0.9, 1.1, 1.35, 1.7, 2.2, 2.8];

    public static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds()
        from c in new[]
        {
            ("gpt2", "dapo", false, 0.0, ""), ("llama", "grpo", true, 0.04, ""), ("qwen2", "dr_grpo", true, 0.0, ""),
            ("gpt2", "cispo", true, 0.04, "cispo, k1"), ("llama", "sapo", true, 0.04, "sapo, temperatures, k2"),
            ("qwen2", "dapo", true, 0.0, "delta"), ("gpt2", "bnpo", true, 0.04, "dual clip"),
        }
        select new TestCaseData(kind, c.Item1, c.Item2, c.Item3, c.Item4, c.Item5);

    [TestCaseSource(nameof(Cases))]
    public void LossAndGradientMatchTheReferences(DeviceKind kind, string family, string lossType, bool withOldLogprobs, double beta,
        string variant)
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
            int n = completions.Length, t = completions.Max(c => c.Length);
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
            var (fields, referenceOptions) = Variants[variant];
            float[][]? old = !withOldLogprobs ? null
                : variant == "" ? completions.Select(c => c.Select(_ => (float)(-2.5 + random.NextDouble())).ToArray()).ToArray()
                : completions.Select((c, i) => c.Select((_, s) =>
                    (float)(logp[i * t + s] - Math.Log(PlantedRatios[(i * t + s) % PlantedRatios.Length] * (1 + 0.02 * (2 * random.NextDouble() - 1)))))
                    .ToArray()).ToArray();
            var batchFields = new Dictionary<string, object?>
            {
                ["group_size"] = g, ["prompts"] = prompts, ["completions"] = completions,
                ["rewards"] = rewards.Select(r => float.IsNaN(r) ? (float?)null : r).ToArray(),
                ["old_logprobs"] = old, ["loss_type"] = lossType, ["beta"] = beta, ["epsilon_low"] = 0.2, ["epsilon_high"] = 0.28,
                ["scale_rewards"] = "group", ["temperature"] = temperature, ["max_completion_length"] = 8,
            };
            foreach (var (field, value) in fields) batchFields[field] = value;
            var batch = GrpoGradBatch.Parse(System.Text.Json.JsonSerializer.Serialize(batchFields));
            using var policy = TransformerModel.Load(device, folder);
            using var reference = TransformerModel.Load(device, refFolder);
            var result = GrpoGradient.Compute(policy, beta > 0 ? reference : null, batch);

            var advantages = AdvantageReference.Compute(rewards.Select(r => (double)r).ToArray(), [1.0], g, "group").Advantages;
            Compare.WorstRelativeError("advantages", advantages, result.Advantages);

            double[] mask = Enumerable.Range(0, n * t).Select(k => k % t < completions[k / t].Length ? 1.0 : 0.0).ToArray();
            double[]? oldGrid = old is null ? null : Enumerable.Range(0, n * t).Select(k => mask[k] > 0 ? (double)old[k / t][k % t] : 0).ToArray();
            double[]? refGrid = beta > 0 ? LogProbGrid(refParameters) : null;
            var objective = GrpoObjectiveReference.Compute(logp, oldGrid, refGrid, advantages, mask, n, t,
                referenceOptions(new GrpoReferenceOptions(lossType, 0.2, 0.28, beta, false, 8)));
            AssertActive(variant, objective, logp, oldGrid, advantages, mask, t);
            Compare.WorstRelativeError("logprobs (padding zeroed)", logp, result.Logprobs);
            // The loss can cancel (CISPO's −w·A·logp terms, signed advantages), so it is judged against a bound from its
            // inputs: the model's fp32 log-probs differ from the reference's by Δ_t (compared above), which moves the loss
            // by at most Σ_t |g_t|·Δ_t to first order (twice that covers the second order, O(Δ²) with Δ ≤ 1e-4), and the
            // fp32 objective adds at most 1024u of its term scale (GrpoObjectiveTests.VariantBound).
            double lossBound = 2 * Enumerable.Range(0, n * t).Sum(k => Math.Abs(objective.Gradient[k] * (result.Logprobs[k] - logp[k])))
                               + 1024.0 / (1 << 24) * objective.LossTermScale;
            Compare.WorstScaledError("loss (absolute error / its bound)", [objective.Loss], [lossBound], [result.Loss], 1.0);

            // d loss / d θ = Σ_t g_t · d logp_t / d θ, with g the reference objective's gradient: checked along random directions
            // against central differences of the reference's log-probs (DirectionalGradientCheck). The model's backward was fed
            // the fp32 objective's gradient at the model's own fp32 log-probs (and the reference model's), not g: it differs
            // from the reference objective at those same inputs by at most 1024u of each token's gradient scale
            // (GrpoObjectiveTests.VariantBound), and that objective differs from g by what moving the inputs does, computed here.
            double[] policyLogp = TestRandom.ToDouble(result.Logprobs);
            double[]? referenceLogp = null;
            if (beta > 0)
            {
                batchFields["beta"] = 0.0; // the reference's own fp32 log-probs, through the same forward
                var referenceRun = GrpoGradient.Compute(reference, null, GrpoGradBatch.Parse(System.Text.Json.JsonSerializer.Serialize(batchFields)));
                referenceLogp = TestRandom.ToDouble(referenceRun.Logprobs);
            }
            var atModelInputs = GrpoObjectiveReference.Compute(policyLogp, oldGrid, referenceLogp, advantages, mask, n, t,
                referenceOptions(new GrpoReferenceOptions(lossType, 0.2, 0.28, beta, false, 8)));
            double[] weightErrors = Enumerable.Range(0, n * t).Select(k => Math.Abs(atModelInputs.Gradient[k] - objective.Gradient[k])
                + 1024.0 / (1 << 24) * atModelInputs.GradientScale![k]).ToArray();
            var byName = policy.ToHuggingFace(result.Gradient).ToDictionary(x => x.name, x => x.data.ToArray());
            // The model's own bound is the one derived for the same tiny models (weights of scale ≤ 0.5) in TransformerModelTests.
            DirectionalGradientCheck.Run($"{family} {lossType} gradient", config, parameters, byName, LogProbGrid, objective.Gradient,
                TransformerModelTests.GradientTolerance,
                weightErrors, random);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
            Directory.Delete(refFolder, recursive: true);
        }
    }

    /// <summary>What each new option must have changed in its case (the old log-probs are planted so that it does).</summary>
    private static void AssertActive(string variant, GrpoReferenceResult objective, double[] logp, double[]? old, double[] advantages,
        double[] mask, int t)
    {
        int Count(Func<double, double, bool> where) => Enumerable.Range(0, logp.Length)
            .Count(k => mask[k] == 1 && where(Math.Exp(logp[k] - old![k]), advantages[k / t]));
        switch (variant)
        {
            case "cispo, k1":
                Assert.That(objective.CispoClipRatio, Is.GreaterThan(0), "CISPO weights capped at epsilon_high");
                break;
            case "sapo, temperatures, k2":
                Assert.That(Count((r, a) => a > 0 && r != 1), Is.GreaterThan(0), "tokens gated with sapo_temperature_pos");
                Assert.That(Count((r, a) => a < 0 && r != 1), Is.GreaterThan(0), "tokens gated with sapo_temperature_neg");
                break;
            case "delta":
                Assert.That(Count((r, a) => a < 0 && r > 1.5), Is.GreaterThan(0), "negative-advantage tokens capped by delta");
                break;
            case "dual clip":
                Assert.That(objective.DualClipRatio, Is.GreaterThan(0), "tokens decided by the dual clip");
                break;
        }
    }

    /// <summary>
    /// micro_batch_completions composes the micro-batches' losses the TRL way: three micro-batches of one group each,
    /// of different token counts; the result must be Σ_mb share_mb · (that micro-batch alone), with share = its tokens /
    /// all tokens for dapo and cispo (TRL's num_items_in_batch) and 1/3 for the others (TRL's division by the
    /// accumulation steps). Each side carries the model gradient's own fp32 rounding, within 5.5e-4 normwise of the exact
    /// gradient (TransformerModelTests derives it); the two sides round differently only in where the share is applied,
    /// so they differ by at most 1.1e-3 normwise. (Element by element, a cancelled element read 5.2e-4 against an
    /// element-relative 1e-3 in the stress run: that measure has no bound.)
    /// </summary>
    [TestCase("dapo")]
    [TestCase("bnpo")]
    [TestCase("grpo")]
    [TestCase("dr_grpo")]
    [TestCase("cispo")]
    [TestCase("sapo")]
    public void MicroBatchesComposeAsTrlDoes(string lossType)
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config("qwen2");
        string folder = TinyModels.WriteFolder(config, TinyModels.Parameters(config, random, scale: 0.4));
        try
        {
            int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 3, 5, 2);
            int[][] completions = TinyModels.Sequences(random, config.VocabSize, 1, 2, 6, 5, 3, 2); // 3, 11 and 5 tokens per micro-batch
            float[] rewards = [0.1f, 0.9f, 0.7f, 0.2f, 0.4f, 0.5f];
            float[][] old = completions.Select(c => c.Select(_ => (float)(-3.0 + random.NextDouble())).ToArray()).ToArray();
            string Json(int[][] p, int[][] c, float[] r, float[][] o, int? micro) => System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["group_size"] = 2, ["prompts"] = p, ["completions"] = c, ["rewards"] = r, ["old_logprobs"] = o, ["loss_type"] = lossType,
                ["epsilon_high"] = lossType == "cispo" ? 1.1 : 0.28, ["max_completion_length"] = 8, ["micro_batch_completions"] = micro,
            });
            using var policy = TransformerModel.Load(device, folder);
            var whole = GrpoGradient.Compute(policy, null, GrpoGradBatch.Parse(Json(prompts, completions, rewards, old, 2)));

            int total = completions.Sum(c => c.Length);
            var expected = new double[whole.Gradient.Length];
            double expectedLoss = 0, lossScale = 0;
            for (int j = 0; j < 3; j++)
            {
                var part = GrpoGradient.Compute(policy, null, GrpoGradBatch.Parse(Json([prompts[j]], completions[(2 * j)..(2 * j + 2)],
                    rewards[(2 * j)..(2 * j + 2)], old[(2 * j)..(2 * j + 2)], null)));
                int tokens = completions[2 * j].Length + completions[2 * j + 1].Length;
                double share = lossType is "dapo" or "cispo" ? (double)tokens / total : 1.0 / 3;
                for (int k = 0; k < expected.Length; k++) expected[k] += share * part.Gradient[k];
                expectedLoss += share * part.Loss;
                lossScale += Math.Abs(share * part.Loss);
            }
            // Both sides add the same fp32 micro-batch losses, in float and in double: three roundings of the terms' sizes.
            TestContext.Out.WriteLine($"loss {whole.Loss:G9} vs {expectedLoss:G9} (term scale {lossScale:G3})");
            Assert.That(Math.Abs(whole.Loss - expectedLoss), Is.LessThanOrEqualTo(4.0 / (1 << 24) * lossScale));
            Compare.NormwiseRelativeError($"{lossType}: gradient of three micro-batches", expected, whole.Gradient, 1.1e-3);

            // bnpo is not dapo once micro-batches hold different numbers of tokens (TRL normalises each by its own).
            if (lossType == "bnpo")
            {
                var dapo = GrpoGradient.Compute(policy, null, GrpoGradBatch.Parse(Json(prompts, completions, rewards, old, 2).Replace("\"bnpo\"", "\"dapo\"")));
                Assert.That(Math.Abs(dapo.Loss - whole.Loss), Is.GreaterThan(1e-3 * Math.Abs(dapo.Loss)), "bnpo and dapo differ here");
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// mask_truncated_completions: a completion holding none of the eos ids leaves the loss (TRL zeroes its mask), while
    /// advantages are still computed over every completion. The masked loss must equal the reference objective with those
    /// rows' masks zeroed, fed the same log-probs; fp32 against double over ≤ 13 terms: within 1e-5 of the terms' scale.
    /// </summary>
    [TestCase("dapo")]
    [TestCase("grpo")]
    public void TruncatedCompletionsLeaveTheLossWhenMasked(string lossType)
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config("llama");
        string folder = TinyModels.WriteFolder(config, TinyModels.Parameters(config, random, scale: 0.4));
        try
        {
            const int eos = 7;
            int[][] prompts = [[1, 2, 3], [4, 5]];
            int[][] completions = [[3, 8, eos], [9, 9, 9, 9], [eos], [2, 4, 6, 8, 10]]; // 1 and 3 have no eos: truncated
            float[] rewards = [0.2f, 0.9f, 0.6f, 0.1f];
            float[][] old = completions.Select(c => c.Select(_ => (float)(-3.0 + random.NextDouble())).ToArray()).ToArray();
            string Json(bool mask) => System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["group_size"] = 2, ["prompts"] = prompts, ["completions"] = completions, ["rewards"] = rewards, ["old_logprobs"] = old,
                ["loss_type"] = lossType, ["mask_truncated_completions"] = mask, ["eos_token_id"] = new[] { eos, 99 },
            });
            using var policy = TransformerModel.Load(device, folder);
            var plain = GrpoGradient.Compute(policy, null, GrpoGradBatch.Parse(Json(false)));
            var masked = GrpoGradient.Compute(policy, null, GrpoGradBatch.Parse(Json(true)));
            Assert.That(GrpoGradBatch.Parse(Json(true)).Truncated(), Is.EqualTo(new[] { false, true, false, true }));
            Assert.That(masked.Advantages, Is.EqualTo(plain.Advantages), "advantages over every completion, truncated ones included");

            int n = completions.Length, t = plain.CompletionSlots;
            double[] logp = Array.ConvertAll(plain.Logprobs, v => (double)v);
            double[] mask = Enumerable.Range(0, n * t).Select(k => k % t < completions[k / t].Length && (k / t) % 2 == 0 ? 1.0 : 0.0).ToArray();
            double[] oldGrid = Enumerable.Range(0, n * t).Select(k => k % t < completions[k / t].Length ? (double)old[k / t][k % t] : 0).ToArray();
            var expected = GrpoObjectiveReference.Compute(logp, oldGrid, null, Array.ConvertAll(plain.Advantages, v => (double)v), mask, n, t,
                new GrpoReferenceOptions(lossType, 0.2, 0.2, 0, false, 8));
            TestContext.Out.WriteLine($"masked loss {masked.Loss:G9} vs reference {expected.Loss:G9}; unmasked {plain.Loss:G9}");
            Assert.That(Math.Abs(masked.Loss - expected.Loss), Is.LessThanOrEqualTo(1e-5 * expected.AbsoluteLossScale + 1e-12));
            Assert.That(masked.Gradient, Is.Not.EqualTo(plain.Gradient), "the truncated completions' gradient is gone");

            var error = Assert.Throws<FormatException>(() => GrpoGradBatch.Parse(Json(true).Replace(",\"eos_token_id\":[7,99]", "")))!;
            Assert.That(error.Message, Does.Contain("eos_token_id"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
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
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"kl_estimator\": \"k4\"}", "kl_estimator 'k4' is unknown")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"kl_estimator\": 3}", "'kl_estimator' must be a string")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"delta\": 1.0}", "delta is out of range")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"delta\": \"4\"}", "'delta' must be a number or null")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"dual_clip\": 0.5}", "dual_clip is out of range")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"sapo_temperature_neg\": -1}", "sapo_temperature_neg is out of range")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"sapo_temperature_pos\": 0}", "sapo_temperature_pos is out of range")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"top_entropy_quantile\": 1.5}", "top_entropy_quantile is out of range")]
    [TestCase("{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2], \"entropy_coef\": \"0.1\"}", "'entropy_coef' must be a number")]
    public void BadBatchesAreNamed(string json, string expected)
    {
        var error = Assert.Throws<FormatException>(() => GrpoGradBatch.Parse(json))!;
        TestContext.Out.WriteLine(error.Message);
        Assert.That(error.Message, Does.Contain(expected));
    }

    [Test]
    public void NewObjectiveFieldsAreRead()
    {
        const string head = "{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], \"rewards\": [1, 2]";
        var defaults = GrpoGradBatch.Parse(head + "}").Objective;
        Assert.That(defaults, Is.EqualTo(new Grpo.Native.Operations.GrpoObjectiveOptions { EpsilonHigh = 0.2f }), "TRL's defaults");
        var cispo = GrpoGradBatch.Parse(head + ", \"loss_type\": \"cispo\", \"epsilon_high\": 5, \"kl_estimator\": \"k1\"}").Objective;
        Assert.That(cispo.LossType, Is.EqualTo(Grpo.Native.Operations.LossType.Cispo));
        Assert.That(cispo.EffectiveEpsilonHigh, Is.EqualTo(5f));
        Assert.That(cispo.KlEstimator, Is.EqualTo(Grpo.Native.Operations.KlEstimator.K1));
        var sapo = GrpoGradBatch.Parse(head + ", \"loss_type\": \"sapo\", \"sapo_temperature_pos\": 2, \"sapo_temperature_neg\": 0.5, \"kl_estimator\": \"k2\"}").Objective;
        Assert.That((sapo.LossType, sapo.SapoTemperaturePositive, sapo.SapoTemperatureNegative, sapo.KlEstimator),
            Is.EqualTo((Grpo.Native.Operations.LossType.Sapo, 2f, 0.5f, Grpo.Native.Operations.KlEstimator.K2)));
        var clipped = GrpoGradBatch.Parse(head + ", \"delta\": 4, \"dual_clip\": 3, \"kl_estimator\": \"k3\"}").Objective;
        Assert.That((clipped.Delta, clipped.DualClip, clipped.KlEstimator), Is.EqualTo(((float?)4f, (float?)3f, Grpo.Native.Operations.KlEstimator.K3)));
        var entropy = GrpoGradBatch.Parse(head + ", \"entropy_coef\": 0.01, \"top_entropy_quantile\": 0.2}").Objective;
        Assert.That((entropy.EntropyCoefficient, entropy.TopEntropyQuantile), Is.EqualTo((0.01f, 0.2f)));
        var off = GrpoGradBatch.Parse(head + ", \"delta\": null, \"dual_clip\": null}").Objective;
        Assert.That((off.Delta, off.DualClip), Is.EqualTo(((float?)null, (float?)null)));
    }
}

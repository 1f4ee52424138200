using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Models;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// TRL's multi_objective_aggregation: normalize_then_sum on every backend against the double reference on scores with
/// every kind of gap (a lone score in a group, a flat group, an unscored completion), and grpo grad's
/// rewards_per_function with reward_weights.
/// </summary>
public sealed class MultiObjectiveAggregationTests
{
    private const int G = 4, Groups = 5, F = 3, N = G * Groups;

    /// <summary>(N, F) scores: normal draws, then planted gaps; each is asserted to be there.</summary>
    private static float[] Scores(Random random)
    {
        float[] x = TestRandom.Normal(random, N * F);
        for (int i = 0; i < G; i++) x[i * F + 0] = 0.5f;                           // group 0, function 0: flat (std 0, z 0)
        for (int i = G + 1; i < 2 * G; i++) x[i * F + 1] = float.NaN;             // group 1, function 1: a lone score (TRL: NaN std)
        for (int j = 0; j < F; j++) x[(2 * G + 1) * F + j] = float.NaN;           // completion 9: no score at all
        x[(3 * G + 2) * F + 2] = float.NaN;                                       // one missing score
        return x;
    }

    /// <summary>
    /// Tolerance: each z-score is an fp32 mean and unbiased std over ≤ G = 4 values (≤ 10u relative to the z-score scale),
    /// the weighted sum adds F = 3 terms, and the batch stage repeats the mean and std over N = 20 values (≤ 30u); with the
    /// divisions, ≤ 100u ≈ 6e-6 of the largest advantage, judged at 2e-5 against the largest value (Compare's row measure
    /// over the whole vector), as derived: an element-relative measure failed on an advantage that cancelled to 1.1e-3
    /// (seed 1087862792, 3.4e-5 "relative").
    /// </summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void NormalizeThenSumMatchesTheReference(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] scores = Scores(random);
        float[] weights = [1f, (float)(0.5 + random.NextDouble()), -0.3f];
        var expected = AdvantageReference.NormalizeThenSum(TestRandom.ToDouble(scores), TestRandom.ToDouble(weights), G);

        using var perFunction = device.FromArray<float>(scores, N, F);
        using var rewards = Poison.Fill(device.Allocate<float>(N));
        using var advantages = Poison.Fill(device.Allocate<float>(N));
        using var groupMean = Poison.Fill(device.Allocate<float>(Groups));
        using var groupStd = Poison.Fill(device.Allocate<float>(Groups));
        foreach (var scaling in new[] { RewardScaling.Group, RewardScaling.Batch, RewardScaling.None }) // TRL's branch ignores it
        {
            var stats = RewardAggregation.ComputeAdvantages(device, perFunction, weights, G, scaling, MultiObjectiveAggregation.NormalizeThenSum,
                rewards, advantages, groupMean, groupStd);
            Compare.WorstRowRelativeError($"{scaling}: advantages", expected.Advantages, advantages.ToArray(), N, 2e-5);
            float[] r = rewards.ToArray();
            Assert.That(float.IsNaN(r[2 * G + 1]), "the unscored completion stays unscored");
            Compare.WorstRowRelativeError($"{scaling}: summed z-scores", expected.Rewards.Where(v => !double.IsNaN(v)).ToArray(),
                r.Where(v => !float.IsNaN(v)).ToArray(), N - 1, 2e-5);
            Compare.WorstRelativeError($"{scaling}: batch std", expected.BatchStd, stats.BatchStd, 2e-5);
            Assert.That(groupStd.ToArray(), Is.All.EqualTo(stats.BatchStd), "every group reports the one std the advantages were divided by");
            Assert.That(stats.MissingRewards, Is.EqualTo(1));
            Assert.That(stats.FracRewardZeroStd, Is.EqualTo(0));
            Assert.That(advantages.ToArray()[2 * G + 1], Is.EqualTo(0f), "an unscored completion gets advantage 0");
        }
    }

    /// <summary>sum_then_normalize is the operation itself; an unknown aggregation is refused by name.</summary>
    [Test]
    public void SumThenNormalizeIsTheOperationAndUnknownIsRefused()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        float[] scores = Scores(TestRandom.Create());
        float[] weights = [1f, 2f, 0.5f];
        using var perFunction = device.FromArray<float>(scores, N, F);
        using var rewards = device.Allocate<float>(N);
        using var advantages = device.Allocate<float>(N);
        using var groupMean = device.Allocate<float>(Groups);
        using var groupStd = device.Allocate<float>(Groups);
        RewardAggregation.ComputeAdvantages(device, perFunction, weights, G, RewardScaling.Group, MultiObjectiveAggregation.SumThenNormalize,
            rewards, advantages, groupMean, groupStd);
        var expected = AdvantageReference.Compute(TestRandom.ToDouble(scores), TestRandom.ToDouble(weights), G, "group");
        // Each group's advantages have Σ a² = G − 1, so the largest is ≥ √(3/4): errors of ~30u of it, judged as above.
        Compare.WorstRowRelativeError("sum_then_normalize advantages", expected.Advantages, advantages.ToArray(), N, 2e-5);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => RewardAggregation.ComputeAdvantages(device, perFunction, weights, G,
            RewardScaling.Group, (MultiObjectiveAggregation)5, rewards, advantages, groupMean, groupStd))!;
        Assert.That(error.ParamName, Is.EqualTo("aggregation"));
    }

    /// <summary>
    /// grpo grad with rewards_per_function and reward_weights (a lone score, an unscored completion): its advantages are
    /// the chosen aggregation's, against the reference, for both aggregations. Tolerance as above.
    /// </summary>
    [Test]
    public void GradBatchReadsRewardsPerFunction()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config("llama");
        string folder = TinyModels.WriteFolder(config, TinyModels.Parameters(config, random, scale: 0.4));
        try
        {
            int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 3, 4);
            int[][] completions = TinyModels.Sequences(random, config.VocabSize, 2, 3, 1, 4, 2, 3, 3, 2);
            double?[][] perFunction =
            [
                [1, 0.5], [0, null], [0.25, 1], [1, 1],
                [null, null], [0.5, 0], [1, 0.75], [0, 0.25],
            ];
            double[] weights = [1.0, 0.5];
            string Json(string aggregation) => System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["group_size"] = 4, ["prompts"] = prompts, ["completions"] = completions, ["rewards_per_function"] = perFunction,
                ["reward_weights"] = weights, ["multi_objective_aggregation"] = aggregation,
            });
            using var policy = TransformerModel.Load(device, folder);
            var flat = perFunction.SelectMany(row => row.Select(v => v ?? double.NaN)).ToArray();

            var normalized = GrpoGradient.Compute(policy, null, GrpoGradBatch.Parse(Json("normalize_then_sum")));
            Compare.WorstRelativeError("normalize_then_sum advantages", AdvantageReference.NormalizeThenSum(flat, weights, 4).Advantages,
                normalized.Advantages, 2e-5);

            var summed = GrpoGradient.Compute(policy, null, GrpoGradBatch.Parse(Json("sum_then_normalize")));
            Compare.WorstRelativeError("sum_then_normalize advantages", AdvantageReference.Compute(flat, weights, 4, "group").Advantages,
                summed.Advantages, 2e-5);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The trainer's options carry the new fields to the objective, and refuse out-of-range ones by name.</summary>
    [Test]
    public void TrainerOptionsCarryTheNewFields()
    {
        var options = new GrpoTrainerOptions
        {
            EntropyCoefficient = 0.01f, TopEntropyQuantile = 0.2f, MultiObjectiveAggregation = MultiObjectiveAggregation.NormalizeThenSum,
        };
        options.Validate();
        Assert.That((options.Objective.EntropyCoefficient, options.Objective.TopEntropyQuantile), Is.EqualTo((0.01f, 0.2f)));
        var aggregation = Assert.Catch<ArgumentException>(() => (options with { MultiObjectiveAggregation = (MultiObjectiveAggregation)9 }).Validate())!;
        Assert.That(aggregation.ParamName, Is.EqualTo(nameof(GrpoTrainerOptions.MultiObjectiveAggregation)));
        var quantile = Assert.Catch<ArgumentException>(() => (options with { TopEntropyQuantile = 2f }).Validate())!;
        Assert.That(quantile.ParamName, Is.EqualTo(nameof(GrpoTrainerOptions.TopEntropyQuantile)));
    }

    [TestCase("\"rewards\": [1, 2], \"rewards_per_function\": [[1], [2]]", "both rewards and rewards_per_function")]
    [TestCase("\"rewards_per_function\": [[1, 2], [2]]", "rewards_per_function[1] has 1 scores")]
    [TestCase("\"rewards_per_function\": [[1, 2], [2, 3]], \"reward_weights\": [1]", "reward_weights must hold 2 finite numbers")]
    [TestCase("\"rewards\": [1, 2], \"reward_weights\": [1]", "reward_weights is given with rewards")]
    [TestCase("\"rewards\": [1, 2], \"multi_objective_aggregation\": \"mean\"", "multi_objective_aggregation 'mean' is unknown")]
    [TestCase("\"rewards_per_function\": [[1, 2]]", "rewards_per_function has 1 lists")]
    public void BadMultiObjectiveBatchesAreNamed(string fields, string expected)
    {
        string json = "{\"group_size\": 2, \"prompts\": [[1]], \"completions\": [[2], [3]], " + fields + "}";
        var error = Assert.Throws<FormatException>(() => GrpoGradBatch.Parse(json))!;
        TestContext.Out.WriteLine(error.Message);
        Assert.That(error.Message, Does.Contain(expected));
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>ComputeAdvantages on every backend against the double-precision reference.</summary>
public sealed class AdvantageTests
{
    private static readonly RewardScaling[] Scalings = [RewardScaling.Group, RewardScaling.Batch, RewardScaling.None];

    /// <summary>(N, F, G) shapes: F in {1, 3}, G in {2, 4, 8} and an odd G.</summary>
    private static readonly (int N, int F, int G)[] Shapes = [(8, 1, 2), (24, 3, 4), (64, 3, 8), (40, 1, 8), (15, 3, 3)];

    private static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds()
        from shape in Shapes
        select new TestCaseData(kind, shape.N, shape.F, shape.G).SetArgDisplayNames(kind.ToString(), $"N={shape.N}", $"F={shape.F}", $"G={shape.G}");

    /// <summary>The outputs and statistics of one run.</summary>
    private sealed record Run(float[] Rewards, float[] Advantages, float[] GroupMean, float[] GroupStd, AdvantageStatistics Statistics);

    private static Run Compute(Device device, float[] rewardsPerFunction, int n, int f, float[] weights, int g, RewardScaling scaling)
    {
        using var input = device.FromArray<float>(rewardsPerFunction, n, f);   // (N, F)
        using var rewards = Poison.Fill(device.Allocate<float>(n));             // (N)
        using var advantages = Poison.Fill(device.Allocate<float>(n));          // (N)
        using var groupMean = Poison.Fill(device.Allocate<float>(n / g));       // (N/G)
        using var groupStd = Poison.Fill(device.Allocate<float>(n / g));        // (N/G)
        var statistics = device.Operations.ComputeAdvantages(input, weights, g, scaling, rewards, advantages, groupMean, groupStd);
        return new Run(rewards.ToArray(), advantages.ToArray(), groupMean.ToArray(), groupStd.ToArray(), statistics);
    }

    private static string ReferenceName(RewardScaling scaling) => scaling.ToString().ToLowerInvariant();

    /// <summary>Checks one run against the reference, and that flat groups and unscored completions get exact zeros.</summary>
    private static void CheckAgainstReference(Run run, float[] rewardsPerFunction, float[] weights, int g, RewardScaling scaling)
    {
        var expected = AdvantageReference.Compute(
            TestRandom.ToDouble(rewardsPerFunction), TestRandom.ToDouble(weights), g, ReferenceName(scaling));
        // Rewards (F weighted scores), advantages ((r − mean) / std) and stds can cancel to near 0 element by element, so
        // they are judged against the batch's largest value: each carries ~(F + G + 4) ulps of the magnitudes it was
        // computed from, (3 + 8 + 4)·2^-24 = 9e-7 of them, and those magnitudes stay within ~10× the largest value for
        // rewards drawn as here (normal scores, weights in [0.5, ~3]): ≤ 1e-5 against a bound of 1e-4.
        Compare.WorstRowRelativeError($"{scaling} rewards", expected.Rewards, run.Rewards, expected.Rewards.Length, 1e-4);
        Compare.WorstRowRelativeError($"{scaling} advantages", expected.Advantages, run.Advantages, expected.Advantages.Length, 1e-4);
        var (groupScale, batchScale) = MeanScales(rewardsPerFunction, weights, g);
        MeansMatch($"{scaling} group means", expected.GroupMean, groupScale, run.GroupMean);
        Compare.WorstRowRelativeError($"{scaling} group stds", expected.GroupStd, run.GroupStd, expected.GroupStd.Length, 1e-4);
        for (int i = 0; i < expected.Advantages.Length; i++)
            if (expected.Advantages[i] == 0)
                Assert.That(run.Advantages[i], Is.EqualTo(0f), $"advantage {i} must be exactly 0 (flat group or unscored)");
        for (int group = 0; group < expected.GroupStd.Length; group++)
            if (expected.GroupStd[group] == 0)
                Assert.That(run.GroupStd[group], Is.EqualTo(0f), $"group {group} std must be exactly 0");

        var s = run.Statistics;
        Assert.That(s.ZeroStdGroups, Is.EqualTo(expected.ZeroStdGroups), "zero-std groups");
        Assert.That(s.MissingRewards, Is.EqualTo(expected.MissingRewards), "unscored completions");
        Compare.WorstRelativeError("frac_reward_zero_std", expected.FracRewardZeroStd, s.FracRewardZeroStd, 1e-6);
        MeansMatch("batch mean", [expected.BatchMean], [batchScale], [s.BatchMean]);
        Compare.WorstRelativeError("batch std", expected.BatchStd, s.BatchStd);
    }

    // A mean of rewards can cancel to near 0 (seed 279893536: a batch mean of -9.1e-5 read 1.25e-4 "relative"), so
    // means are judged against the mean of the magnitudes of their terms, Σ_i Σ_j |w_j x_ij| / count, which no
    // cancellation shrinks: at most N = 64 rewards of F = 3 weighted scores each, summed in any order and divided once,
    // are within (F + N + 1)·2^-24 = 4.1e-6 of that scale.
    private const double MeanTolerance = 1e-5;

    /// <summary>Σ |w_j x_ij| over the scores each group's and the batch's mean sums, per scored completion (NaN where none).</summary>
    private static (double[] Group, double Batch) MeanScales(float[] rewardsPerFunction, float[] weights, int g)
    {
        int f = weights.Length, n = rewardsPerFunction.Length / f;
        var magnitude = new double[n];                                  // (N) NaN: unscored
        for (int i = 0; i < n; i++)
        {
            var present = Enumerable.Range(0, f).Where(j => !float.IsNaN(rewardsPerFunction[i * f + j])).ToList();
            magnitude[i] = present.Count == 0 ? double.NaN : present.Sum(j => Math.Abs((double)weights[j] * rewardsPerFunction[i * f + j]));
        }
        static double MeanOfScored(IEnumerable<double> values)
        {
            var scored = values.Where(v => !double.IsNaN(v)).ToList();
            return scored.Count == 0 ? double.NaN : scored.Average();
        }
        var groups = Enumerable.Range(0, n / g).Select(group => MeanOfScored(magnitude.Skip(group * g).Take(g))).ToArray();
        return (groups, MeanOfScored(magnitude));
    }

    /// <summary>Means against their scales (<see cref="MeanTolerance"/>); a mean of nothing must be NaN on both sides.</summary>
    private static void MeansMatch(string what, double[] expected, double[] scale, float[] actual)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        var defined = Enumerable.Range(0, expected.Length).Where(i => !double.IsNaN(expected[i])).ToArray();
        foreach (int i in Enumerable.Range(0, expected.Length).Except(defined))
            Assert.That(actual[i], Is.NaN, $"{what} [{i}]: a mean of no scored reward");
        Compare.WorstScaledError(what, defined.Select(i => expected[i]).ToArray(), defined.Select(i => scale[i]).ToArray(),
            defined.Select(i => actual[i]).ToArray(), MeanTolerance);
    }

    /// <summary>
    /// Random rewards where each group is one of: ordinary, with some single NaN scores, with some
    /// completions entirely unscored, all equal to a value that does not average exactly in fp32,
    /// with exactly one scored completion, or with none.
    /// </summary>
    private static float[] RandomRewards(Random random, int n, int f, int g)
    {
        float[] values = TestRandom.Normal(random, n * f);
        float[] awkward = [0.1f, 0.7f, 1.3f, -0.3f, 1f / 3];
        for (int group = 0; group < n / g; group++)
        {
            int begin = group * g;
            // Cycle through the kinds so that every kind appears whenever there are enough groups.
            switch ((group + random.Next(2)) % 6)
            {
                case 1:
                    for (int k = 0; k < g * f; k += 2) values[begin * f + k] = float.NaN;
                    break;
                case 2:
                    for (int j = 0; j < f; j++) values[(begin + random.Next(g)) * f + j] = float.NaN;
                    break;
                case 3:
                    float v = awkward[random.Next(awkward.Length)];
                    for (int k = 0; k < g * f; k++) values[begin * f + k] = v;
                    // an unscored member must not break the tie
                    if (g > 2) for (int j = 0; j < f; j++) values[(begin + 1) * f + j] = float.NaN;
                    break;
                case 4:
                    int keep = random.Next(g);
                    for (int member = 0; member < g; member++)
                        if (member != keep) for (int j = 0; j < f; j++) values[(begin + member) * f + j] = float.NaN;
                    break;
                case 5:
                    if (group > 0) for (int k = 0; k < g * f; k++) values[begin * f + k] = float.NaN;
                    break;
            }
        }
        return values;
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheReference(DeviceKind kind, int n, int f, int g)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        foreach (var scaling in Scalings)
        {
            float[] rewardsPerFunction = RandomRewards(random, n, f, g);
            float[] weights = Array.ConvertAll(TestRandom.Normal(random, f), w => 0.5f + Math.Abs(w));
            var run = Compute(device, rewardsPerFunction, n, f, weights, g, scaling);
            CheckAgainstReference(run, rewardsPerFunction, weights, g, scaling);
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void HandWorkedBatchHasTheKnownStatistics(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const float nan = float.NaN;
        // F = 2, weights (1, 0.5), G = 4.
        float[] input =
        [
            1, 2,     nan, 4,   3, nan,   nan, nan,   // group 0: r = 2, 2, 3, unscored → mean 7/3, std sqrt(1/3)
            0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, // group 1: all 0.15 → flat
            5, 0,     nan, nan, nan, nan, nan, nan, // group 2: one scored reward → flat, mean 5
        ];
        float[] weights = [1f, 0.5f];
        foreach (var scaling in Scalings)
        {
            var run = Compute(device, input, 12, 2, weights, 4, scaling);
            Assert.That(run.Rewards[3], Is.NaN, "an unscored completion's reward is NaN");
            Assert.That(run.Rewards[0], Is.EqualTo(2f));
            Assert.That(run.GroupMean[0], Is.EqualTo(7f / 3).Within(1e-6));
            Assert.That(run.GroupStd[0], Is.EqualTo(MathF.Sqrt(1f / 3)).Within(1e-6));
            Assert.That(run.GroupStd[1], Is.EqualTo(0f));
            Assert.That(run.GroupMean[2], Is.EqualTo(5f));
            Assert.That(run.Advantages[3], Is.EqualTo(0f));
            Assert.That(run.Advantages[4..12], Is.All.EqualTo(0f), "flat groups give exactly 0");
            Assert.That(run.Statistics.ZeroStdGroups, Is.EqualTo(2));
            Assert.That(run.Statistics.MissingRewards, Is.EqualTo(1 + 3));
            Assert.That(run.Statistics.FracRewardZeroStd, Is.EqualTo(2f / 3).Within(1e-7));
            double divisor = scaling switch
            {
                RewardScaling.Group => Math.Sqrt(1.0 / 3) + 1e-4,
                RewardScaling.Batch => run.Statistics.BatchStd + 1e-4,
                _ => 1,
            };
            Assert.That(run.Advantages[2], Is.EqualTo((3 - 7.0 / 3) / divisor).Within(1e-5 / divisor), $"{scaling}");
            CheckAgainstReference(run, input, weights, 4, scaling);
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void EqualRewardsThatDoNotAverageExactlyGiveExactZeros(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        foreach (int g in new[] { 3, 5, 7, 8 })
        {
            foreach (float v in new[] { 0.1f, 0.7f, 1e7f + 1, -2.3f })
            {
                int n = 2 * g;
                float[] input = new float[n];
                Array.Fill(input, v);
                var run = Compute(device, input, n, 1, [1f], g, RewardScaling.Group);
                Assert.That(run.Advantages, Is.All.EqualTo(0f), $"G={g}, value {v}");
                Assert.That(run.GroupStd, Is.All.EqualTo(0f), $"G={g}, value {v}");
                Assert.That(run.Statistics.BatchStd, Is.EqualTo(0f));
                Assert.That(run.Statistics.FracRewardZeroStd, Is.EqualTo(1f));
            }
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void InfiniteRewardNamesTheCompletionAndFunction(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        float[] input = new float[8 * 3];
        input[5 * 3 + 1] = float.NegativeInfinity;
        var error = AssertRefused<ArgumentException>(device, input, 8, 3, [1, 1, 1], 4, RewardScaling.Group, "rewardsPerFunction");
        Assert.That(error.Message, Does.Contain("completion 5").And.Contain("function 1"));
    }

    private static IEnumerable<TestCaseData> BadArguments()
    {
        foreach (var kind in TestDevices.Kinds())
        {
            yield return new TestCaseData(kind, 8, 2, new[] { 1f }, 4, RewardScaling.Group, "weights").SetName($"{kind}: too few weights");
            yield return new TestCaseData(kind, 8, 2, new[] { 1f, float.NaN }, 4, RewardScaling.Group, "weights").SetName($"{kind}: NaN weight");
            yield return new TestCaseData(kind, 8, 2, new[] { 1f, float.PositiveInfinity }, 4, RewardScaling.Group, "weights").SetName($"{kind}: infinite weight");
            yield return new TestCaseData(kind, 8, 2, new[] { 1f, 1f }, 1, RewardScaling.Group, "groupSize").SetName($"{kind}: group of one");
            yield return new TestCaseData(kind, 8, 2, new[] { 1f, 1f }, 3, RewardScaling.Group, "groupSize").SetName($"{kind}: N not a multiple of G");
            yield return new TestCaseData(kind, 8, 2, new[] { 1f, 1f }, 4, (RewardScaling)7, "scaling").SetName($"{kind}: unknown scaling");
        }
    }

    [TestCaseSource(nameof(BadArguments))]
    public void BadArgumentIsNamed(DeviceKind kind, int n, int f, float[] weights, int g, RewardScaling scaling, string argument) =>
        AssertRefused<ArgumentException>(TestDevices.Get(kind), new float[n * f], n, f, weights, g, scaling, argument);

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void WrongShapesAreNamed(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var flat = device.FromArray<float>(new float[8], 8);       // (N) instead of (N, F)
        using var input = device.FromArray<float>(new float[8], 8, 1);   // (N, F)
        using var n8 = device.Allocate<float>(8);
        using var n7 = device.Allocate<float>(7);
        using var groups = device.Allocate<float>(2);
        using var groups3 = device.Allocate<float>(3);
        var ops = device.Operations;
        ExpectNamed(() => ops.ComputeAdvantages(flat, [1f], 4, RewardScaling.Group, n8, n8, groups, groups), "rewardsPerFunction");
        ExpectNamed(() => ops.ComputeAdvantages(input, [1f], 4, RewardScaling.Group, n7, n8, groups, groups), "rewards");
        ExpectNamed(() => ops.ComputeAdvantages(input, [1f], 4, RewardScaling.Group, n8, n7, groups, groups), "advantages");
        ExpectNamed(() => ops.ComputeAdvantages(input, [1f], 4, RewardScaling.Group, n8, n8, groups3, groups), "groupMean");
        ExpectNamed(() => ops.ComputeAdvantages(input, [1f], 4, RewardScaling.Group, n8, n8, groups, groups3), "groupStd");
    }

    [Test]
    public void TensorFromAnotherDeviceIsNamed()
    {
        using var other = new Grpo.Native.Cpu.CpuDevice(1);
        var device = TestDevices.Get(DeviceKind.Cpu);
        using var input = other.FromArray<float>(new float[8], 8, 1);
        using var n8 = device.Allocate<float>(8);
        using var groups = device.Allocate<float>(2);
        ExpectNamed(() => device.Operations.ComputeAdvantages(input, [1f], 4, RewardScaling.Group, n8, n8, groups, groups),
            "rewardsPerFunction");
    }

    private static void ExpectNamed(TestDelegate call, string argument)
    {
        var error = Assert.Catch<ArgumentException>(call)!;
        TestContext.Out.WriteLine(error.Message);
        Assert.That(error.ParamName, Is.EqualTo(argument));
        Assert.That(error.Message, Does.Contain(argument));
    }

    private static T AssertRefused<T>(Device device, float[] input, int n, int f, float[] weights, int g, RewardScaling scaling,
        string argument) where T : ArgumentException
    {
        T? error = null;
        ExpectNamed(() =>
        {
            try { Compute(device, input, n, f, weights, g, scaling); }
            catch (T e) { error = e; throw; }
        }, argument);
        return error!;
    }
}

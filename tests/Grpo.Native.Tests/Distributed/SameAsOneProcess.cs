using NUnit.Framework;

namespace Grpo.Native.Tests.Distributed;

/// <summary>The data-parallel tests' verdict: every rank ends with one process's weights and logs its metrics, bit for bit.</summary>
internal static class SameAsOneProcess
{
    /// <summary>Metrics that measure time, or the run's shape, rather than the training.</summary>
    private static readonly HashSet<string> NotCompared = ["step_time", "tokens/s", "world_size", "time/allreduce"];

    /// <summary>Asserts that each rank's weights and per-step metrics equal one process's exactly, and that each logged the world size.</summary>
    public static void Assert(float[] oneWeights, IReadOnlyList<IReadOnlyDictionary<string, double>> oneMetrics,
        IReadOnlyList<(float[] Weights, List<IReadOnlyDictionary<string, double>> Metrics)> ranks)
    {
        for (int r = 0; r < ranks.Count; r++)
        {
            NUnit.Framework.Assert.That(ranks[r].Weights.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(oneWeights.Select(BitConverter.SingleToInt32Bits)),
                $"rank {r}'s weights after {oneMetrics.Count} steps");
            for (int step = 0; step < oneMetrics.Count; step++)
            {
                NUnit.Framework.Assert.That(ranks[r].Metrics[step]["world_size"], Is.EqualTo(ranks.Count), $"rank {r}, step {step + 1}: world_size");
                foreach (var (name, value) in oneMetrics[step].Where(kv => !NotCompared.Contains(kv.Key)))
                    NUnit.Framework.Assert.That(ranks[r].Metrics[step][name], Is.EqualTo(value), $"rank {r}, step {step + 1}: {name}");
            }
        }
    }
}

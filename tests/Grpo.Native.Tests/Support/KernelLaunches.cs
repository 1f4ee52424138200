using Grpo.Native.Ilgpu;

namespace Grpo.Native.Tests.Support;

/// <summary>Launches by kernel between two readings of <see cref="DeviceStats.LaunchesByKernel"/>.</summary>
public static class KernelLaunches
{
    /// <summary>The launches of each kernel from <paramref name="before"/> to <paramref name="after"/>; kernels not launched are absent.</summary>
    public static Dictionary<string, long> Between(IReadOnlyDictionary<string, long> before, IReadOnlyDictionary<string, long> after) =>
        after.Select(pair => (pair.Key, Count: pair.Value - before.GetValueOrDefault(pair.Key)))
            .Where(pair => pair.Count != 0)
            .ToDictionary(pair => pair.Key, pair => pair.Count);

    /// <summary>The launches of every kernel whose name ends with <paramref name="kernel"/> (".RmsNormForward", "Rope").</summary>
    public static long Of(this IReadOnlyDictionary<string, long> launches, string kernel) =>
        launches.Where(pair => pair.Key.EndsWith(kernel, StringComparison.Ordinal)).Sum(pair => pair.Value);

    /// <summary>One line per kernel, most launched first: what a test prints so a changed count is easy to read.</summary>
    public static string Describe(this IReadOnlyDictionary<string, long> launches) =>
        string.Join(", ", launches.OrderByDescending(pair => pair.Value).ThenBy(pair => pair.Key).Select(pair => $"{pair.Key} {pair.Value}"));
}

using System.Globalization;
using Grpo.Native.Training;

namespace Grpo.Native.Rewards;

public static partial class BuiltInRewards
{
    /// <summary>
    /// The reward functions of the command line's <c>--reward NAME[,NAME...]</c> and
    /// <c>--reward-weights W[,W...]</c>: one function per name, in order, each with its weight.
    /// </summary>
    /// <param name="names">The value of --reward: built-in names separated by commas (spaces around them ignored), each at most once.</param>
    /// <param name="weights">The value of --reward-weights: one finite number per name, separated by commas; null for weight 1 each.</param>
    /// <param name="options">Parameters of the rewards that have any.</param>
    /// <exception cref="ArgumentException">An option is malformed; the message names the option and the fix.</exception>
    public static IReadOnlyList<RewardFunction> Parse(string names, string? weights, BuiltInRewardOptions options)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(options);
        string known = string.Join(", ", Names);
        if (string.IsNullOrWhiteSpace(names))
            throw new ArgumentException($"--reward is empty; name one or more built-in rewards separated by commas, from {known}.", nameof(names));
        var parsedNames = names.Split(',').Select(n => n.Trim()).ToArray();
        for (int i = 0; i < parsedNames.Length; i++)
        {
            string name = parsedNames[i];
            if (name.Length == 0)
                throw new ArgumentException(
                    $"--reward '{names}' has an empty name at position {i + 1}; separate names with single commas, e.g. --reward accuracy,think_format.",
                    nameof(names));
            if (!Names.Contains(name))
                throw new ArgumentException($"--reward names '{name}', which is not a built-in reward; choose from {known}.", nameof(names));
            if (Array.IndexOf(parsedNames, name) < i)
                throw new ArgumentException($"--reward names '{name}' twice; list each reward once and weight it with --reward-weights.", nameof(names));
        }

        var parsedWeights = weights is null ? Enumerable.Repeat(1f, parsedNames.Length).ToArray() : ParseWeights(weights, parsedNames);
        return parsedNames.Select((name, i) => Create(name, options, parsedWeights[i])).ToArray();
    }

    private static float[] ParseWeights(string weights, string[] names)
    {
        string example = $"e.g. --reward-weights {string.Join(',', names.Select((_, i) => i == 0 ? "1" : "0.5"))}";
        var parts = weights.Split(',');
        if (parts.Length != names.Length)
            throw new ArgumentException(
                $"--reward-weights has {parts.Length} weight{(parts.Length == 1 ? "" : "s")} but --reward names {names.Length} function{(names.Length == 1 ? "" : "s")} " +
                $"({string.Join(", ", names)}); give one weight per function, in the same order, {example}.", nameof(weights));
        var parsed = new float[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out parsed[i]))
                throw new ArgumentException(
                    $"--reward-weights: '{parts[i].Trim()}' (weight {i + 1}, of {names[i]}) is not a number; write decimals separated by commas, {example}.",
                    nameof(weights));
            if (!float.IsFinite(parsed[i]))
                throw new ArgumentException(
                    $"--reward-weights: '{parts[i].Trim()}' (weight {i + 1}, of {names[i]}) is not finite; weights must be finite numbers, {example}.",
                    nameof(weights));
        }
        return parsed;
    }
}

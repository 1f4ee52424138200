using Grpo.Native.Training;

namespace Grpo.Native.Tests.Rewards;

/// <summary>Builds the <see cref="RewardInput"/> the reward tests score.</summary>
internal static class RewardInputs
{
    /// <summary>A completion with <paramref name="tokens"/> completion tokens and the given row columns.</summary>
    public static RewardInput Of(string completion, int tokens = 1, params (string Name, object? Value)[] columns) =>
        new("prompt", completion, [1, 2], Enumerable.Repeat(7, tokens).ToArray(), 0, false)
        {
            Columns = columns.ToDictionary(c => c.Name, c => c.Value),
        };

    /// <summary>A completion whose row has these columns.</summary>
    public static RewardInput WithColumns(string completion, params (string Name, object? Value)[] columns) => Of(completion, 1, columns);
}

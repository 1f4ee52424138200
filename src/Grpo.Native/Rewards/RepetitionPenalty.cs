using Grpo.Native.Training;

namespace Grpo.Native.Rewards;

/// <summary>
/// open-r1's <c>get_repetition_penalty_reward(ngram_size, max_penalty)</c> (Appendix C.2 of
/// arXiv 2502.03373): over the completion's lowercased, whitespace-split words, with n-grams taken as
/// consecutive windows, reward = (1 − unique n-grams / total n-grams) · max_penalty. An empty completion,
/// or one with fewer than n words, scores 0; a fully repeated one approaches max_penalty.
/// </summary>
public sealed class RepetitionPenalty
{
    /// <summary>The name in metrics and on the command line.</summary>
    public const string Name = "repetition_penalty";

    /// <summary>Creates the penalty.</summary>
    /// <param name="ngramSize">n: words per n-gram, at least 1. Default 3.</param>
    /// <param name="maxPenalty">The most negative reward, ≤ 0 and finite. Default −1.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public RepetitionPenalty(int ngramSize = 3, float maxPenalty = -1f)
    {
        if (ngramSize < 1)
            throw new ArgumentOutOfRangeException(nameof(ngramSize), ngramSize, $"'{nameof(ngramSize)}' is {ngramSize}: n-grams need at least 1 word (3 is usual).");
        if (!float.IsFinite(maxPenalty) || maxPenalty > 0)
            throw new ArgumentOutOfRangeException(nameof(maxPenalty), maxPenalty,
                $"'{nameof(maxPenalty)}' is {maxPenalty}: it is the most negative reward, so it must be finite and not positive (−1 is usual).");
        NgramSize = ngramSize;
        MaxPenalty = maxPenalty;
    }

    /// <summary>n: words per n-gram.</summary>
    public int NgramSize { get; }

    /// <summary>The reward of a completion made only of repeats (approached, as the first n-gram is always new).</summary>
    public float MaxPenalty { get; }

    /// <summary>The penalty of <paramref name="completion"/>, in [<see cref="MaxPenalty"/>, 0].</summary>
    public float Score(string completion)
    {
        ArgumentNullException.ThrowIfNull(completion);
        // open-r1: words = text.lower().split(); zip(*[words[i:] for i in range(ngram_size)]).
        var words = PythonSplit(completion.ToLowerInvariant());
        if (words.Count < NgramSize) return 0f; // also the empty completion
        // Words become ids so that an n-gram is a key of comma-separated ids, which cannot collide.
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        var sequence = words.Select(w => ids.TryGetValue(w, out int id) ? id : ids[w] = ids.Count).ToArray();
        int total = sequence.Length - NgramSize + 1;
        var unique = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < total; i++)
            unique.Add(string.Join(',', new ArraySegment<int>(sequence, i, NgramSize)));
        double scaling = 1 - (double)unique.Count / total;
        return (float)(scaling * MaxPenalty);
    }

    /// <summary>The penalty as a <see cref="RewardFunction"/> named <see cref="Name"/>, scoring the completion text.</summary>
    /// <param name="weight">Its weight in the sum of rewards.</param>
    /// <returns>The function, with scores in [<see cref="MaxPenalty"/>, 0] (<see cref="RewardFunction.MinScore"/>, <see cref="RewardFunction.MaxScore"/>).</returns>
    public RewardFunction ToRewardFunction(float weight = 1f) =>
        RewardFunction.Create(Name, input => Score(input.Completion), weight) with { MinScore = MaxPenalty, MaxScore = 0f };

    // Python's str.split(): runs of whitespace separate words, none empty. Python's whitespace is .NET's plus U+001C–U+001F.
    private static List<string> PythonSplit(string text)
    {
        var words = new List<string>();
        int start = -1;
        for (int i = 0; i <= text.Length; i++)
        {
            bool space = i == text.Length || char.IsWhiteSpace(text[i]) || text[i] is >= '\u001C' and <= '\u001F';
            if (space && start >= 0) { words.Add(text[start..i]); start = -1; }
            else if (!space && start < 0) start = i;
        }
        return words;
    }
}

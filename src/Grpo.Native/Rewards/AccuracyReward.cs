using System.Globalization;
using Grpo.Native.Training;

namespace Grpo.Native.Rewards;

/// <summary>
/// A math answer check in the spirit of TRL's <c>accuracy_reward</c> (which uses math_verify, a Python
/// library with no .NET port): 1 when the completion's final answer equals the reference's, 0 when it
/// does not or the completion has none, NaN ("no score", TRL's None) when the row has no usable reference.
/// </summary>
/// <remarks>
/// <para>The reference is the row's <c>solution</c> column, else its <c>answer</c> column (the first of the
/// two the row has with a non-null value; a string, or an integer or floating-point number). Of a string,
/// the answer is the text after the last <c>####</c> (GSM8K), and of that the last <c>\boxed{...}</c>'s
/// argument when there is one, else all of it. A row without either column scores NaN, row by row: the
/// function cannot know at construction which columns a dataset has.</para>
/// <para>The completion's answer is its last <c>\boxed{...}</c> argument (braces balanced, nested braces
/// allowed), else the last number in its text; none scores 0.</para>
/// <para>Both answers are normalized alike: <c>\text{}</c>, <c>\textbf{}</c>, <c>\textrm{}</c>, <c>\mathrm{}</c>,
/// <c>\mathbf{}</c> unwrapped, <c>$</c>, LaTeX spaces, whitespace and trailing dots removed. Answers that are
/// numbers (integers, decimals, negatives, 1,000-style thousands groups, a/b, <c>\frac{a}{b}</c>,
/// <c>\dfrac</c>, <c>\tfrac</c>, percentages with 50% = 50) compare numerically with a relative tolerance of
/// <see cref="RelativeTolerance"/>; others compare as normalized text, ordinally. Not covered, unlike
/// math_verify: symbolic equivalence (x+1 vs 1+x), units, equations (x = 5 vs 5), sets and intervals.</para>
/// </remarks>
public static class AccuracyReward
{
    /// <summary>The name in metrics and on the command line.</summary>
    public const string Name = "accuracy";

    /// <summary>Numbers a and b are equal when |a − b| ≤ 1e-9 · max(|a|, |b|).</summary>
    public const double RelativeTolerance = MathAnswer.RelativeTolerance;

    /// <summary>The columns the reference is read from, in order of preference.</summary>
    public static IReadOnlyList<string> ReferenceColumns { get; } = ["solution", "answer"];

    /// <summary>Scores <paramref name="completion"/> against a reference solution or answer.</summary>
    /// <param name="completion">The completion's text.</param>
    /// <param name="reference">The reference; null scores NaN.</param>
    /// <returns>1 or 0; NaN when <paramref name="reference"/> is null or has no answer.</returns>
    public static float Score(string completion, string? reference)
    {
        ArgumentNullException.ThrowIfNull(completion);
        return Score(completion, reference is null ? null : MathAnswerExtraction.FromReference(reference));
    }

    /// <summary>Scores a completion against the reference in its row's <see cref="ReferenceColumns"/>.</summary>
    /// <returns>1 or 0; NaN when the row has no usable reference.</returns>
    public static float Score(RewardInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Score(input.Completion, Reference(input.Columns));
    }

    /// <summary>The reward as a <see cref="RewardFunction"/> named <see cref="Name"/>.</summary>
    /// <param name="weight">Its weight in the sum of rewards.</param>
    /// <returns>The function, with scores in [0, 1] (<see cref="RewardFunction.MinScore"/>, <see cref="RewardFunction.MaxScore"/>).</returns>
    public static RewardFunction Create(float weight = 1f) =>
        RewardFunction.Create(Name, (RewardInput input) => Score(input), weight) with { MinScore = 0f, MaxScore = 1f };

    private static float Score(string completion, MathAnswer? reference)
    {
        if (reference is null) return float.NaN;
        var answer = MathAnswerExtraction.FromCompletion(completion);
        return answer is not null && answer.Matches(reference) ? 1f : 0f;
    }

    private static MathAnswer? Reference(IReadOnlyDictionary<string, object?> columns)
    {
        foreach (string column in ReferenceColumns)
            if (columns.TryGetValue(column, out object? value) && value is not null)
                return value switch
                {
                    string text => MathAnswerExtraction.FromReference(text),
                    long or int or short or sbyte or ulong or uint or ushort or byte =>
                        MathAnswerExtraction.FromReference(Convert.ToString(value, CultureInfo.InvariantCulture)!),
                    double or float or decimal => MathAnswer.FromNumber(Convert.ToDouble(value, CultureInfo.InvariantCulture)),
                    _ => null, // a bool or a list is no reference answer
                };
        return null;
    }
}

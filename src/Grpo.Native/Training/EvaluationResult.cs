using Grpo.Native.Datasets;

namespace Grpo.Native.Training;

/// <summary>What <see cref="Evaluator.Evaluate"/> measured.</summary>
/// <param name="PassAt1">
/// The fraction of prompts whose greedy completion reached <paramref name="PassThreshold"/>, over the prompts whose
/// greedy completion was scored; NaN when none was.
/// </param>
/// <param name="MeanReward">The mean weighted reward of the K samples of every prompt, unscored samples left out; NaN when none was scored.</param>
/// <param name="Prompts">Prompts evaluated (rows given minus rows skipped).</param>
/// <param name="Samples">K: samples per prompt.</param>
/// <param name="Skipped">Rows skipped because their prompt is longer than the builder's MaxPromptLength (or encodes to no token at all).</param>
/// <param name="UnscoredGreedy">Greedy completions that no reward function scored (every function returned NaN); left out of pass@1.</param>
/// <param name="UnscoredSamples">Samples that no reward function scored; left out of the mean reward.</param>
/// <param name="PassThreshold">The weighted reward that counts as a pass.</param>
/// <param name="MeanRewardPerFunction">Each function's mean score (unweighted) over the samples it scored; NaN when it scored none.</param>
/// <param name="Details">One entry per evaluated prompt, in the order of the rows.</param>
public sealed record EvaluationResult(
    double PassAt1, double MeanReward, int Prompts, int Samples, int Skipped, int UnscoredGreedy, int UnscoredSamples, double PassThreshold,
    IReadOnlyDictionary<string, double> MeanRewardPerFunction, IReadOnlyList<EvaluatedPrompt> Details);

/// <summary>One prompt of an evaluation.</summary>
/// <param name="RowIndex">The row's index in the rows evaluated.</param>
/// <param name="Row">The row.</param>
/// <param name="GreedyCompletion">The greedy completion as text (what the reward functions saw).</param>
/// <param name="GreedyTruncated">True when the greedy completion reached MaxCompletionLength without a stop token.</param>
/// <param name="GreedyReward">Its weighted reward (Σ over the functions that scored it); NaN when none did.</param>
/// <param name="Passed">True when <paramref name="GreedyReward"/> reached the pass threshold.</param>
/// <param name="SampleRewards">(K) the weighted reward of each sample; NaN for an unscored one.</param>
public sealed record EvaluatedPrompt(int RowIndex, PromptRow Row, string GreedyCompletion, bool GreedyTruncated, double GreedyReward, bool Passed,
    IReadOnlyList<double> SampleRewards);

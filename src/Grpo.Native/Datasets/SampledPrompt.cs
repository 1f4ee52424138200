namespace Grpo.Native.Datasets;

/// <summary>A prompt served by <see cref="PromptSource"/>: the row it came from and its tokens.</summary>
/// <param name="RowIndex">The row's index in the dataset.</param>
/// <param name="Row">The row: its <see cref="PromptRow.Columns"/> are what reward functions get besides the completion.</param>
/// <param name="Tokens">The prompt as tokens and rendered text.</param>
public sealed record SampledPrompt(int RowIndex, PromptRow Row, PromptTokens Tokens);

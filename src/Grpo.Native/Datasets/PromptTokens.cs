namespace Grpo.Native.Datasets;

/// <summary>A prompt ready for generation.</summary>
/// <param name="TokenIds">The token ids the model is given.</param>
/// <param name="Text">The prompt as rendered (after the chat template, if any): what the ids encode.</param>
public sealed record PromptTokens(IReadOnlyList<int> TokenIds, string Text);

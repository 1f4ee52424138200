namespace Grpo.Native.Datasets;

/// <summary>
/// Serves a run's prompts: rows in <see cref="PromptSampler"/>'s order, built by <see cref="PromptBuilder"/>, rows
/// over the length limit skipped and counted. Saving <see cref="Sampler"/>'s position and restoring it resumes at
/// the same row. Not thread-safe.
/// </summary>
public sealed class PromptSource
{
    // Rows found over the limit are not rendered and encoded again when they come round in a later epoch.
    private readonly bool[] _overLimit;
    private int _rowsOverLimit;
    private int _shortestOverLimit = int.MaxValue;

    /// <summary>A source over <paramref name="dataset"/>.</summary>
    /// <param name="dataset">The rows.</param>
    /// <param name="builder">Turns rows into tokens and sets the length limit.</param>
    /// <param name="sampler">The order; its <see cref="PromptSampler.RowCount"/> must be the dataset's row count.</param>
    /// <exception cref="ArgumentException">The sampler is for a different number of rows.</exception>
    public PromptSource(PromptDataset dataset, PromptBuilder builder, PromptSampler sampler)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(sampler);
        if (sampler.RowCount != dataset.Count)
            throw new ArgumentException(
                $"The sampler permutes {sampler.RowCount} rows but the dataset has {dataset.Count}: make it with the dataset's Count " +
                "(a position saved for another dataset cannot be restored on this one).", nameof(sampler));
        Dataset = dataset;
        Builder = builder;
        Sampler = sampler;
        _overLimit = new bool[dataset.Count];
    }

    /// <summary>The rows served.</summary>
    public PromptDataset Dataset { get; }

    /// <summary>Turns rows into tokens.</summary>
    public PromptBuilder Builder { get; }

    /// <summary>The order; its position is what a checkpoint saves.</summary>
    public PromptSampler Sampler { get; }

    /// <summary>
    /// How many times a row was passed over because its prompt is longer than
    /// <see cref="PromptFormatOptions.MaxPromptLength"/> (a row passed over in two epochs counts twice). Starts at
    /// 0 with each source, also a resumed one.
    /// </summary>
    public long SkippedPrompts { get; private set; }

    /// <summary>How many distinct rows have been found over the length limit so far.</summary>
    public int RowsOverLimit => _rowsOverLimit;

    /// <summary>The next <paramref name="count"/> prompts within the length limit, with their rows.</summary>
    /// <param name="count">How many; 0 or more.</param>
    /// <exception cref="InvalidOperationException">No row of the dataset fits the length limit (so none ever will),
    /// or a conversational row meets a builder without a chat template.</exception>
    public IReadOnlyList<SampledPrompt> NextPrompts(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var prompts = new List<SampledPrompt>(count);
        while (prompts.Count < count)
        {
            int index = Sampler.NextIndex();
            if (_overLimit[index])
            {
                SkippedPrompts++;
                continue;
            }
            var row = Dataset[index];
            var tokens = Builder.Encode(row);
            if (Builder.Fits(tokens))
            {
                prompts.Add(new SampledPrompt(index, row, tokens));
                continue;
            }
            SkippedPrompts++;
            _overLimit[index] = true;
            _rowsOverLimit++;
            _shortestOverLimit = Math.Min(_shortestOverLimit, tokens.TokenIds.Count);
            // Every row is over the limit: a whole epoch yields nothing, and so would every later one.
            if (_rowsOverLimit == Dataset.Count)
                throw new InvalidOperationException(
                    $"None of the {Dataset.Count} prompts fits {nameof(PromptFormatOptions.MaxPromptLength)} = {Builder.Options.MaxPromptLength} " +
                    $"tokens (the shortest has {_shortestOverLimit}): raise {nameof(PromptFormatOptions.MaxPromptLength)} to at least " +
                    $"{_shortestOverLimit}, or use shorter prompts.");
        }
        return prompts;
    }
}

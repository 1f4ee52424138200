using Grpo.Native.Datasets;
using NUnit.Framework;

namespace Grpo.Native.Tests.Datasets;

/// <summary>Serving prompts: sampler order, skipping over-long rows, resuming, and a dataset no prompt of which fits.</summary>
public sealed class PromptSourceTests
{
    /// <summary>Rows whose prompt text is "p" followed by <paramref name="lengths"/>[i] − 2 'x's (the BOS makes it lengths[i] tokens).</summary>
    private static PromptDataset Dataset(params int[] lengths) =>
        new(lengths.Select((n, i) => PromptRow.Standard("p" + new string('x', n - 2), new Dictionary<string, object?> { ["i"] = (long)i }, $"row {i}")));

    private static PromptBuilder Builder(int? maxPromptLength) =>
        new(new FakeChatTokenizer(hasChatTemplate: false), new PromptFormatOptions { MaxPromptLength = maxPromptLength });

    [Test]
    public void PromptsComeInTheSamplersOrderWithTheirRows()
    {
        var dataset = Dataset(3, 4, 5, 6, 7);
        var source = new PromptSource(dataset, Builder(null), new PromptSampler(5, seed: 2));

        var prompts = source.NextPrompts(7).Concat(source.NextPrompts(5)).ToList();

        Assert.That(prompts.Select(p => p.RowIndex), Is.EqualTo(new PromptSampler(5, seed: 2).Next(12)));
        Assert.That(prompts.All(p => ReferenceEquals(p.Row, dataset[p.RowIndex])));
        Assert.That(prompts.All(p => p.Tokens.TokenIds.Count == 3 + p.RowIndex));
        Assert.That(source.SkippedPrompts, Is.Zero);
        Assert.That(source.NextPrompts(0), Is.Empty);
    }

    [Test]
    public void RowsOverTheLimitAreSkippedAndCountedEachTimeTheyComeRound()
    {
        // Rows 1 and 3 are 9 tokens long, over the limit of 8.
        var source = new PromptSource(Dataset(3, 9, 8, 9, 4), Builder(8), new PromptSampler(5, seed: 4));

        var prompts = source.NextPrompts(9); // three epochs' worth of the 3 usable rows

        int[] order = new PromptSampler(5, seed: 4).Next(15);
        var usable = order.Where(i => i is not (1 or 3)).ToArray();
        Assert.That(prompts.Select(p => p.RowIndex), Is.EqualTo(usable));
        // The rows drawn: up to and including the 9th usable one; the over-long ones among them were skipped.
        int drawn = order.Select((row, at) => (row, at)).Where(p => p.row is not (1 or 3)).ElementAt(8).at + 1;
        Assert.That(drawn, Is.InRange(13, 15));
        Assert.That(source.SkippedPrompts, Is.EqualTo(drawn - 9), "each time an over-long row comes round it is counted");
        Assert.That(source.SkippedPrompts, Is.GreaterThanOrEqualTo(4), "both rows in at least two epochs");
        Assert.That(source.RowsOverLimit, Is.EqualTo(2));
        Assert.That((source.Sampler.Epoch, source.Sampler.Offset), Is.EqualTo((drawn / 5, drawn % 5)),
            "the sampler stands right after the last row served");
    }

    [Test]
    public void ADatasetNoPromptOfWhichFitsIsAnErrorNotAnEndlessLoop()
    {
        var source = new PromptSource(Dataset(9, 12, 10), Builder(8), new PromptSampler(3, seed: 1));

        var e = Assert.Throws<InvalidOperationException>(() => source.NextPrompts(1));

        Assert.That(e!.Message, Does.Contain("None of the 3 prompts fits MaxPromptLength = 8 tokens (the shortest has 9)")
            .And.Contain("raise MaxPromptLength to at least 9"));
        Assert.That((source.Sampler.Epoch, source.Sampler.Offset), Is.EqualTo((1, 0)), "found after one epoch: each row drawn once");
    }

    [Test]
    public void ARestoredSourceServesWhatTheOriginalWouldHaveServed()
    {
        var dataset = Dataset(3, 9, 4, 5, 9, 6, 7);
        var original = new PromptSource(dataset, Builder(8), new PromptSampler(7, seed: 21));
        original.NextPrompts(4);
        original.NextPrompts(4);

        var resumed = new PromptSource(dataset, Builder(8), PromptSampler.Restore(7, 21, original.Sampler.Epoch, original.Sampler.Offset));

        Assert.That(resumed.NextPrompts(12).Select(p => p.RowIndex), Is.EqualTo(original.NextPrompts(12).Select(p => p.RowIndex)));
    }

    [Test]
    public void ASamplerForAnotherRowCountIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => _ = new PromptSource(Dataset(3, 4), Builder(null), new PromptSampler(3, seed: 0)));

        Assert.That(e!.Message, Does.Contain("The sampler permutes 3 rows but the dataset has 2"));
        Assert.That(e.ParamName, Is.EqualTo("sampler"));
    }
}

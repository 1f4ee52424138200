using Grpo.Native.Datasets;
using NUnit.Framework;

namespace Grpo.Native.Tests.Datasets;

/// <summary>The order rows are served in: permutations per epoch, determinism, resuming, and a pinned order.</summary>
public sealed class PromptSamplerTests
{
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(7)]
    [TestCase(100)]
    public void EveryEpochIsAPermutationOfAllRows(int rowCount)
    {
        var sampler = new PromptSampler(rowCount, seed: 3);
        for (int epoch = 0; epoch < 10; epoch++)
        {
            Assert.That(sampler.Epoch, Is.EqualTo(epoch));
            Assert.That(sampler.Offset, Is.Zero);
            int[] order = sampler.Next(rowCount);
            Assert.That(order.Order(), Is.EqualTo(Enumerable.Range(0, rowCount)), $"epoch {epoch}");
            Assert.That(order, Is.EqualTo(PromptSampler.Permutation(rowCount, 3, epoch)));
        }
    }

    [Test]
    public void EpochsDiffer()
    {
        var orders = Enumerable.Range(0, 5).Select(e => PromptSampler.Permutation(50, seed: 1, epoch: e)).ToList();

        for (int a = 0; a < orders.Count; a++)
            for (int b = a + 1; b < orders.Count; b++)
                Assert.That(orders[a], Is.Not.EqualTo(orders[b]), $"epochs {a} and {b}");
    }

    [Test]
    public void TheSameSeedGivesTheSameOrderAndAnotherSeedAnotherOrder()
    {
        Assert.That(new PromptSampler(50, seed: 7).Next(200), Is.EqualTo(new PromptSampler(50, seed: 7).Next(200)));
        Assert.That(new PromptSampler(50, seed: 7).Next(50), Is.Not.EqualTo(new PromptSampler(50, seed: 8).Next(50)));
        Assert.That(new PromptSampler(50, seed: -1).Next(50), Is.Not.EqualTo(new PromptSampler(50, seed: 0).Next(50)));
    }

    [Test]
    public void NextCrossesEpochBoundaries()
    {
        var sampler = new PromptSampler(4, seed: 5);

        int[] drawn = sampler.Next(11);

        int[] expected = [.. PromptSampler.Permutation(4, 5, 0), .. PromptSampler.Permutation(4, 5, 1), .. PromptSampler.Permutation(4, 5, 2)[..3]];
        Assert.That(drawn, Is.EqualTo(expected));
        Assert.That((sampler.Epoch, sampler.Offset), Is.EqualTo((2, 3)));
        Assert.That(sampler.Next(0), Is.Empty);
        Assert.That(sampler.Next(1), Is.EqualTo(new[] { PromptSampler.Permutation(4, 5, 2)[3] }));
        Assert.That((sampler.Epoch, sampler.Offset), Is.EqualTo((3, 0)), "the end of an epoch moves to the next one");
    }

    [TestCase(0)]
    [TestCase(13)]
    [TestCase(20)]
    [TestCase(37)]
    public void ARestoredSamplerContinuesIdentically(int drawnBefore)
    {
        var original = new PromptSampler(20, seed: 11);
        original.Next(drawnBefore);

        var restored = PromptSampler.Restore(20, 11, original.Epoch, original.Offset);

        Assert.That((restored.Epoch, restored.Offset, restored.RowCount, restored.Seed), Is.EqualTo((original.Epoch, original.Offset, 20, 11)));
        Assert.That(restored.Next(100), Is.EqualTo(original.Next(100)));
    }

    [Test]
    public void APositionOutsideTheDatasetIsRefused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => PromptSampler.Restore(10, 1, 0, 10));
        Assert.That(e!.ParamName, Is.EqualTo("offset"));
        Assert.That(e.Message, Does.Contain("[0, 10)"));
        Assert.Throws<ArgumentOutOfRangeException>(() => PromptSampler.Restore(10, 1, 0, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => PromptSampler.Restore(10, 1, -1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new PromptSampler(0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PromptSampler(3, 1).Next(-1));
    }

    /// <summary>
    /// Pinned: a change of the generator, its seeding or the shuffle would change every run's prompt order (and
    /// break resuming runs saved before it), so it must show up here. The values were also computed by an
    /// independent Python transcription of SplitMix64, the rejection draw and Fisher–Yates.
    /// </summary>
    [Test]
    public void TheOrderIsPinned()
    {
        Assert.That(PromptSampler.Permutation(10, seed: 42, epoch: 0), Is.EqualTo(new[] { 7, 4, 2, 0, 9, 3, 6, 8, 1, 5 }));
        Assert.That(PromptSampler.Permutation(10, seed: 42, epoch: 1), Is.EqualTo(new[] { 8, 0, 3, 1, 4, 9, 2, 7, 5, 6 }));
    }

    /// <summary>The generator is SplitMix64 as published: its reference outputs for seed 1234567.</summary>
    [Test]
    public void TheGeneratorIsSplitMix64()
    {
        var random = new SplitMix64(1234567);

        ulong[] outputs = [random.Next(), random.Next(), random.Next(), random.Next(), random.Next()];

        Assert.That(outputs, Is.EqualTo(new ulong[]
        {
            6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821,
        }));
    }

    /// <summary>All 6 orders of 3 rows come up about equally often (the shuffle and the bounded draw are unbiased).</summary>
    [Test]
    public void AllOrdersAreAboutEquallyLikely()
    {
        var counts = new Dictionary<string, int>();
        const int epochs = 6000;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            string key = string.Join(",", PromptSampler.Permutation(3, seed: 9, epoch));
            counts[key] = counts.GetValueOrDefault(key) + 1;
        }

        Assert.That(counts, Has.Count.EqualTo(6));
        // Deterministic (fixed seed); 1000 expected each, binomial σ ≈ 29.
        Assert.That(counts.Values, Has.All.InRange(880, 1120), string.Join("; ", counts.Select(p => $"{p.Key}: {p.Value}")));
    }
}

namespace Grpo.Native.Datasets;

/// <summary>
/// The order in which a dataset's rows are served: epoch after epoch, each a fresh permutation of all rows drawn
/// from (seed, epoch), so every row is served once per epoch. The position (<see cref="Epoch"/>,
/// <see cref="Offset"/>) is all a checkpoint needs: <see cref="Restore"/> continues at the same row.
/// </summary>
/// <remarks>
/// The permutation is a Fisher–Yates shuffle driven by SplitMix64 seeded with <c>(uint)seed &lt;&lt; 32 | epoch</c>:
/// our own generator, because <see cref="Random"/>'s sequence for a seed is not promised to stay the same across
/// .NET versions, and a resumed run must see the order it would have seen. Not thread-safe.
/// </remarks>
public sealed class PromptSampler
{
    private int[]? _order; // the permutation of Epoch, drawn when first needed

    /// <summary>A sampler at the start of epoch 0.</summary>
    /// <param name="rowCount">Number of rows in the dataset; at least 1.</param>
    /// <param name="seed">Seeds every epoch's permutation.</param>
    public PromptSampler(int rowCount, int seed) : this(rowCount, seed, 0, 0) { }

    private PromptSampler(int rowCount, int seed, int epoch, int offset)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rowCount, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        if (offset < 0 || offset >= rowCount)
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"The offset within an epoch must be in [0, {rowCount}) for {rowCount} rows; was the position saved for another dataset?");
        RowCount = rowCount;
        Seed = seed;
        Epoch = epoch;
        Offset = offset;
    }

    /// <summary>A sampler at a saved position: it serves exactly what the saved one would have served next.</summary>
    /// <param name="rowCount">Number of rows; must be the dataset the position was saved for.</param>
    /// <param name="seed">The seed the saved sampler had.</param>
    /// <param name="epoch">The saved <see cref="Epoch"/>.</param>
    /// <param name="offset">The saved <see cref="Offset"/>, in [0, <paramref name="rowCount"/>).</param>
    public static PromptSampler Restore(int rowCount, int seed, int epoch, int offset) => new(rowCount, seed, epoch, offset);

    /// <summary>Number of rows the sampler permutes.</summary>
    public int RowCount { get; }

    /// <summary>The seed of every epoch's permutation.</summary>
    public int Seed { get; }

    /// <summary>The epoch the next row comes from (0 first).</summary>
    public int Epoch { get; private set; }

    /// <summary>How many rows of <see cref="Epoch"/> have been served; always below <see cref="RowCount"/>.</summary>
    public int Offset { get; private set; }

    /// <summary>The next <paramref name="count"/> row indices, crossing into the next epoch where one ends.</summary>
    /// <param name="count">How many; 0 or more.</param>
    public int[] Next(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var indices = new int[count];
        for (int i = 0; i < count; i++) indices[i] = NextIndex();
        return indices;
    }

    /// <summary>The next row index.</summary>
    internal int NextIndex()
    {
        _order ??= Permutation(RowCount, Seed, Epoch);
        int index = _order[Offset];
        if (++Offset == RowCount)
        {
            Epoch = checked(Epoch + 1);
            Offset = 0;
            _order = null;
        }
        return index;
    }

    /// <summary>The order of epoch <paramref name="epoch"/>: a permutation of 0 … <paramref name="rowCount"/> − 1.</summary>
    /// <param name="rowCount">Number of rows; at least 1.</param>
    /// <param name="seed">The sampler's seed.</param>
    /// <param name="epoch">The epoch; 0 or more.</param>
    public static int[] Permutation(int rowCount, int seed, int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rowCount, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        var random = new SplitMix64(((ulong)(uint)seed << 32) | (uint)epoch);
        var order = new int[rowCount];
        for (int i = 0; i < rowCount; i++) order[i] = i;
        for (int i = rowCount - 1; i > 0; i--)
        {
            int j = random.NextBelow(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}

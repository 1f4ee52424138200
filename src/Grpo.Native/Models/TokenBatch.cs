using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Models;

/// <summary>
/// Sequences of different lengths packed one after another into M token rows, with no padding:
/// sequence b occupies rows [Starts[b], Starts[b+1]) and its positions count from 0. The forward
/// pass spends work only on real tokens; attention never crosses a sequence boundary.
/// </summary>
public sealed class TokenBatch : IDisposable
{
    private TokenBatch(Device device, int[] ids, int[] positions, int[] starts)
    {
        HostIds = ids;
        HostStarts = starts;
        try
        {
            Ids = device.FromArray<int>(ids, ids.Length);
            Positions = device.FromArray<int>(positions, positions.Length);
            SeqStarts = device.FromArray<int>(starts, starts.Length);
        }
        catch
        {
            Dispose(); // out of memory part-way: free what was allocated
            throw;
        }
    }

    /// <summary>(M) token ids.</summary>
    public Tensor<int> Ids { get; }

    /// <summary>(M) position of each row within its sequence.</summary>
    public Tensor<int> Positions { get; }

    /// <summary>(B+1) cumulative row offsets: 0, end of sequence 0, ..., M.</summary>
    public Tensor<int> SeqStarts { get; }

    /// <summary>(M) the token ids on the host.</summary>
    public IReadOnlyList<int> HostIds { get; }

    /// <summary>(B+1) the offsets on the host.</summary>
    public IReadOnlyList<int> HostStarts { get; }

    /// <summary>M: token rows.</summary>
    public int TokenCount => HostIds.Count;

    /// <summary>B: sequences.</summary>
    public int SequenceCount => HostStarts.Count - 1;

    /// <summary>Packs <paramref name="sequences"/> on <paramref name="device"/>.</summary>
    /// <param name="device">Where the tensors live.</param>
    /// <param name="sequences">B token-id lists, each non-empty.</param>
    /// <param name="vocabularySize">Ids must lie in [0, vocabularySize).</param>
    /// <param name="maxPositions">The model's context: no sequence may be longer.</param>
    /// <exception cref="ArgumentException">No sequences, an empty one, one longer than the context, or an id outside the vocabulary; the message names which.</exception>
    public static TokenBatch Create(Device device, IReadOnlyList<IReadOnlyList<int>> sequences, int vocabularySize, int maxPositions)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(sequences);
        if (sequences.Count == 0)
            throw new ArgumentException("'sequences' is empty; pass at least one token sequence.", nameof(sequences));
        var starts = new int[sequences.Count + 1];
        for (int b = 0; b < sequences.Count; b++)
        {
            var s = sequences[b] ?? throw new ArgumentNullException(nameof(sequences), $"'sequences'[{b}] is null.");
            if (s.Count == 0)
                throw new ArgumentException($"'sequences'[{b}] is empty; every sequence needs at least one token.", nameof(sequences));
            if (s.Count > maxPositions)
                throw new ArgumentException(
                    $"'sequences'[{b}] has {s.Count} tokens but the model's context is {maxPositions}; shorten the prompt or the completion length.",
                    nameof(sequences));
            starts[b + 1] = checked(starts[b] + s.Count);
        }
        var ids = new int[starts[^1]];
        var positions = new int[ids.Length];
        for (int b = 0; b < sequences.Count; b++)
        {
            var s = sequences[b];
            for (int t = 0; t < s.Count; t++)
            {
                int id = s[t];
                if ((uint)id >= (uint)vocabularySize)
                    throw new ArgumentOutOfRangeException(nameof(sequences), id,
                        $"'sequences'[{b}][{t}] is token id {id}, outside the vocabulary [0, {vocabularySize}); check the tokenizer matches the model.");
                ids[starts[b] + t] = id;
                positions[starts[b] + t] = t;
            }
        }
        return new TokenBatch(device, ids, positions, starts);
    }

    /// <summary>Frees the device tensors.</summary>
    public void Dispose()
    {
        Ids?.Dispose();
        Positions?.Dispose();
        SeqStarts?.Dispose();
    }
}

namespace Grpo.Native.Ilgpu;

/// <summary>
/// What the host knows of an int buffer's contents without reading it back: for each element a range
/// [low, high] that holds its value. An upload from the host makes the range the value itself; a kernel that
/// guarantees its outputs (the sampler writes token ids in [0, V)) sets that range; before either the range is
/// everything. Index checks read these instead of downloading what the host itself uploaded, so a decode
/// step validates its indices with no copy. Ranges are updated when work is queued, in stream order.
/// Int buffers hold token ids, positions and offsets, so the two host arrays stay small.
/// </summary>
internal sealed class KnownIndices
{
    private readonly int[] _low;  // (length) the least value each element may hold
    private readonly int[] _high; // (length) the greatest

    public KnownIndices(long length)
    {
        _low = new int[checked((int)length)];
        _high = new int[_low.Length];
        Forget(0, _low.Length);
    }

    /// <summary>The host wrote <paramref name="values"/> at <paramref name="offset"/>.</summary>
    public void Uploaded(long offset, ReadOnlySpan<int> values)
    {
        values.CopyTo(_low.AsSpan((int)offset));
        values.CopyTo(_high.AsSpan((int)offset));
    }

    /// <summary>A kernel wrote values in [<paramref name="low"/>, <paramref name="high"/>] to the window.</summary>
    public void Bounded(long offset, long length, int low, int high)
    {
        _low.AsSpan((int)offset, (int)length).Fill(low);
        _high.AsSpan((int)offset, (int)length).Fill(high);
    }

    /// <summary>Something wrote the window that the host cannot vouch for.</summary>
    public void Forget(long offset, long length) => Bounded(offset, length, int.MinValue, int.MaxValue);

    /// <summary>The window's values when the host knows each exactly (its last write came from the host).</summary>
    public bool TryExact(long offset, long length, out ReadOnlySpan<int> values)
    {
        var low = _low.AsSpan((int)offset, (int)length);
        values = low;
        return low.SequenceEqual(_high.AsSpan((int)offset, (int)length));
    }

    /// <summary>The least value each element of the window may hold.</summary>
    public ReadOnlySpan<int> Low(long offset, long length) => _low.AsSpan((int)offset, (int)length);

    /// <summary>The greatest value each element of the window may hold.</summary>
    public ReadOnlySpan<int> High(long offset, long length) => _high.AsSpan((int)offset, (int)length);
}

namespace Grpo.Native.Tensors;

/// <summary>The dimensions of a tensor, row-major (the last dimension is contiguous).</summary>
public readonly record struct TensorShape
{
    private readonly int[] _dims;

    /// <summary>Creates a shape; every dimension must be at least 1.</summary>
    /// <exception cref="ArgumentException">A dimension is zero or negative, or there are none.</exception>
    public TensorShape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        if (dims.Length == 0)
            throw new ArgumentException("A tensor needs at least one dimension.", nameof(dims));
        long count = 1;
        foreach (int d in dims)
        {
            if (d <= 0)
                throw new ArgumentException(
                    $"Every dimension must be at least 1, but the shape was {Format(dims)}.", nameof(dims));
            count = checked(count * d);
        }
        _dims = (int[])dims.Clone();
        ElementCount = count;
    }

    /// <summary>Number of dimensions.</summary>
    public int Rank => _dims.Length;

    /// <summary>Product of the dimensions.</summary>
    public long ElementCount { get; }

    /// <summary>The size of dimension <paramref name="axis"/>.</summary>
    public int this[int axis] => _dims[axis];

    /// <summary>A copy of the dimensions.</summary>
    public int[] ToArray() => (int[])_dims.Clone();

    /// <summary>True when both shapes have the same dimensions.</summary>
    public bool Equals(TensorShape other) => _dims.AsSpan().SequenceEqual(other._dims);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in _dims) hash.Add(d);
        return hash.ToHashCode();
    }

    /// <summary>Formats as <c>[2, 3]</c>.</summary>
    public override string ToString() => Format(_dims);

    private static string Format(int[] dims) => "[" + string.Join(", ", dims) + "]";
}

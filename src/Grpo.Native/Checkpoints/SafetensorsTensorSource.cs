namespace Grpo.Native.Checkpoints;

/// <summary>
/// One tensor for <see cref="SafetensorsWriter"/>, read piece by piece as the file is written: <see cref="Read"/> fills
/// a span with the row-major values [start, start + piece.Length).
/// </summary>
/// <param name="Name">The tensor's name in the file.</param>
/// <param name="Shape">Its shape; product(Shape) values are read.</param>
/// <param name="Read">Fills one piece.</param>
public sealed record SafetensorsTensorSource(string Name, int[] Shape, SafetensorsTensorSource.PieceReader Read)
{
    /// <summary>Writes the values [start, start + piece.Length) into <paramref name="piece"/>.</summary>
    public delegate void PieceReader(Span<float> piece, long start);

    /// <summary>product(Shape).</summary>
    public long ElementCount => CountOf(Name, Shape);

    /// <summary>product(<paramref name="shape"/>), refusing a negative dimension with a message naming the tensor.</summary>
    internal static long CountOf(string name, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape, "tensors");
        long count = 1;
        foreach (int dim in shape)
        {
            if (dim < 0)
                throw new ArgumentException($"Tensor '{name}' has shape [{string.Join(", ", shape)}] with a negative dimension.", "tensors");
            count = checked(count * dim);
        }
        return count;
    }
}

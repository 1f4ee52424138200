using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

/// <summary>
/// Rejects an output that shares memory with a tensor the same call reads or writes. Views make
/// this easy to do by accident (parameters and activations living in one buffer), and the
/// backends read inputs while they write outputs, so an overlap gives silently wrong numbers.
/// </summary>
internal static class Aliasing
{
    /// <summary>Throws when <paramref name="output"/> and <paramref name="other"/> are views of overlapping elements of one storage.</summary>
    public static void NoOverlap(Tensor<float>? output, string outputName, Tensor<float>? other, string otherName)
    {
        // A missing or disposed tensor is reported by the shape and device checks.
        if (output is null || other is null || output.IsDisposed || other.IsDisposed) return;
        if (!ReferenceEquals(output.Storage, other.Storage)) return;
        if (output.Offset < other.Offset + other.Length && other.Offset < output.Offset + output.Length)
            throw new ArgumentException(
                $"'{outputName}' shares memory with '{otherName}' (elements [{output.Offset}, {output.Offset + output.Length}) and " +
                $"[{other.Offset}, {other.Offset + other.Length}) of one buffer); the operation reads one while writing the other, " +
                $"so give '{outputName}' its own memory.", outputName);
    }

    /// <summary>
    /// Throws when <paramref name="output"/> overlaps <paramref name="other"/> without being exactly the same elements: an
    /// element-wise update may write each element where it read it, but a shifted overlap reads what it already overwrote.
    /// </summary>
    public static void SameOrNoOverlap(Tensor<float>? output, string outputName, Tensor<float>? other, string otherName)
    {
        if (output is not null && other is not null && ReferenceEquals(output.Storage, other.Storage) &&
            output.Offset == other.Offset && output.Length == other.Length) return;
        NoOverlap(output, outputName, other, otherName);
    }
}

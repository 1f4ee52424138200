using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Models;

/// <summary>One named tensor of a <see cref="ParameterSet"/>: where it lies in the buffer and its shape.</summary>
/// <param name="Name">The Hugging Face checkpoint name, e.g. <c>h.0.attn.c_attn.weight</c>.</param>
/// <param name="Shape">The shape as the library stores it (nn.Linear's (out, in) for every linear weight).</param>
/// <param name="Offset">First element in the buffer.</param>
/// <param name="TransposedOnDisk">True for GPT-2's Conv1D weights, stored (in, out) in checkpoints.</param>
public sealed record ParameterInfo(string Name, int[] Shape, long Offset, bool TransposedOnDisk)
{
    /// <summary>Number of elements.</summary>
    public long Length => Shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>The shape as a checkpoint stores it (rows and columns swapped when <see cref="TransposedOnDisk"/>).</summary>
    public int[] DiskShape => TransposedOnDisk ? [Shape[1], Shape[0]] : Shape;
}

/// <summary>
/// Every tensor of a model in ONE contiguous device buffer, with a named view of each (llm.c's
/// layout): the optimizer, gradient clipping and zeroing run once over the whole buffer, and a
/// second set with the same layout holds the gradients (or the AdamW moments) element for element.
/// </summary>
public sealed class ParameterSet : IDisposable
{
    private readonly Dictionary<string, Tensor<float>> _views = new(StringComparer.Ordinal);

    /// <summary>Allocates a buffer for <paramref name="layout"/> (uninitialised; see <see cref="Zero"/>).</summary>
    public ParameterSet(Device device, IReadOnlyList<ParameterInfo> layout)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(layout);
        Layout = layout;
        long total = layout.Count == 0 ? 0 : layout[^1].Offset + layout[^1].Length;
        if (total == 0) throw new ArgumentException("A parameter set needs at least one tensor.", nameof(layout));
        if (total > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(layout), total, $"{total} parameters do not fit one buffer (at most {int.MaxValue}).");
        Buffer = device.Allocate<float>((int)total);
        foreach (var p in layout) _views.Add(p.Name, Buffer.Slice(p.Offset, p.Shape));
    }

    /// <summary>(P) all elements.</summary>
    public Tensor<float> Buffer { get; }

    /// <summary>The tensors in buffer order.</summary>
    public IReadOnlyList<ParameterInfo> Layout { get; }

    /// <summary>P: the number of elements.</summary>
    public long Count => Buffer.Length;

    /// <summary>The view of tensor <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No tensor has that name.</exception>
    public Tensor<float> this[string name] => _views.TryGetValue(name, out var view) ? view
        : throw new KeyNotFoundException($"The model has no tensor '{name}'; its tensors are listed by Layout.");

    /// <summary>True when a tensor has that name.</summary>
    public bool Contains(string name) => _views.ContainsKey(name);

    /// <summary>Elements staged per piece by <see cref="WriteInPieces"/>: 4 MiB.</summary>
    public const int PieceElements = 1 << 20;

    /// <summary>Writes the elements [start, start + piece.Length) of one tensor into <paramref name="piece"/>.</summary>
    public delegate void PieceWriter(Span<float> piece, long start);

    /// <summary>
    /// Fills tensor <paramref name="parameter"/> piece by piece (in element order) through <paramref name="staging"/>, so that
    /// initialising or loading a model never holds a host copy of all of it, nor of its largest tensor (Qwen2.5-0.5B's
    /// embedding alone is 545 MB).
    /// </summary>
    /// <param name="parameter">A tensor of this set's layout.</param>
    /// <param name="staging">A host array of at least one element (see <see cref="PieceElements"/>), reused across calls.</param>
    /// <param name="write">Fills each piece.</param>
    public void WriteInPieces(ParameterInfo parameter, float[] staging, PieceWriter write)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        ArgumentNullException.ThrowIfNull(staging);
        ArgumentNullException.ThrowIfNull(write);
        if (staging.Length == 0) throw new ArgumentException("The staging array needs at least one element.", nameof(staging));
        for (long start = 0; start < parameter.Length; start += staging.Length)
        {
            int n = (int)Math.Min(staging.Length, parameter.Length - start);
            var piece = staging.AsSpan(0, n);
            write(piece, start);
            Buffer.CopyFrom(parameter.Offset + start, piece);
        }
    }

    /// <summary>Sets every element to 0.</summary>
    public void Zero() => Buffer.Fill(0f);

    /// <summary>Frees the buffer.</summary>
    public void Dispose() => Buffer.Dispose();
}

using System.Buffers.Binary;
using System.Text.Json;

namespace Grpo.Native.Checkpoints;

/// <summary>
/// Writes safetensors files the way Hugging Face does (sorted names, header padded with spaces to a
/// multiple of 8 bytes), atomically: a crash or exception never leaves a half-written checkpoint.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/>: first to a temporary file in the same
    /// folder, flushed to disk, then moved over <paramref name="path"/>. On any exception the temporary
    /// file is deleted and an existing file at <paramref name="path"/> is left untouched.
    /// </summary>
    /// <param name="path">destination file; its folder must exist</param>
    /// <param name="tensors">name, shape and row-major fp32 values (product(shape) of them) of each tensor</param>
    /// <param name="metadata">optional <c>__metadata__</c> strings (e.g. <c>{"format": "pt"}</c>)</param>
    /// <param name="dtype">element type to store; F16 and BF16 round to nearest even</param>
    public static void Write(
        string path,
        IEnumerable<(string name, int[] shape, ReadOnlyMemory<float> data)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null,
        SafetensorsDType dtype = SafetensorsDType.F32)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Write(path, tensors.Select(t => FromMemory(t.name, t.shape, t.data)), metadata, dtype);
    }

    /// <summary>
    /// The same for tensors read piece by piece while the file is written (from a device, say), so that saving never
    /// holds a host copy of all of them: each source is asked for consecutive pieces of its row-major values.
    /// </summary>
    public static void Write(
        string path,
        IEnumerable<SafetensorsTensorSource> tensors,
        IReadOnlyDictionary<string, string>? metadata = null,
        SafetensorsDType dtype = SafetensorsDType.F32)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        _ = dtype.Size();
        // The header needs every offset before any data, so the (cheap) list of tensors is gathered first.
        var list = Collect(tensors);
        byte[] header = BuildHeader(list, metadata, dtype);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            const int ChunkElements = 1 << 20;
            long largest = list.Count == 0 ? 0 : list.Max(t => t.ElementCount);
            var values = new float[Math.Min(ChunkElements, Math.Max(1, largest))];
            var buffer = new byte[values.Length * dtype.Size()];
            foreach (var tensor in list)
            {
                for (long done = 0; done < tensor.ElementCount; done += values.Length)
                {
                    int n = (int)Math.Min(values.Length, tensor.ElementCount - done);
                    tensor.Read(values.AsSpan(0, n), done);
                    var bytes = buffer.AsSpan(0, n * dtype.Size());
                    SafetensorsDTypes.Encode(values.AsSpan(0, n), dtype, bytes);
                    stream.Write(bytes);
                }
            }
        });
    }

    /// <summary>A source over values already in memory; their count must be product(shape).</summary>
    private static SafetensorsTensorSource FromMemory(string name, int[] shape, ReadOnlyMemory<float> data)
    {
        ArgumentNullException.ThrowIfNull(shape, "tensors");
        long count = SafetensorsTensorSource.CountOf(name, shape);
        if (count != data.Length)
            throw new ArgumentException(
                $"Tensor '{name}' has shape [{string.Join(", ", shape)}] ({count} elements) but {data.Length} values; pass product(shape) values.",
                "tensors");
        return new SafetensorsTensorSource(name, shape, (piece, start) => data.Span.Slice((int)start, piece.Length).CopyTo(piece));
    }

    private static List<SafetensorsTensorSource> Collect(IEnumerable<SafetensorsTensorSource> tensors)
    {
        var list = new List<SafetensorsTensorSource>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tensor in tensors)
        {
            ArgumentNullException.ThrowIfNull(tensor, nameof(tensors));
            string name = tensor.Name;
            if (string.IsNullOrEmpty(name) || name == "__metadata__")
                throw new ArgumentException($"Tensor name '{name}' is empty or reserved; give every tensor a distinct name.", nameof(tensors));
            if (!names.Add(name))
                throw new ArgumentException($"Tensor '{name}' appears twice in '{nameof(tensors)}'; names must be unique.", nameof(tensors));
            list.Add(tensor with { Shape = (int[])tensor.Shape.Clone() });
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return list;
    }

    private static byte[] BuildHeader(
        List<SafetensorsTensorSource> list,
        IReadOnlyDictionary<string, string>? metadata, SafetensorsDType dtype)
    {
        using var json = new MemoryStream();
        using (var writer = new Utf8JsonWriter(json))
        {
            writer.WriteStartObject();
            if (metadata is not null && metadata.Count > 0)
            {
                writer.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, shape, _) in list)
            {
                long end = checked(offset + SafetensorsTensorSource.CountOf(name, shape) * dtype.Size());
                writer.WriteStartObject(name);
                writer.WriteString("dtype", dtype.HeaderName());
                writer.WriteStartArray("shape");
                foreach (int dim in shape) writer.WriteNumberValue(dim);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(end);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset = end;
            }
            writer.WriteEndObject();
        }
        // Pad with spaces so that the data starts 8-byte aligned, as the reference implementation does.
        int length = checked((int)json.Length);
        int padded = (length + 7) / 8 * 8;
        var header = new byte[padded];
        json.GetBuffer().AsSpan(0, length).CopyTo(header);
        header.AsSpan(length).Fill((byte)' ');
        return header;
    }
}

using System.Buffers.Binary;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace Grpo.Native.Checkpoints;

/// <summary>One tensor of a safetensors checkpoint: its element type, shape and byte range in its shard.</summary>
/// <param name="Name">the Hugging Face tensor name, as stored</param>
/// <param name="DType">element type</param>
/// <param name="Shape">dimensions (empty for a scalar)</param>
/// <param name="ElementCount">product of <paramref name="Shape"/></param>
/// <param name="ShardPath">the file that holds the data</param>
/// <param name="DataBegin">first byte, relative to the start of the shard's data section</param>
/// <param name="DataEnd">one past the last byte, relative to the start of the data section</param>
public sealed record TensorInfo(
    string Name, SafetensorsDType DType, IReadOnlyList<int> Shape, long ElementCount,
    string ShardPath, long DataBegin, long DataEnd);

/// <summary>
/// Reads a Hugging Face safetensors checkpoint (one file, or a folder with a sharded
/// <c>model.safetensors.index.json</c>). The header is validated completely when the file is opened;
/// tensor data is streamed from the file on demand.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted; real headers are a few hundred KB.</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    /// <summary>The prefix some GPT-2 checkpoints put before every parameter name.</summary>
    public const string TransformerPrefix = "transformer.";

    private readonly Dictionary<string, TensorInfo> _tensors;
    private readonly Dictionary<string, Shard> _shards;
    private bool _disposed;

    private sealed class Shard(string path, SafeFileHandle handle, long dataStart)
    {
        public string Path { get; } = path;
        public SafeFileHandle Handle { get; } = handle;
        public long DataStart { get; } = dataStart;
        public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);
    }

    private SafetensorsFile(Dictionary<string, TensorInfo> tensors, Dictionary<string, Shard> shards, IReadOnlyDictionary<string, string> metadata)
    {
        _tensors = tensors;
        _shards = shards;
        Metadata = metadata;
    }

    /// <summary>Every tensor name, as stored in the file(s).</summary>
    public IReadOnlyCollection<string> Names => _tensors.Keys;

    /// <summary>The <c>__metadata__</c> string map (of the first shard for a sharded checkpoint).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Names of trainable parameters: every tensor except saved buffers (GPT-2's causal masks
    /// <c>attn.bias</c> and <c>attn.masked_bias</c>, older Llama checkpoints' <c>rotary_emb.inv_freq</c>), sorted ordinally.
    /// </summary>
    public IReadOnlyList<string> ParameterNames =>
        _tensors.Keys.Where(n => !IsBuffer(n)).OrderBy(n => n, StringComparer.Ordinal).ToArray();

    /// <summary>
    /// True for non-parameter buffers some checkpoints carry: GPT-2's <c>h.0.attn.bias</c> and
    /// <c>h.0.attn.masked_bias</c>, and the RoPE <c>rotary_emb.inv_freq</c> of older Llama checkpoints
    /// (recomputed from rope_theta here).
    /// </summary>
    public static bool IsBuffer(string name) =>
        name == "attn.bias" || name == "attn.masked_bias"
        || name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
        || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    /// <summary>Opens one <c>.safetensors</c> file and validates its header.</summary>
    /// <exception cref="FileNotFoundException">the file does not exist</exception>
    /// <exception cref="CheckpointFormatException">the header or data layout is malformed</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        var shard = OpenShard(Path.GetFullPath(path), tensors);
        return new SafetensorsFile(tensors, new Dictionary<string, Shard> { [shard.Path] = shard }, shard.Metadata);
    }

    /// <summary>
    /// Opens the checkpoint in a Hugging Face model folder: <c>model.safetensors</c>, or else the shards
    /// listed in the <c>weight_map</c> of <c>model.safetensors.index.json</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">neither file exists, or a listed shard is missing</exception>
    /// <exception cref="CheckpointFormatException">the index or a shard is malformed</exception>
    public static SafetensorsFile OpenFolder(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string single = Path.Combine(directory, "model.safetensors");
        if (File.Exists(single)) return Open(single);
        string index = Path.GetFullPath(Path.Combine(directory, "model.safetensors.index.json"));
        if (!File.Exists(index))
            throw new FileNotFoundException(
                $"'{Path.GetFullPath(directory)}' holds neither model.safetensors nor model.safetensors.index.json; " +
                "pass the folder of a Hugging Face safetensors checkpoint (download it with its *.safetensors files).", index);
        return OpenSharded(index);
    }

    private static SafetensorsFile OpenSharded(string indexPath)
    {
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        long length = new FileInfo(indexPath).Length;
        if (length > MaxHeaderBytes)
            throw new CheckpointFormatException($"'{indexPath}': the index is {length} bytes, more than the {MaxHeaderBytes}-byte cap.");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException($"'{indexPath}': the index has no \"weight_map\" object.");
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointFormatException($"'{indexPath}': weight_map entry '{entry.Name}' is not a file name string.");
                string file = entry.Value.GetString()!;
                if (file.Length == 0 || Path.GetFileName(file) != file)
                    throw new CheckpointFormatException(
                        $"'{indexPath}': weight_map entry '{entry.Name}' names '{file}', which is not a plain file name in the same folder.");
                if (!weightMap.TryAdd(entry.Name, file))
                    throw new CheckpointFormatException($"'{indexPath}': weight_map lists tensor '{entry.Name}' twice.");
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"'{indexPath}': the index is not valid JSON: {e.Message}", e);
        }
        if (weightMap.Count == 0)
            throw new CheckpointFormatException($"'{indexPath}': weight_map is empty.");

        string folder = Path.GetDirectoryName(indexPath)!;
        var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        var shards = new Dictionary<string, Shard>(StringComparer.Ordinal);
        try
        {
            foreach (string file in weightMap.Values.Distinct().Order(StringComparer.Ordinal))
            {
                var shardTensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
                var shard = OpenShard(Path.Combine(folder, file), shardTensors);
                shards.Add(shard.Path, shard);
                foreach (var (name, info) in shardTensors)
                {
                    // A shard may hold tensors the index does not list; only listed ones belong to the model.
                    if (weightMap.TryGetValue(name, out string? owner) && owner == file) tensors.Add(name, info);
                }
            }
            foreach (var (name, file) in weightMap)
            {
                if (!tensors.ContainsKey(name))
                    throw new CheckpointFormatException($"'{indexPath}': tensor '{name}' is mapped to '{file}', which does not contain it.");
            }
        }
        catch
        {
            foreach (var shard in shards.Values) shard.Handle.Dispose();
            throw;
        }
        var metadata = shards.Values.First().Metadata;
        return new SafetensorsFile(tensors, shards, metadata);
    }

    private static Shard OpenShard(string path, Dictionary<string, TensorInfo> tensors)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"Safetensors file '{path}' does not exist; check the path, or download the checkpoint's *.safetensors files.", path);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            long fileLength = RandomAccess.GetLength(handle);
            if (fileLength < 8)
                throw new CheckpointFormatException($"'{path}': the file has {fileLength} bytes, too few for the 8-byte header length.");
            Span<byte> prefix = stackalloc byte[8];
            ReadExactly(handle, path, prefix, 0, "the header length");
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > (ulong)MaxHeaderBytes)
                throw new CheckpointFormatException($"'{path}': the header length {headerLength} is over the {MaxHeaderBytes}-byte cap.");
            if ((long)headerLength > fileLength - 8)
                throw new CheckpointFormatException(
                    $"'{path}': the header length {headerLength} runs past the end of the {fileLength}-byte file (truncated?).");
            var header = new byte[(int)headerLength];
            ReadExactly(handle, path, header, 8, "the header");
            long dataStart = 8 + (long)headerLength;
            var shard = new Shard(path, handle, dataStart);
            ParseHeader(path, header, fileLength - dataStart, shard, tensors);
            return shard;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static void ParseHeader(string path, byte[] header, long dataLength, Shard shard, Dictionary<string, TensorInfo> tensors)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException($"'{path}': the header is JSON {doc.RootElement.ValueKind}, not an object.");
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new CheckpointFormatException($"'{path}': the header lists '{property.Name}' twice.");
                if (property.Name == "__metadata__")
                {
                    ParseMetadata(path, property.Value, shard.Metadata);
                    continue;
                }
                tensors.Add(property.Name, ParseTensor(path, property.Name, property.Value, dataLength));
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"'{path}': the header is not valid JSON: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            // Malformed UTF-8 inside a property name surfaces as ArgumentException from the JSON reader.
            throw new CheckpointFormatException($"'{path}': the header is not valid UTF-8 JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            throw new CheckpointFormatException($"'{path}': the header has an unexpected JSON value: {e.Message}", e);
        }

        // Tensors must not share bytes: sort by start and compare each with the previous end.
        TensorInfo? previous = null;
        foreach (var info in tensors.Values.Where(t => t.DataEnd > t.DataBegin).OrderBy(t => t.DataBegin))
        {
            if (previous is not null && info.DataBegin < previous.DataEnd)
                throw new CheckpointFormatException(
                    $"'{path}': tensor '{info.Name}' (bytes {info.DataBegin}..{info.DataEnd}) overlaps tensor '{previous.Name}' " +
                    $"(bytes {previous.DataBegin}..{previous.DataEnd}).");
            previous = info;
        }
    }

    private static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException($"'{path}': __metadata__ is JSON {value.ValueKind}, not an object of strings.");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointFormatException($"'{path}': __metadata__ entry '{entry.Name}' is not a string.");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static TensorInfo ParseTensor(string path, string name, JsonElement value, long dataLength)
    {
        string where = $"'{path}': tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException($"{where} is JSON {value.ValueKind}, not an object with dtype, shape and data_offsets.");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointFormatException($"{where} has no \"dtype\" string.");
        string? dtypeName = dtypeElement.GetString();
        if (!SafetensorsDTypes.TryParse(dtypeName, out var dtype))
            throw new CheckpointFormatException($"{where} has dtype '{dtypeName}'; only F32, F16 and BF16 are supported.");
        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException($"{where} has no \"shape\" array.");
        var shape = new int[shapeElement.GetArrayLength()];
        long count = 1;
        int d = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out int size) || size < 0)
                throw new CheckpointFormatException($"{where} has shape dimension {d} = {dim.GetRawText()}; dimensions are integers in 0..{int.MaxValue}.");
            shape[d++] = size;
            try { count = checked(count * size); }
            catch (OverflowException)
            {
                throw new CheckpointFormatException($"{where} has shape [{string.Join(", ", shape.Take(d))}...] whose element count overflows.");
            }
        }
        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw new CheckpointFormatException($"{where} has no \"data_offsets\" array of two integers.");
        if (offsets[0].ValueKind != JsonValueKind.Number || offsets[1].ValueKind != JsonValueKind.Number
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
            throw new CheckpointFormatException($"{where} has data_offsets {offsets.GetRawText()} that are not 64-bit integers.");
        if (begin < 0 || end < begin)
            throw new CheckpointFormatException($"{where} has data_offsets [{begin}, {end}]; they must satisfy 0 <= begin <= end.");
        if (end > dataLength)
            throw new CheckpointFormatException(
                $"{where} has data_offsets [{begin}, {end}] past the end of the {dataLength}-byte data section (truncated file?).");
        long bytes;
        try { bytes = checked(count * dtype.Size()); }
        catch (OverflowException)
        {
            throw new CheckpointFormatException($"{where} has {count} elements whose byte size overflows.");
        }
        if (end - begin != bytes)
            throw new CheckpointFormatException(
                $"{where} spans {end - begin} bytes but shape [{string.Join(", ", shape)}] of {dtype} needs {bytes}.");
        return new TensorInfo(name, dtype, shape, count, path, begin, end);
    }

    /// <summary>The tensor <paramref name="name"/> exactly as stored.</summary>
    /// <exception cref="KeyNotFoundException">no tensor has that name</exception>
    public TensorInfo Get(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(name);
        if (_tensors.TryGetValue(name, out var info)) return info;
        throw new KeyNotFoundException($"The checkpoint has no tensor '{name}'; use Names (or Resolve) to find the stored name.");
    }

    /// <summary>True when a tensor has exactly that name.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>
    /// The stored name for <paramref name="name"/>, with or without the <c>transformer.</c> prefix
    /// (GPT-2 checkpoints on the hub use both spellings); null when neither exists.
    /// </summary>
    public string? TryResolve(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_tensors.ContainsKey(name)) return name;
        string alternative = name.StartsWith(TransformerPrefix, StringComparison.Ordinal)
            ? name[TransformerPrefix.Length..]
            : TransformerPrefix + name;
        return _tensors.ContainsKey(alternative) ? alternative : null;
    }

    /// <summary>Like <see cref="TryResolve"/> but throws naming both spellings when neither exists.</summary>
    public string Resolve(string name) => TryResolve(name) ?? throw new KeyNotFoundException(
        $"The checkpoint has no tensor '{name}', with or without the '{TransformerPrefix}' prefix; use Names to list the stored names.");

    /// <summary>Reads tensor <paramref name="name"/> converted to fp32.</summary>
    public float[] ReadFloat32(string name)
    {
        var info = Get(name);
        if (info.ElementCount > Array.MaxLength)
            throw new CheckpointFormatException($"'{info.ShardPath}': tensor '{name}' has {info.ElementCount} elements, more than one array holds.");
        var result = new float[info.ElementCount];
        ReadInto(name, result);
        return result;
    }

    /// <summary>Reads tensor <paramref name="name"/> converted to fp32 into <paramref name="destination"/>.</summary>
    /// <param name="name">stored tensor name</param>
    /// <param name="destination">(ElementCount) values</param>
    public void ReadInto(string name, Span<float> destination)
    {
        var info = Get(name);
        if (destination.Length != info.ElementCount)
            throw new ArgumentException(
                $"'{nameof(destination)}' has {destination.Length} elements but tensor '{name}' has {info.ElementCount}; size it from Get(name).ElementCount.",
                nameof(destination));
        ReadInto(name, destination, firstElement: 0);
    }

    /// <summary>
    /// Reads elements [<paramref name="firstElement"/>, firstElement + destination.Length) of tensor <paramref name="name"/>
    /// (row-major, as stored) converted to fp32: a large tensor is loaded piece by piece without a host copy of all of it.
    /// </summary>
    public void ReadInto(string name, Span<float> destination, long firstElement)
    {
        var info = Get(name);
        if (firstElement < 0 || firstElement + destination.Length > info.ElementCount)
            throw new ArgumentOutOfRangeException(nameof(firstElement), firstElement,
                $"Elements [{firstElement}, {firstElement + destination.Length}) are not inside tensor '{name}' of {info.ElementCount} elements.");
        var shard = _shards[info.ShardPath];
        int size = info.DType.Size();
        const int ChunkElements = 1 << 18;
        var buffer = new byte[Math.Min(ChunkElements, Math.Max(1, destination.Length)) * size];
        long offset = shard.DataStart + info.DataBegin + firstElement * size;
        for (int done = 0; done < destination.Length;)
        {
            int n = Math.Min(ChunkElements, destination.Length - done);
            var bytes = buffer.AsSpan(0, n * size);
            ReadExactly(shard.Handle, shard.Path, bytes, offset, $"tensor '{name}'");
            SafetensorsDTypes.Decode(bytes, info.DType, destination.Slice(done, n));
            offset += bytes.Length;
            done += n;
        }
    }

    private static void ReadExactly(SafeFileHandle handle, string path, Span<byte> buffer, long offset, string what)
    {
        while (buffer.Length > 0)
        {
            int read = RandomAccess.Read(handle, buffer, offset);
            if (read <= 0)
                throw new CheckpointFormatException($"'{path}': the file ends at byte {offset} while reading {what} (truncated file?).");
            buffer = buffer[read..];
            offset += read;
        }
    }

    /// <summary>Closes the file handles.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var shard in _shards.Values) shard.Handle.Dispose();
    }
}

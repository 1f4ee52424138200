using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;

namespace Grpo.Native.Models;

public sealed partial class TransformerModel
{
    /// <summary>The weights file <see cref="Save"/> writes.</summary>
    public const string WeightsFileName = "model.safetensors";

    /// <summary>
    /// Loads a Hugging Face model folder (config.json and model.safetensors, or a sharded
    /// model.safetensors.index.json) of the gpt2, llama, qwen2 or qwen3 family: F32, F16 and BF16 weights
    /// become fp32; GPT-2's Conv1D weights are transposed into nn.Linear's layout.
    /// </summary>
    /// <exception cref="FileNotFoundException">config.json or the weights are missing.</exception>
    /// <exception cref="CheckpointFormatException">
    /// The config is invalid, or disagrees with the weights: a tensor the config implies is missing or has
    /// another shape, or the file holds parameters the config does not describe (a wrong layer count, say).
    /// </exception>
    public static TransformerModel Load(Device device, string folder)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var config = ModelConfig.Load(folder);
        using var file = SafetensorsFile.OpenFolder(folder);
        // Names and shapes are checked before anything is allocated: a config that disagrees with the
        // weights (a hostile one with huge sizes, say) fails here, not in a multi-gigabyte allocation.
        CheckAgainst(TransformerLayout.For(config), config, file, folder);
        var model = new TransformerModel(device, config);
        try
        {
            model.LoadWeights(file);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Throws unless the file holds exactly the tensors the config implies, with their shapes.</summary>
    private static void CheckAgainst(IReadOnlyList<ParameterInfo> layout, ModelConfig config, SafetensorsFile file, string folder)
    {
        var expected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in layout)
        {
            string stored = file.TryResolve(p.Name) ?? throw new CheckpointFormatException(
                $"'{folder}': config.json describes a {config.ModelType} model with tensor '{p.Name}' (shape [{string.Join(", ", p.DiskShape)}]) " +
                "but the weights do not contain it; check that config.json belongs to these weights.");
            expected.Add(stored);
            var info = file.Get(stored);
            if (!info.Shape.SequenceEqual(p.DiskShape))
                throw new CheckpointFormatException(
                    $"'{folder}': tensor '{stored}' has shape [{string.Join(", ", info.Shape)}] but config.json implies " +
                    $"[{string.Join(", ", p.DiskShape)}]; the config disagrees with the weights.");
        }
        // A tied model's checkpoint may still carry lm_head.weight (a copy of the embedding): not an error.
        var unexpected = file.ParameterNames
            .Where(n => !expected.Contains(n) && !(config.TieWordEmbeddings && n == "lm_head.weight"))
            .OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0)
            throw new CheckpointFormatException(
                $"'{folder}': the weights hold {unexpected.Count} tensor(s) that config.json does not describe " +
                $"({string.Join(", ", unexpected.Take(5))}{(unexpected.Count > 5 ? ", ..." : "")}); check num_hidden_layers / n_layer and the model type.");
    }

    private void LoadWeights(SafetensorsFile file)
    {
        // Piece by piece: never a host copy of the whole model (2 GB at 0.5 B parameters) beside the device's.
        var staging = new float[Math.Min(ParameterSet.PieceElements, Parameters.Count)];
        foreach (var p in Parameters.Layout)
        {
            string stored = file.Resolve(p.Name);
            if (p.TransposedOnDisk)
            {
                // GPT-2's Conv1D weights (at most a few million elements): transposed whole on the host.
                var transposed = new float[p.Length];
                Transpose(file.ReadFloat32(stored), p.DiskShape[0], p.DiskShape[1], transposed);
                Parameters.WriteInPieces(p, staging, (piece, start) => transposed.AsSpan((int)start, piece.Length).CopyTo(piece));
            }
            else
                Parameters.WriteInPieces(p, staging, (piece, start) => file.ReadInto(stored, piece, start));
        }
    }

    /// <summary>
    /// Saves config.json and model.safetensors into <paramref name="folder"/> (created if needed) in
    /// the Hugging Face layout, so transformers and this library load it unchanged. Each file is
    /// written to a temporary file and renamed: a crash never leaves a half-written file.
    /// </summary>
    /// <param name="folder">The model folder.</param>
    /// <param name="dtype">Element type on disk (F32 keeps every bit; BF16/F16 round to nearest even).</param>
    public void Save(string folder, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        SafetensorsWriter.Write(Path.Combine(folder, WeightsFileName), HuggingFaceSources(),
            new Dictionary<string, string> { ["format"] = "pt" }, dtype);
        AtomicFile.WriteAllText(Path.Combine(folder, "config.json"), Config.ToJson());
    }

    /// <summary>
    /// Every tensor of a buffer laid out like <see cref="Parameters"/> (the parameters, or their
    /// gradients) under its Hugging Face name and on-disk shape, ready for <see cref="SafetensorsWriter"/>.
    /// </summary>
    /// <param name="buffer">(P) host copy of a buffer with this model's layout.</param>
    /// <param name="prefix">Put before every name, e.g. "grad.".</param>
    public IEnumerable<(string name, int[] shape, ReadOnlyMemory<float> data)> ToHuggingFace(float[] buffer, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if (buffer.Length != Parameters.Count)
            throw new ArgumentException($"'{nameof(buffer)}' has {buffer.Length} elements but the model has {Parameters.Count} parameters.", nameof(buffer));
        foreach (var p in Parameters.Layout)
        {
            var values = buffer.AsMemory((int)p.Offset, (int)p.Length);
            if (p.TransposedOnDisk)
            {
                var disk = new float[p.Length];
                Transpose(values.ToArray(), p.Shape[0], p.Shape[1], disk);
                values = disk;
            }
            yield return (prefix + p.Name, p.DiskShape, values);
        }
    }

    /// <summary>
    /// The parameters under their Hugging Face names and on-disk shapes, read from the device piece by piece while a
    /// file is written (no host copy of the whole model); GPT-2's transposed Conv1D weights are read whole.
    /// </summary>
    private IEnumerable<SafetensorsTensorSource> HuggingFaceSources()
    {
        foreach (var p in Parameters.Layout)
        {
            var view = Parameters[p.Name];
            if (p.TransposedOnDisk)
            {
                float[]? disk = null; // transposed once, on the first piece
                yield return new SafetensorsTensorSource(p.Name, p.DiskShape, (piece, start) =>
                {
                    if (disk is null)
                    {
                        disk = new float[p.Length];
                        Transpose(view.ToArray(), p.Shape[0], p.Shape[1], disk);
                    }
                    disk.AsSpan((int)start, piece.Length).CopyTo(piece);
                });
            }
            else
                yield return new SafetensorsTensorSource(p.Name, p.DiskShape, (piece, start) => view.CopyTo(start, piece));
        }
    }

    /// <summary>destination (columns, rows) = source (rows, columns)ᵀ.</summary>
    private static void Transpose(float[] source, int rows, int columns, Span<float> destination)
    {
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                destination[c * rows + r] = source[r * columns + c];
    }
}

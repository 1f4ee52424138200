using System.Text.Json;
using System.Text.Json.Serialization;
using Grpo.Native.Checkpoints;
using Grpo.Native.Models;

namespace Grpo.Native.Training;

/// <summary>What a trainer checkpoint's trainer_state.json holds.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="OptimizerSteps">AdamW updates taken (step × μ, fewer if steps were skipped).</param>
/// <param name="Options">The run's options (the seed among them: sampling is counter-based, so seed and step are the whole RNG state).</param>
/// <param name="ParameterLayout">
/// The parameter order of the flat optimizer moments (<see cref="TransformerLayout.Version"/>); checkpoints that predate the
/// field hold version 1, which <see cref="GrpoCheckpoint.Restore"/> reorders.
/// </param>
public sealed record GrpoCheckpointState(int Step, int OptimizerSteps, GrpoTrainerOptions Options, int ParameterLayout = 1);

/// <summary>
/// Trainer checkpoints: the policy as a Hugging Face folder (model/), the AdamW moments
/// (optimizer.safetensors) and trainer_state.json (step, optimizer steps, options). Every file is
/// written atomically and trainer_state.json last, so a folder without it is an interrupted save:
/// <see cref="FindLatest"/> skips it and the previous checkpoint stays usable. Resuming restores
/// exactly the state of the uninterrupted run (bit-identical on the managed CPU backend).
/// </summary>
public static class GrpoCheckpoint
{
    /// <summary>The file written last; its presence marks a complete checkpoint.</summary>
    public const string StateFileName = "trainer_state.json";

    /// <summary>The AdamW moments.</summary>
    public const string OptimizerFileName = "optimizer.safetensors";

    /// <summary>The policy's Hugging Face folder inside a checkpoint.</summary>
    public const string ModelFolderName = "model";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Saves <paramref name="trainer"/>'s state into <paramref name="folder"/> (created if needed).</summary>
    public static void Save(GrpoTrainer trainer, string folder)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        // A re-save over an older checkpoint first removes its marker, so a crash in between never pairs old state with new weights.
        string stateFile = Path.Combine(folder, StateFileName);
        if (File.Exists(stateFile)) File.Delete(stateFile);
        trainer.Policy.Save(Path.Combine(folder, ModelFolderName));
        var optimizer = trainer.Optimizer;
        SafetensorsWriter.Write(Path.Combine(folder, OptimizerFileName),
        [
            // Read piece by piece as the file is written: a host copy of each moment would be 2 GB at 0.5 B parameters.
            new SafetensorsTensorSource("exp_avg", [(int)optimizer.FirstMoment.Length],
                (piece, start) => optimizer.FirstMoment.CopyTo(start, piece)),
            new SafetensorsTensorSource("exp_avg_sq", [(int)optimizer.SecondMoment.Length],
                (piece, start) => optimizer.SecondMoment.CopyTo(start, piece)),
        ]);
        var state = new GrpoCheckpointState(trainer.Step, optimizer.StepCount, trainer.Options, TransformerLayout.Version);
        AtomicFile.WriteAllText(stateFile, JsonSerializer.Serialize(state, Json));
    }

    /// <summary>Reads a checkpoint's trainer_state.json.</summary>
    /// <exception cref="FileNotFoundException">The folder holds no complete checkpoint.</exception>
    /// <exception cref="CheckpointFormatException">The state file is corrupt.</exception>
    public static GrpoCheckpointState ReadState(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string file = Path.Combine(folder, StateFileName);
        if (!File.Exists(file))
            throw new FileNotFoundException(
                $"'{folder}' holds no complete checkpoint ({StateFileName} is missing: the save was interrupted, or this is not a checkpoint folder).", file);
        try
        {
            var state = JsonSerializer.Deserialize<GrpoCheckpointState>(File.ReadAllText(file), Json)
                ?? throw new CheckpointFormatException($"'{file}' is empty.");
            if (state.Step < 0 || state.OptimizerSteps < 0 || state.Options is null)
                throw new CheckpointFormatException($"'{file}' holds negative counters or no options.");
            if (state.ParameterLayout is < 1 or > TransformerLayout.Version)
                throw new CheckpointFormatException(
                    $"'{file}' orders its optimizer moments by parameter layout {state.ParameterLayout}, which this version does not know " +
                    $"(it knows 1 to {TransformerLayout.Version}); resume it with the version that wrote it.");
            state.Options.Validate();
            return state;
        }
        catch (Exception e) when (e is JsonException or ArgumentException or NotSupportedException)
        {
            throw new CheckpointFormatException($"'{file}' is corrupt: {e.Message}");
        }
    }

    /// <summary>Loads the checkpoint's policy.</summary>
    public static TransformerModel LoadPolicy(Devices.Device device, string folder) =>
        TransformerModel.Load(device, Path.Combine(folder, ModelFolderName));

    /// <summary>Restores the optimizer moments and counters of a trainer built on the checkpoint's policy.</summary>
    /// <exception cref="CheckpointFormatException">The optimizer file does not match the model.</exception>
    public static void Restore(GrpoTrainer trainer, string folder)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        var state = ReadState(folder);
        using var file = SafetensorsFile.Open(Path.Combine(folder, OptimizerFileName));
        var optimizer = trainer.Optimizer;
        // The moments are flat, in the saved layout's parameter order; each parameter's range goes where this layout puts it.
        var offsets = TransformerLayout.For(trainer.Policy.Config).ToDictionary(p => p.Name, p => p.Offset);
        var saved = TransformerLayout.For(trainer.Policy.Config, state.ParameterLayout);
        var staging = new float[Math.Min(1 << 20, Math.Max(1, (int)optimizer.FirstMoment.Length))]; // 4 MiB pieces, not a 2 GB host copy
        foreach (var (name, tensor) in new[] { ("exp_avg", optimizer.FirstMoment), ("exp_avg_sq", optimizer.SecondMoment) })
        {
            var info = file.Get(name);
            if (info.ElementCount != tensor.Length)
                throw new CheckpointFormatException(
                    $"'{folder}': {name} holds {info.ElementCount} values but the model has {tensor.Length} parameters; the checkpoint belongs to another model.");
            foreach (var parameter in saved)
                for (long done = 0; done < parameter.Length; done += staging.Length)
                {
                    var piece = staging.AsSpan(0, (int)Math.Min(staging.Length, parameter.Length - done));
                    file.ReadInto(name, piece, parameter.Offset + done);
                    tensor.CopyFrom(offsets[parameter.Name] + done, piece);
                }
        }
        optimizer.RestoreStepCount(state.OptimizerSteps);
        trainer.RestoreStep(state.Step);
    }

    /// <summary>The newest complete checkpoint under <paramref name="runFolder"/> (its checkpoint-STEP folders), or null.</summary>
    public static string? FindLatest(string runFolder)
    {
        if (!Directory.Exists(runFolder)) return null;
        return Directory.GetDirectories(runFolder, "checkpoint-*")
            .Select(d => (Folder: d, Step: int.TryParse(Path.GetFileName(d)["checkpoint-".Length..], out int s) ? s : -1))
            .Where(x => x.Step >= 0 && File.Exists(Path.Combine(x.Folder, StateFileName)))
            .OrderByDescending(x => x.Step)
            .Select(x => x.Folder)
            .FirstOrDefault();
    }

    /// <summary>The folder name of the checkpoint after <paramref name="step"/> steps.</summary>
    public static string FolderFor(string runFolder, int step) => Path.Combine(runFolder, $"checkpoint-{step}");
}

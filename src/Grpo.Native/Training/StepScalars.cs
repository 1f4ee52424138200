using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Training;

/// <summary>
/// Where a training step leaves its scalars on the device, so that it reads them back once, at its end, instead of once
/// per micro-batch and update: the micro-batches' loss shares, each update's objective scalars per micro-batch
/// (<see cref="ObjectiveScalars"/>) and each update's gate (<see cref="UpdateGateSlots"/>). Layout, one buffer:
/// [shares (M) | objective scalars (μ, M, ObjectiveScalars.Count) | gates (μ, UpdateGateSlots.Count)].
/// The buffer is allocated once, with the trainer, so a step allocates nothing for it.
/// </summary>
internal sealed class StepScalars : IDisposable
{
    private readonly Tensor<float> _buffer; // (M + μ·(M·ObjectiveScalars.Count + UpdateGateSlots.Count))
    private readonly int _updates, _calls;

    /// <summary>Allocates the buffer for <paramref name="updates"/> updates of <paramref name="calls"/> micro-batches each.</summary>
    /// <param name="device">Where the step runs.</param>
    /// <param name="updates">μ.</param>
    /// <param name="calls">M.</param>
    public StepScalars(Device device, int updates, int calls)
    {
        _updates = updates;
        _calls = calls;
        _buffer = device.Allocate<float>(checked(calls + updates * (calls * ObjectiveScalars.Count + UpdateGateSlots.Count)));
    }

    /// <summary>Uploads the step's shares.</summary>
    /// <param name="shares">(M) each micro-batch's share of the loss; 0 for one that does not run.</param>
    public void Begin(float[] shares)
    {
        if (shares.Length != _calls)
            throw new InvalidOperationException($"The step has {shares.Length} micro-batches; the trainer planned {_calls}.");
        _buffer.Slice(0, _calls).CopyFrom(shares);
    }

    /// <summary>(M) the shares.</summary>
    public Tensor<float> Shares => _buffer.Slice(0, _calls);

    /// <summary>(M, ObjectiveScalars.Count) update <paramref name="update"/>'s objective scalars.</summary>
    public Tensor<float> Objectives(int update) =>
        _buffer.Slice(ObjectivesOffset(update), _calls, ObjectiveScalars.Count);

    /// <summary>(ObjectiveScalars.Count) the objective scalars of micro-batch <paramref name="call"/> in update <paramref name="update"/>.</summary>
    public Tensor<float> Objective(int update, int call) =>
        _buffer.Slice(ObjectivesOffset(update) + (long)call * ObjectiveScalars.Count, ObjectiveScalars.Count);

    /// <summary>(UpdateGateSlots.Count) update <paramref name="update"/>'s gate.</summary>
    public Tensor<float> Gate(int update) =>
        _buffer.Slice(GatesOffset + (long)update * UpdateGateSlots.Count, UpdateGateSlots.Count);

    /// <summary>Everything the step left, in one read (it waits for the device).</summary>
    public Snapshot Read() => new(_buffer.Slice(0, (int)(GatesOffset + (long)_updates * UpdateGateSlots.Count)).ToArray(), _calls, _updates);

    /// <summary>Frees the buffer.</summary>
    public void Dispose() => _buffer.Dispose();

    private long ObjectivesOffset(int update) => _calls + (long)update * _calls * ObjectiveScalars.Count;

    private long GatesOffset => _calls + (long)_updates * _calls * ObjectiveScalars.Count;

    /// <summary>The step's scalars on the host.</summary>
    public sealed class Snapshot(float[] values, int calls, int updates)
    {
        /// <summary>Micro-batch <paramref name="call"/>'s objective scalars in update <paramref name="update"/>.</summary>
        public ReadOnlySpan<float> Objective(int update, int call) =>
            values.AsSpan(calls + (update * calls + call) * ObjectiveScalars.Count, ObjectiveScalars.Count);

        /// <summary>Update <paramref name="update"/>'s gate.</summary>
        public ReadOnlySpan<float> Gate(int update) =>
            values.AsSpan(calls + updates * calls * ObjectiveScalars.Count + update * UpdateGateSlots.Count, UpdateGateSlots.Count);
    }
}

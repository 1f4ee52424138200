using Grpo.Native.Ilgpu;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Distributed;

/// <summary>
/// The gradient summed by NCCL in place on the GPU, queued on the accelerator's own stream after the backward kernels
/// that wrote it and before the optimizer's: the gradient never passes through host memory. Rank 0 draws the NCCL id and
/// the communicator (MPI) hands it to every rank. NCCL picks its own reduction order (a ring or a tree): with two ranks
/// every element is a + b, which IEEE addition makes the same bits as one process's sum; with more ranks the sum equals
/// one process's within rounding, not bit for bit (the host path keeps the fixed order; <c>GRPO_NCCL=0</c> selects it).
/// </summary>
internal sealed class NcclGradientAllReduce : GradientAllReduce
{
    private readonly INccl _nccl;
    private readonly IlgpuDevice _device;
    private readonly nint _comm;
    /// <summary>Marks in the stream before and after each all-reduce not yet counted in <see cref="Seconds"/>.</summary>
    private readonly List<(Devices.DeviceTimeMark Before, Devices.DeviceTimeMark After)> _pending = [];
    private double _seconds;
    private bool _disposed;

    private NcclGradientAllReduce(INccl nccl, IlgpuDevice device, int size, int rank, NcclUniqueId id)
    {
        _nccl = nccl;
        _device = device;
        device.Accelerator.Bind(); // NCCL takes the calling thread's current context: the accelerator's
        _comm = nccl.InitRank(size, id, rank);
        Transport = $"{nccl.Description}, {size} rank(s)";
    }

    public override string Transport { get; }

    /// <summary>
    /// The all-reduces' time on the stream (between marks queued around each), without waiting for them: read at the end
    /// of a step, after its final read has waited for the device. (A wait after each all-reduce both stalled the queue and
    /// counted the backward kernels still running before it.)
    /// </summary>
    public override double Seconds
    {
        get
        {
            foreach (var (before, after) in _pending)
            {
                _seconds += after.SecondsSince(before);
                before.Dispose();
                after.Dispose();
            }
            _pending.Clear();
            return _seconds;
        }
    }

    /// <summary>Joins every rank of <paramref name="ranks"/> into one NCCL communicator (a collective call).</summary>
    public static NcclGradientAllReduce Create(INccl nccl, ICommunicator ranks, IlgpuDevice device)
    {
        var id = ranks.Rank == 0 ? nccl.NewUniqueId() : new NcclUniqueId();
        var ids = ranks.AllGather(ranks.Rank == 0 ? (ReadOnlySpan<byte>)id : []);
        ids[0].CopyTo((Span<byte>)id);
        return new NcclGradientAllReduce(nccl, device, ranks.Size, ranks.Rank, id);
    }

    /// <summary>A communicator of this process alone: what one GPU can check of the binding (the device check runs it).</summary>
    public static NcclGradientAllReduce CreateSingleRank(INccl nccl, IlgpuDevice device) =>
        new(nccl, device, 1, 0, nccl.NewUniqueId());

    public override void Sum(Tensor<float> gradients) => Sum(gradients, gradients);

    /// <summary>
    /// <paramref name="destination"/> = the sum over ranks of <paramref name="source"/> (the same tensor for in place);
    /// out of place only for the device check, which can then tell a wrong pointer from a right one on one rank.
    /// </summary>
    internal void Sum(Tensor<float> source, Tensor<float> destination)
    {
        var operations = (IlgpuOperations)_device.Operations;
        var send = operations.View(source, nameof(source));                // (P)
        var receive = operations.View(destination, nameof(destination));   // (P)
        if (send.Length != receive.Length)
            throw new ArgumentException($"The all-reduce's destination holds {receive.Length} values, its source {send.Length}.", nameof(destination));
        var before = _device.MarkTime();
        try
        {
            _device.Accelerator.Bind();
            _nccl.AllReduceSum(_comm, send.BaseView.LoadEffectiveAddressAsPtr(), receive.BaseView.LoadEffectiveAddressAsPtr(), send.Length,
                _device.Accelerator);
        }
        catch
        {
            before.Dispose();
            throw;
        }
        _pending.Add((before, _device.MarkTime()));
    }

    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (before, after) in _pending) { before.Dispose(); after.Dispose(); }
        _nccl.Destroy(_comm);
    }
}

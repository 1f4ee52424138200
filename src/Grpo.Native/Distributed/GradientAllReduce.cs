using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tensors;

namespace Grpo.Native.Distributed;

/// <summary>
/// How a data-parallel trainer sums its (P) gradient over the ranks. The trainer and the backend see only this: on a
/// CUDA GPU with NCCL on every rank, NCCL's all-reduce on the GPU's stream (<see cref="NcclGradientAllReduce"/>);
/// otherwise the communicator's fixed-order all-reduce through host memory (<see cref="HostGradientAllReduce"/>).
/// </summary>
internal abstract class GradientAllReduce : IDisposable
{
    /// <summary>Set to 0 to keep gradients on the host path (MPI) even where NCCL is found.</summary>
    public const string DisableNcclVariable = "GRPO_NCCL";

    /// <summary>What carries the gradient, for the run's log.</summary>
    public abstract string Transport { get; }

    /// <summary>Seconds spent in the all-reduce that the communicator's own clock does not count.</summary>
    public abstract double Seconds { get; }

    /// <summary>Replaces <paramref name="gradients"/> on every rank with its sum over ranks.</summary>
    /// <param name="gradients">(P) this rank's gradient in, the sum out.</param>
    public abstract void Sum(Tensor<float> gradients);

    public virtual void Dispose() { }

    /// <summary>
    /// NCCL when <paramref name="device"/> is a CUDA GPU and every rank loads NCCL (decided together: one all-gather),
    /// else the host path; says which on <see cref="Device.DiagnosticLog"/> from rank 0. Every rank must call it at the same point.
    /// </summary>
    public static GradientAllReduce For(ICommunicator ranks, Device device)
    {
        // A GPU, or the simulator with the tests' emulation of NCCL.
        if (ranks.Size == 1 || device is not IlgpuDevice gpu || (gpu.Kind != DeviceKind.Cuda && gpu.Nccl is null))
            return new HostGradientAllReduce(ranks);
        INccl? nccl = null;
        string message = $"{DisableNcclVariable}=0";
        if (Environment.GetEnvironmentVariable(DisableNcclVariable) != "0") nccl = gpu.Nccl ?? NcclLibrary.TryLoad(out message);
        var ready = ranks.AllGather([(byte)(nccl is null ? 0 : 1)]);
        var without = Enumerable.Range(0, ranks.Size).Where(r => ready[r][0] == 0).ToArray();
        if (without.Length == 0)
        {
            var allReduce = NcclGradientAllReduce.Create(nccl!, ranks, gpu);
            if (ranks.Rank == 0) Device.DiagnosticLog?.WriteLine($"gradients: {allReduce.Transport}");
            return allReduce;
        }
        if (ranks.Rank == 0)
            Device.DiagnosticLog?.WriteLine(
                $"gradients: summed through host memory over MPI, not NCCL: rank(s) {string.Join(", ", without)} have no NCCL ({message}).");
        return new HostGradientAllReduce(ranks);
    }
}

/// <summary>The gradient downloaded, summed by the communicator's fixed-order tree (bit for bit one process's), uploaded.</summary>
internal sealed class HostGradientAllReduce(ICommunicator ranks) : GradientAllReduce
{
    public override string Transport => ranks.Size == 1 ? "none (one process)" : "host memory, fixed-order tree over MPI";

    public override double Seconds => 0; // the communicator times its own waits

    public override void Sum(Tensor<float> gradients)
    {
        var host = gradients.ToArray(); // (P)
        ranks.AllReduceSum(host);
        gradients.CopyFrom(host);
    }
}

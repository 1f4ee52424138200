using ILGPU.Runtime;

namespace Grpo.Native.Distributed;

/// <summary>
/// The NCCL calls the gradient all-reduce makes: <see cref="NcclLibrary"/> on a GPU. The tests put an emulation of NCCL
/// here on the simulator (<c>IlgpuDevice.UseNccl</c>), so that the path a gradient takes to it (the id exchange, the
/// communicator's ranks, the buffers' addresses and counts) runs before a GPU does.
/// </summary>
internal interface INccl
{
    /// <summary>What carries the sums, in words, e.g. "NCCL 2.21.5 (/usr/lib/libnccl.so.2)".</summary>
    string Description { get; }

    /// <summary>ncclGetUniqueId: the id rank 0 draws and every rank joins the communicator with.</summary>
    NcclUniqueId NewUniqueId();

    /// <summary>ncclCommInitRank: this process's member of the communicator of <paramref name="size"/> ranks named by <paramref name="id"/>.</summary>
    nint InitRank(int size, NcclUniqueId id, int rank);

    /// <summary>
    /// ncclAllReduce of <paramref name="count"/> fp32 values with ncclSum, from <paramref name="send"/> into <paramref name="receive"/>
    /// (the same address for in place), queued on <paramref name="accelerator"/>'s stream after the kernels queued before it.
    /// </summary>
    void AllReduceSum(nint communicator, nint send, nint receive, long count, Accelerator accelerator);

    /// <summary>ncclCommDestroy.</summary>
    void Destroy(nint communicator);
}

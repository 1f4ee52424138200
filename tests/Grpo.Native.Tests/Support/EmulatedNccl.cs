using System.Collections.Concurrent;
using Grpo.Native.Distributed;
using Grpo.Native.Tests.Distributed;
using ILGPU.Runtime;

namespace Grpo.Native.Tests.Support;

/// <summary>
/// NCCL emulated for ranks that are threads of this process, each with its own simulator device: a communicator is the set
/// of ranks that joined with one id (joining waits for all of them, as ncclCommInitRank does), and an all-reduce waits
/// for every rank, then writes Σ_r send_r, summed in rank order in fp32, to each rank's receive address. It reads and
/// writes through the raw addresses the trainer passes, as NCCL does; on the simulator a device address is host memory,
/// so a wrong pointer, offset or count shows as a wrong sum or a changed neighbour. With two ranks every element is
/// a + b, which is what NCCL's ring or tree gives too.
/// </summary>
internal sealed unsafe class EmulatedNccl : INccl
{
    private static readonly ConcurrentDictionary<Guid, Communicator> Communicators = new();
    private static readonly ConcurrentDictionary<nint, (Communicator Communicator, int Rank)> Members = new();
    private static long _lastHandle;

    /// <summary>All-reduces this rank has made.</summary>
    public int AllReduces { get; private set; }

    public string Description => "NCCL emulated on the simulator";

    public NcclUniqueId NewUniqueId()
    {
        var id = new NcclUniqueId();
        Guid.NewGuid().TryWriteBytes(id);
        return id;
    }

    public nint InitRank(int size, NcclUniqueId id, int rank)
    {
        if (size < 1 || rank < 0 || rank >= size) throw new InvalidOperationException($"ncclCommInitRank: rank {rank} of {size} (ncclInvalidArgument).");
        var communicator = Communicators.GetOrAdd(new Guid(((ReadOnlySpan<byte>)id)[..16]), _ => new Communicator(size));
        if (communicator.Size != size)
            throw new InvalidOperationException($"ncclCommInitRank: rank {rank} joined with {size} ranks, another with {communicator.Size} (ncclInvalidUsage).");
        nint handle = (nint)Interlocked.Increment(ref _lastHandle);
        Members[handle] = (communicator, rank);
        RankBarrier.Wait(communicator.Barrier, rank, "ncclCommInitRank"); // every rank has joined
        return handle;
    }

    public void AllReduceSum(nint communicator, nint send, nint receive, long count, Accelerator accelerator)
    {
        var (group, rank) = Members[communicator];
        accelerator.Synchronize(); // the kernels queued before it wrote the gradient
        group.Sends[rank] = (send, count);
        RankBarrier.Wait(group.Barrier, rank, "ncclAllReduce");
        var counts = group.Sends.Select(s => s.Count).Distinct().ToArray();
        if (counts.Length != 1)
            throw new InvalidOperationException($"ncclAllReduce: the ranks passed counts {string.Join(", ", group.Sends.Select(s => s.Count))}.");
        var sum = new float[count];
        new ReadOnlySpan<float>((float*)group.Sends[0].Address, checked((int)count)).CopyTo(sum);
        for (int r = 1; r < group.Size; r++)
        {
            var values = new ReadOnlySpan<float>((float*)group.Sends[r].Address, (int)count);
            for (int i = 0; i < sum.Length; i++) sum[i] += values[i];
        }
        RankBarrier.Wait(group.Barrier, rank, "the end of ncclAllReduce"); // every rank has read every send before any receive (in place: the same memory) changes
        sum.CopyTo(new Span<float>((float*)receive, (int)count));
        AllReduces++;
    }

    public void Destroy(nint communicator) => Members.TryRemove(communicator, out _);

    private sealed class Communicator(int size)
    {
        public int Size => size;
        public readonly Barrier Barrier = new(size);
        public readonly (nint Address, long Count)[] Sends = new (nint, long)[size];
    }
}

using System.Diagnostics;

namespace Grpo.Native.Distributed;

/// <summary>
/// The ranks of an <c>mpirun</c> job (Open MPI through <see cref="MpiLibrary"/>). Collectives are built from
/// point-to-point messages whose order this class fixes: the all-reduce is the <see cref="FixedOrderSum"/> tree over
/// ranks (each right subtree's root sends to its left sibling's, which adds) followed by rank 0 sending the sum to every
/// rank; the all-gather sends to rank 0, which sends everything back. Every wait polls with a deadline of
/// <see cref="RankTimeout"/>: a rank that does not answer in time makes this one throw <see cref="RankTimeoutException"/>
/// naming it (the caller then aborts the job). A rank that dies is reported by mpirun, which stops the others.
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private const int Tag = 7;
    private const int MaxMessageBytes = 1 << 30; // MPI counts are ints: larger buffers go in pieces

    private readonly MpiLibrary _mpi;
    private readonly Stopwatch _busy = new();
    private bool _disposed;

    /// <summary>Joins the job the launcher started (MPI_Init).</summary>
    /// <param name="rankTimeout">Longest wait for another rank before <see cref="RankTimeoutException"/>.</param>
    public MpiCommunicator(TimeSpan rankTimeout)
    {
        if (rankTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(rankTimeout), rankTimeout, "The rank timeout must be positive (600 s is the default).");
        RankTimeout = rankTimeout;
        _mpi = MpiLibrary.Load();
        int initialized, rank, size;
        MpiLibrary.Check(_mpi.Initialized(&initialized), "MPI_Initialized");
        if (initialized == 0) MpiLibrary.Check(_mpi.Init(null, null), "MPI_Init");
        MpiLibrary.Check(_mpi.CommRank(_mpi.CommWorld, &rank), "MPI_Comm_rank");
        MpiLibrary.Check(_mpi.CommSize(_mpi.CommWorld, &size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
    }

    /// <summary>Longest this rank waits for another.</summary>
    public TimeSpan RankTimeout { get; }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int Size { get; }

    /// <inheritdoc />
    public double CommunicationSeconds => _busy.Elapsed.TotalSeconds;

    /// <inheritdoc />
    public byte[][] AllGather(ReadOnlySpan<byte> local)
    {
        _busy.Start();
        try
        {
            var all = new byte[Size][];
            if (Rank == 0)
            {
                all[0] = local.ToArray();
                for (int from = 1; from < Size; from++) all[from] = ReceiveSized(from, "all-gather");
                for (int to = 1; to < Size; to++)
                    foreach (var part in all) SendSized(part, to, "all-gather");
            }
            else
            {
                SendSized(local, 0, "all-gather");
                for (int r = 0; r < Size; r++) all[r] = ReceiveSized(0, "all-gather");
            }
            return all;
        }
        finally { _busy.Stop(); }
    }

    /// <inheritdoc />
    public void AllReduceSum(Span<float> values)
    {
        _busy.Start();
        try
        {
            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values);
            var partner = new byte[bytes.Length];
            int lo = 0, hi = Size;
            // Descend the tree to this rank's leaf, remembering the nodes whose left child holds this rank...
            var path = new List<(int Lo, int Mid, int Hi)>();
            while (hi - lo > 1)
            {
                int mid = FixedOrderSum.Split(lo, hi);
                path.Add((lo, mid, hi));
                if (Rank < mid) hi = mid; else lo = mid;
            }
            // ...then climb: at each node the right child's root (mid) sends its subtree sum to the left child's root (lo).
            for (int i = path.Count - 1; i >= 0; i--)
            {
                var (nodeLo, mid, _) = path[i];
                if (Rank == mid) Send(bytes, nodeLo, "all-reduce");
                else if (Rank == nodeLo)
                {
                    Receive(partner, mid, "all-reduce");
                    var right = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(partner.AsSpan());
                    for (int j = 0; j < values.Length; j++) values[j] += right[j]; // left + right
                }
                if (Rank != nodeLo) break; // only a subtree's root goes on up
            }
            if (Rank == 0) for (int to = 1; to < Size; to++) Send(bytes, to, "all-reduce");
            else Receive(bytes, 0, "all-reduce");
        }
        finally { _busy.Stop(); }
    }

    /// <inheritdoc />
    public void Barrier() => AllGather([]);

    /// <inheritdoc />
    public void Abort(string message)
    {
        Console.Error.WriteLine(message);
        Console.Error.Flush();
        _mpi.Abort(_mpi.CommWorld, 2);
        Environment.Exit(2); // MPI_Abort does not return; this is in case it did
    }

    private void SendSized(ReadOnlySpan<byte> data, int to, string operation)
    {
        long length = data.Length;
        Send(new ReadOnlySpan<byte>(&length, sizeof(long)), to, operation);
        Send(data, to, operation);
    }

    private byte[] ReceiveSized(int from, string operation)
    {
        long length = 0;
        Receive(new Span<byte>(&length, sizeof(long)), from, operation);
        var data = new byte[length];
        Receive(data, from, operation);
        return data;
    }

    private void Send(ReadOnlySpan<byte> data, int to, string operation)
    {
        fixed (byte* p = data)
            for (int offset = 0; offset < data.Length || offset == 0; offset += MaxMessageBytes)
            {
                int count = Math.Min(MaxMessageBytes, data.Length - offset);
                nint request;
                MpiLibrary.Check(_mpi.Isend(p + offset, count, _mpi.Byte, to, Tag, _mpi.CommWorld, &request), "MPI_Isend");
                Wait(&request, to, operation);
                if (data.Length == 0) break;
            }
    }

    private void Receive(Span<byte> data, int from, string operation)
    {
        fixed (byte* p = data)
            for (int offset = 0; offset < data.Length || offset == 0; offset += MaxMessageBytes)
            {
                int count = Math.Min(MaxMessageBytes, data.Length - offset);
                nint request;
                MpiLibrary.Check(_mpi.Irecv(p + offset, count, _mpi.Byte, from, Tag, _mpi.CommWorld, &request), "MPI_Irecv");
                Wait(&request, from, operation);
                if (data.Length == 0) break;
            }
    }

    /// <summary>Polls until the request completes; past the deadline, names the rank that did not answer.</summary>
    private void Wait(nint* request, int peer, string operation)
    {
        var clock = Stopwatch.StartNew();
        var spinner = new SpinWait();
        int done = 0;
        while (true)
        {
            MpiLibrary.Check(_mpi.Test(request, &done, null), "MPI_Test");
            if (done != 0) return;
            if (clock.Elapsed > RankTimeout) throw new RankTimeoutException(Rank, peer, operation, RankTimeout);
            if (spinner.Count < 100) spinner.SpinOnce(); else Thread.Sleep(1);
        }
    }

    /// <summary>Leaves the job (MPI_Finalize).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _mpi.Finalize();
    }
}

/// <summary>Another rank did not answer within the rank timeout: it died, hung, or is far slower than this one.</summary>
public sealed class RankTimeoutException(int rank, int peer, string operation, TimeSpan timeout) : Exception(
    $"rank {peer} did not answer rank {rank} within {timeout.TotalSeconds:G} s (--rank-timeout) in the {operation}; it died or hung. " +
    "Stopping every rank; the newest complete checkpoint is intact, resume from it with --resume.")
{
    /// <summary>The rank that did not answer.</summary>
    public int Peer { get; } = peer;
}

using Grpo.Native.Distributed;

namespace Grpo.Native.Tests.Distributed;

/// <summary>
/// K ranks as K threads of one process, for testing the trainer's data parallelism without MPI. The all-reduce is written
/// here independently of <see cref="MpiCommunicator"/>: every rank forms the whole tree over the ranks' buffers itself.
/// </summary>
internal sealed class InProcessRanks
{
    private readonly Barrier _barrier;
    private readonly object?[] _slots;

    public InProcessRanks(int size)
    {
        _barrier = new Barrier(size);
        _slots = new object?[size];
        Ranks = Enumerable.Range(0, size).Select(rank => new Member(this, rank)).ToArray();
    }

    public Member[] Ranks { get; }

    /// <summary>Runs <paramref name="body"/> on every rank at once; returns their results in rank order.</summary>
    public T[] Run<T>(Func<Member, T> body)
    {
        var tasks = Ranks.Select(rank => Task.Factory.StartNew(() => body(rank), TaskCreationOptions.LongRunning)).ToArray();
        return Task.WhenAll(tasks).GetAwaiter().GetResult();
    }

    /// <summary>Left subtree + right subtree, split where <see cref="FixedOrderSum.Split"/> says.</summary>
    private static float[] TreeSum(float[][] buffers, int lo, int hi)
    {
        if (hi - lo == 1) return (float[])buffers[lo].Clone();
        int mid = FixedOrderSum.Split(lo, hi);
        float[] left = TreeSum(buffers, lo, mid), right = TreeSum(buffers, mid, hi);
        for (int i = 0; i < left.Length; i++) left[i] += right[i];
        return left;
    }

    public sealed class Member(InProcessRanks world, int rank) : ICommunicator
    {
        public int Rank => rank;
        public int Size => world._slots.Length;
        public double CommunicationSeconds => 0;

        private T[] Exchange<T>(T local)
        {
            world._slots[rank] = local;
            RankBarrier.Wait(world._barrier, rank, "an exchange");
            var all = world._slots.Cast<T>().ToArray();
            RankBarrier.Wait(world._barrier, rank, "the end of an exchange"); // nobody overwrites a slot before everyone has read it
            return all;
        }

        public byte[][] AllGather(ReadOnlySpan<byte> local) => Exchange(local.ToArray()).Select(b => (byte[])b.Clone()).ToArray();

        public void AllReduceSum(Span<float> values) => TreeSum(Exchange(values.ToArray()), 0, Size).CopyTo(values);

        public void Barrier() => Exchange(0);

        public void Abort(string message) => throw new InvalidOperationException(message);

        public void Dispose() { }
    }
}

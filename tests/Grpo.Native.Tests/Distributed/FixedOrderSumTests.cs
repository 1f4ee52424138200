using Grpo.Native.Distributed;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Distributed;

/// <summary>The one summation order of gradients, and the single-process communicator.</summary>
public sealed class FixedOrderSumTests
{
    [Test]
    public void RanksOwnContiguousRangesThatCoverEveryMicroBatchInOrder()
    {
        for (int size = 1; size <= 9; size++)
            for (int count = 0; count <= 20; count++)
            {
                int next = 0;
                for (int rank = 0; rank < size; rank++)
                {
                    var (first, end) = FixedOrderSum.RangeOfRank(rank, size, count);
                    Assert.That(first, Is.EqualTo(next), $"K={size} M={count} rank {rank} starts where the previous ended");
                    Assert.That(end, Is.GreaterThanOrEqualTo(first));
                    if (count >= size) Assert.That(end, Is.GreaterThan(first), $"K={size} M={count}: with M >= K every rank has work");
                    next = end;
                }
                Assert.That(next, Is.EqualTo(count), $"K={size} M={count}: every micro-batch is owned");
            }
    }

    /// <summary>
    /// The claim the data-parallel trainer rests on: ranks that each sum their own range by the tree, then add their sums by
    /// the tree over ranks, form exactly (bit for bit) one process's tree sum over all micro-batches, for any K and M.
    /// </summary>
    [Test]
    public void RankSumsAddedByTheRankTreeEqualOneProcessBitForBit()
    {
        var random = TestRandom.Create();
        for (int trial = 0; trial < 200; trial++)
        {
            int size = random.Next(1, 9), count = random.Next(0, 24), length = random.Next(1, 8);
            // Values of very different magnitudes, so that a different order of additions would round differently.
            var microBatches = Enumerable.Range(0, count)
                .Select(_ => TestRandom.Normal(random, length).Select(v => v * MathF.Pow(10, random.Next(-6, 7))).ToArray()).ToArray();
            float[] oneProcess = TreeSum(microBatches, 0, count, length);
            var rankSums = Enumerable.Range(0, size).Select(rank =>
            {
                var (first, end) = FixedOrderSum.RangeOfRank(rank, size, count);
                return TreeSum(microBatches, first, end, length);
            }).ToArray();
            float[] acrossRanks = RankTree(rankSums, 0, size);
            Assert.That(acrossRanks.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(oneProcess.Select(BitConverter.SingleToInt32Bits)),
                $"K={size} M={count}");
        }
    }

    [Test]
    public void TheSingleProcessCommunicatorChangesNothing()
    {
        var random = TestRandom.Create();
        var values = TestRandom.Normal(random, 17);
        var copy = (float[])values.Clone();
        var single = SingleProcess.Instance;
        single.AllReduceSum(values);
        Assert.That(values, Is.EqualTo(copy));
        byte[] local = [1, 2, 3];
        Assert.That(single.AllGather(local), Is.EqualTo(new[] { local }));
        Assert.That((single.Rank, single.Size), Is.EqualTo((0, 1)));
        Assert.Throws<InvalidOperationException>(() => single.Abort("stop"));
    }

    [Test]
    public void NoLauncherMeansOneProcessAndNoMpiLibrary()
    {
        // The test host is not started by mpirun (the suite would not run its tests as K copies).
        Assume.That(Communicators.SizeVariables.All(v => Environment.GetEnvironmentVariable(v) is null), "the tests run under an MPI launcher");
        Assert.That(Communicators.LauncherSize(), Is.Null);
        Assert.That(Communicators.FromEnvironment(TimeSpan.FromSeconds(1)), Is.SameAs(SingleProcess.Instance));
    }

    // One process: the tree over micro-batches, leaves from zero (0 + x is x), each node left + right.
    private static float[] TreeSum(float[][] items, int lo, int hi, int length)
    {
        if (hi - lo == 0) return new float[length];
        if (hi - lo == 1) return (float[])items[lo].Clone();
        int mid = FixedOrderSum.Split(lo, hi);
        float[] left = TreeSum(items, lo, mid, length), right = TreeSum(items, mid, hi, length);
        return left.Zip(right, (a, b) => a + b).ToArray();
    }

    private static float[] RankTree(float[][] sums, int lo, int hi)
    {
        if (hi - lo == 1) return sums[lo];
        int mid = FixedOrderSum.Split(lo, hi);
        return RankTree(sums, lo, mid).Zip(RankTree(sums, mid, hi), (a, b) => a + b).ToArray();
    }
}

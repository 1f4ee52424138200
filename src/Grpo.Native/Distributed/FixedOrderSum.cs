namespace Grpo.Native.Distributed;

/// <summary>
/// The one summation order used for gradients, both over a process's micro-batches and over ranks: the binary tree that
/// splits an index range [lo, hi) at <see cref="Split"/>, each node the sum of its left subtree and its right subtree.
/// Because ranks own the subtrees of this same tree (<see cref="RangeOfRank"/>), K ranks that each sum their micro-batches
/// and then sum across ranks by the tree over ranks form exactly the additions one process forms over all micro-batches.
/// </summary>
public static class FixedOrderSum
{
    /// <summary>Where [lo, hi) splits: the left subtree is [lo, mid), the right [mid, hi).</summary>
    public static int Split(int lo, int hi) => lo + (hi - lo) / 2;

    /// <summary>
    /// The micro-batches [first, end) that <paramref name="rank"/> of <paramref name="size"/> owns out of
    /// <paramref name="count"/>: the ranks' tree and the micro-batches' tree are split side by side, so every rank owns a
    /// subtree of the micro-batches' tree (an empty one when there are fewer micro-batches than ranks).
    /// </summary>
    public static (int First, int End) RangeOfRank(int rank, int size, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if ((uint)rank >= (uint)size) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {size}).");
        int rankLo = 0, rankHi = size, lo = 0, hi = count;
        while (rankHi - rankLo > 1)
        {
            // Fewer micro-batches than ranks here: the leftmost rank takes what there is, the others add zeros (exactly).
            if (hi - lo < 2) return rank == rankLo ? (lo, hi) : (hi, hi);
            int rankMid = Split(rankLo, rankHi), mid = Split(lo, hi);
            if (rank < rankMid) { rankHi = rankMid; hi = mid; }
            else { rankLo = rankMid; lo = mid; }
        }
        return (lo, hi);
    }
}

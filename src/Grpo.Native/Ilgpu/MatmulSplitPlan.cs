using Grpo.Kernels;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// Whether the ILGPU GEMM cuts K into slices (split-K), and how: a product whose output tiles are fewer than the GPU's
/// multiprocessors leaves most of it idle (a decode step's projections: M is the number of sequences, a few tiles of
/// 64 × 64), so the tiles are multiplied by K slices that run side by side and are added afterwards, in slice order.
/// </summary>
internal static class MatmulSplitPlan
{
    /// <summary>The shortest slice worth its partial-sum traffic: 4 k tiles (64 values).</summary>
    public const int MinChunk = 4 * MatmulKernels.KTile;

    /// <summary>Most slices: past this the (splits, M, N) partials cost more memory traffic than the idle GPU did.</summary>
    public const int MaxSplits = 16;

    /// <summary>
    /// (1, K) when the output tiles already give every multiprocessor one, or K is too short to cut; otherwise enough
    /// slices for about two groups per multiprocessor, each at least <see cref="MinChunk"/> long (a multiple of
    /// <see cref="MatmulKernels.KTile"/>), at most <see cref="MaxSplits"/>.
    /// </summary>
    /// <param name="m">Rows of C.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="k">The summed dimension.</param>
    /// <param name="tile">Side of one group's output tile (4 × the group side).</param>
    /// <param name="multiprocessors">The device's streaming multiprocessors.</param>
    public static (int Splits, int Chunk) For(int m, int n, int k, int tile, int multiprocessors)
    {
        long tiles = (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile);
        if (tiles >= multiprocessors || k < 2 * MinChunk) return (1, k);
        long wanted = Math.Min(MaxSplits, Math.Min((2L * multiprocessors + tiles - 1) / tiles, k / MinChunk));
        if (wanted <= 1) return (1, k);
        int chunk = (int)((k + wanted - 1) / wanted);
        chunk = (chunk + MatmulKernels.KTile - 1) / MatmulKernels.KTile * MatmulKernels.KTile;
        return ((k + chunk - 1) / chunk, chunk);
    }
}

using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Grpo.Native.Cpu;

// The narrow path: C (M, N) (+)= A · Bᵀ for a few rows of A against B stored (N, K), row by row: a
// decode step's projections and LM head, one row per sequence against a weight matrix.
//
// At that M the tiled path spends its time packing B (8 x 8 register transposes of every weight,
// staged through L2) for a product that does little with each packed element: a decode step read its
// weights at 8-10 GB/s where the machine streams 29-34 (GemmDecodeShapeBenchmarks). Here A, which is
// small, is packed instead: rows side by side in vectors of eight, one vector per k ("row vectors",
// (rowVectors, K, 8)). Each row of B is then read straight from memory, one element at a time
// broadcast against a row vector, so a lane of an accumulator is one element of C. Every element is
// still summed in the tiled path's order (k blocks of KBlock in order, k in order within a block from
// zero through MulAdd, then added to C), so the two paths give the same bits: whichever path a product
// of M rows takes, its rows equal the same rows of a larger product.
internal static unsafe partial class CpuGemm
{
    /// <summary>Products of at most this many rows against B stored (N, K) take the narrow path.</summary>
    internal const int NarrowMaxRows = 16;

    /// <summary>Rows of C one accumulator holds (one Vector256 lane each).</summary>
    private const int RowLanes = 8;

    /// <summary>Columns of C one narrow task owns at most (eight groups of eight weight rows).</summary>
    private const int NarrowTaskColumns = 64;

    // B(kk, j) = b[kk + j*ldb]; A(i, kk) = a[i*rsA + kk*csA].
    private static void RunNarrow(ParallelOptions parallelism, int workers, int m, int n, int k,
        float* a, int rsA, int csA, float* b, int ldb, float* c, int ldc, bool accumulate)
    {
        int rowVectors = CeilDiv(m, RowLanes);
        float[] pack = ArrayPool<float>.Shared.Rent(rowVectors * k * RowLanes + AlignFloats);
        try
        {
            fixed (float* packBase = pack)
            {
                float* packedA = Align(packBase); // (rowVectors, K, RowLanes), rows past M zero
                PackRowVectors(a, rsA, csA, m, k, packedA);

                // Column tasks of whole 8-column groups, at least four per worker where N allows.
                int taskColumns = Math.Clamp(RoundUp(CeilDiv(n, 4 * workers), RowLanes), RowLanes, NarrowTaskColumns);
                int tasks = CeilDiv(n, taskColumns);
                nint pa = (nint)packedA, pb = (nint)b, pc = (nint)c;
                void Columns(int t)
                {
                    int j0 = t * taskColumns, j1 = Math.Min(n, j0 + taskColumns);
                    for (int j = j0; j < j1; j += RowLanes)
                        NarrowColumnGroup((float*)pa, m, k, (float*)pb, ldb, j, Math.Min(RowLanes, j1 - j), (float*)pc, ldc, accumulate);
                }
                if (workers == 1 || tasks == 1)
                    for (int t = 0; t < tasks; t++) Columns(t);
                else
                    Parallel.For(0, tasks, parallelism, Columns);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(pack);
        }
    }

    // dst[(r*K + kk)*8 + i] = A(8r + i, kk), zero for rows past M.
    private static void PackRowVectors(float* a, int rsA, int csA, int m, int k, float* dst)
    {
        for (int r = 0; r * RowLanes < m; r++)
        {
            int rows = Math.Min(RowLanes, m - r * RowLanes);
            float* panel = dst + (long)r * k * RowLanes;
            if (rows < RowLanes) new Span<float>(panel, k * RowLanes).Clear();
            for (int i = 0; i < rows; i++)
            {
                float* src = a + (long)(r * RowLanes + i) * rsA;
                for (int kk = 0; kk < k; kk++) panel[kk * RowLanes + i] = src[(long)kk * csA];
            }
        }
    }

    // Columns j0 .. j0+columns (at most 8) of C, every row, over all of K. Pairs of row vectors share
    // each broadcast element of B (16 rows x 4 columns); a last odd row vector takes 8 rows x 8 columns.
    // B's 8 x KBlock slice stays in L1 while the row vectors pass over it.
    private static void NarrowColumnGroup(float* packedA, int m, int k, float* b, int ldb, int j0, int columns,
        float* c, int ldc, bool accumulate)
    {
        float* tile = stackalloc float[2 * RowLanes * 4]; // column-major: (columns, rows of the kernel)
        int rowVectors = CeilDiv(m, RowLanes);
        for (int p0 = 0; p0 < k; p0 += KBlock)
        {
            int kc = Math.Min(KBlock, k - p0);
            bool add = accumulate || p0 > 0;
            float* bSlice = b + (long)j0 * ldb + p0;
            int r = 0;
            for (; r + 1 < rowVectors; r += 2)
            {
                float* ap = packedA + ((long)r * k + p0) * RowLanes;
                for (int half = 0; half * 4 < columns; half++)
                {
                    int halfColumns = Math.Min(4, columns - half * 4);
                    Kernel16x4(kc, ap, ap + (long)k * RowLanes, bSlice + (long)half * 4 * ldb, ldb, halfColumns, tile);
                    WriteTile(tile, 2 * RowLanes, Math.Min(2 * RowLanes, m - r * RowLanes), halfColumns,
                        c + (long)r * RowLanes * ldc + j0 + half * 4, ldc, add);
                }
            }
            if (r < rowVectors)
            {
                Kernel8x8(kc, packedA + ((long)r * k + p0) * RowLanes, bSlice, ldb, columns, tile);
                WriteTile(tile, RowLanes, m - r * RowLanes, columns, c + (long)r * RowLanes * ldc + j0, ldc, add);
            }
        }
    }

    // C[i, j] (+)= tile[j*tileRows + i] for i < rows, j < columns.
    private static void WriteTile(float* tile, int tileRows, int rows, int columns, float* c, int ldc, bool add)
    {
        for (int i = 0; i < rows; i++)
        {
            float* row = c + (long)i * ldc;
            for (int j = 0; j < columns; j++)
                row[j] = add ? row[j] + tile[j * tileRows + i] : tile[j * tileRows + i];
        }
    }

    // Row j of B's slice, or row 0 for the columns past the edge (computed, then never written to C).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* BRow(float* b, int ldb, int j, int columns) => j < columns ? b + (long)j * ldb : b;

    // tile (8 columns, 8 rows) = row vector ap (kc, 8) times B's rows 0..7 (each kc long, ldb apart).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel8x8(int kc, float* ap, float* b, int ldb, int columns, float* tile)
    {
        float* b0 = b, b1 = BRow(b, ldb, 1, columns), b2 = BRow(b, ldb, 2, columns), b3 = BRow(b, ldb, 3, columns);
        float* b4 = BRow(b, ldb, 4, columns), b5 = BRow(b, ldb, 5, columns), b6 = BRow(b, ldb, 6, columns), b7 = BRow(b, ldb, 7, columns);
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var x = Vector256.Load(ap + kk * RowLanes);
            c0 = MulAdd(x, Broadcast(b0 + kk), c0); c1 = MulAdd(x, Broadcast(b1 + kk), c1);
            c2 = MulAdd(x, Broadcast(b2 + kk), c2); c3 = MulAdd(x, Broadcast(b3 + kk), c3);
            c4 = MulAdd(x, Broadcast(b4 + kk), c4); c5 = MulAdd(x, Broadcast(b5 + kk), c5);
            c6 = MulAdd(x, Broadcast(b6 + kk), c6); c7 = MulAdd(x, Broadcast(b7 + kk), c7);
        }
        Vector256.Store(c0, tile); Vector256.Store(c1, tile + 8); Vector256.Store(c2, tile + 16); Vector256.Store(c3, tile + 24);
        Vector256.Store(c4, tile + 32); Vector256.Store(c5, tile + 40); Vector256.Store(c6, tile + 48); Vector256.Store(c7, tile + 56);
    }

    // tile (4 columns, 16 rows) = row vectors ap0 and ap1 (each (kc, 8)) times B's rows 0..3: each
    // broadcast element of B feeds both, which halves the loads per multiply-add of Kernel8x8.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel16x4(int kc, float* ap0, float* ap1, float* b, int ldb, int columns, float* tile)
    {
        float* b0 = b, b1 = BRow(b, ldb, 1, columns), b2 = BRow(b, ldb, 2, columns), b3 = BRow(b, ldb, 3, columns);
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var x = Vector256.Load(ap0 + kk * RowLanes);
            var y = Vector256.Load(ap1 + kk * RowLanes);
            var w = Broadcast(b0 + kk); c0 = MulAdd(x, w, c0); d0 = MulAdd(y, w, d0);
            w = Broadcast(b1 + kk); c1 = MulAdd(x, w, c1); d1 = MulAdd(y, w, d1);
            w = Broadcast(b2 + kk); c2 = MulAdd(x, w, c2); d2 = MulAdd(y, w, d2);
            w = Broadcast(b3 + kk); c3 = MulAdd(x, w, c3); d3 = MulAdd(y, w, d3);
        }
        Vector256.Store(c0, tile); Vector256.Store(d0, tile + 8); Vector256.Store(c1, tile + 16); Vector256.Store(d1, tile + 24);
        Vector256.Store(c2, tile + 32); Vector256.Store(d2, tile + 40); Vector256.Store(c3, tile + 48); Vector256.Store(d3, tile + 56);
    }
}

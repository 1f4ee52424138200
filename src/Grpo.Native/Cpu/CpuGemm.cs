using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Grpo.Native.Cpu;

/// <summary>
/// Cache-blocked fp32 matrix multiplication for the managed backend, on row-major spans with
/// leading dimensions (<c>lda</c> = elements between consecutive rows as stored). Three forms:
/// <see cref="MultiplyTransposedB"/> (C = A·Bᵀ), <see cref="Multiply"/> (C = A·B) and
/// <see cref="MultiplyTransposedA"/> (C = Aᵀ·B), each overwriting C or accumulating into it.
/// </summary>
/// <remarks>
/// BLIS-style: an operand that several tiles of C re-read (and that fits
/// <see cref="MaxSharedPackFloats"/>) is first packed once, in parallel, into k-major micro-panels;
/// then every task owns whole tiles of C (at most <see cref="MaxTileRows"/> x
/// <see cref="MaxTileColumns"/>), walks K in fixed <see cref="KBlock"/> steps, packs whatever
/// slices were not shared, and runs a 6x16 Vector256 FMA micro-kernel (12 accumulators in
/// registers, k unrolled by two). Each element of C is summed in the same order (k blocks in order,
/// k in order within a block, then added to C) whatever the tiling or thread count, so results are
/// bit-identical for every degree of parallelism. C must not overlap A or B. Products of a few rows
/// against B stored (N, K) take the narrow path of <c>CpuGemm.Narrow.cs</c>, which keeps that order.
/// </remarks>
[SkipLocalsInit] // the edge stack tiles are always fully written before they are read
internal static unsafe partial class CpuGemm
{
    /// <summary>Rows of the micro-kernel's register tile.</summary>
    internal const int MR = 6;

    /// <summary>Columns of the micro-kernel's register tile (two Vector256).</summary>
    internal const int NR = 16;

    /// <summary>K is consumed in blocks of this many; it fixes the summation order, so it never varies.</summary>
    internal const int KBlock = 256;

    /// <summary>Largest tile of C rows one task owns (the packed A block, 96 KB, stays in L2).</summary>
    internal const int MaxTileRows = 96;

    /// <summary>Largest tile of C columns one task owns (the packed B block, 256 KB, stays in L2).</summary>
    internal const int MaxTileColumns = 256;

    /// <summary>
    /// When C has fewer than <see cref="SplitBelowTiles"/> full tiles and K is long (the dHidden
    /// product: a chunk of tokens by C channels, summed over the vocabulary), K is cut into slices
    /// of this many, each slice's product goes to its own buffer (the slice's tiles in parallel), and
    /// the buffers are added in slice order. Depends only on the sizes, never on the thread count.
    /// </summary>
    internal const int SplitK = 2048;

    /// <summary>See <see cref="SplitK"/>.</summary>
    internal const int SplitBelowTiles = 8;

    /// <summary>The largest operand (in floats, 4 MiB) packed once per call and shared by every tile.</summary>
    internal const int MaxSharedPackFloats = 1 << 20;

    /// <summary>Micro-panels one task packs into a shared operand.</summary>
    private const int PackPanelsPerTask = 16;

    /// <summary>Floats of packing scratch one tile task rents while it runs (none when both operands are shared).</summary>
    internal const int PackFloatsPerThread = MaxTileRows * KBlock + KBlock * MaxTileColumns;

    /// <summary>C (M, N) = [C +] A (M, K) · B (N, K)ᵀ.</summary>
    public static void MultiplyTransposedB(ParallelOptions parallelism, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, bool accumulate)
    {
        CheckMatrix(a, m, k, lda, nameof(a));
        CheckMatrix(b, n, k, ldb, nameof(b));
        CheckMatrix(c, m, n, ldc, nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
            Run(parallelism, m, n, k, pa, lda, 1, pb, 1, ldb, pc, ldc, accumulate);
    }

    /// <summary>C (M, N) = [C +] A (M, K) · B (K, N).</summary>
    public static void Multiply(ParallelOptions parallelism, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, bool accumulate)
    {
        CheckMatrix(a, m, k, lda, nameof(a));
        CheckMatrix(b, k, n, ldb, nameof(b));
        CheckMatrix(c, m, n, ldc, nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
            Run(parallelism, m, n, k, pa, lda, 1, pb, ldb, 1, pc, ldc, accumulate);
    }

    /// <summary>C (M, N) = [C +] A (K, M)ᵀ · B (K, N).</summary>
    public static void MultiplyTransposedA(ParallelOptions parallelism, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, bool accumulate)
    {
        CheckMatrix(a, k, m, lda, nameof(a));
        CheckMatrix(b, k, n, ldb, nameof(b));
        CheckMatrix(c, m, n, ldc, nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
            Run(parallelism, m, n, k, pa, 1, lda, pb, ldb, 1, pc, ldc, accumulate);
    }

    private static void CheckMatrix(ReadOnlySpan<float> span, int rows, int columns, int ld, string name)
    {
        if (rows < 0 || columns < 0)
            throw new ArgumentOutOfRangeException(name, $"'{name}' would have {rows} x {columns} elements; sizes must not be negative.");
        if (ld < Math.Max(1, columns))
            throw new ArgumentOutOfRangeException(name, ld,
                $"The leading dimension of '{name}' ({ld}) is smaller than its {columns} columns; pass at least the row length.");
        long need = rows == 0 || columns == 0 ? 0 : (long)(rows - 1) * ld + columns;
        if (span.Length < need)
            throw new ArgumentException(
                $"'{name}' has {span.Length} elements but a {rows} x {columns} matrix with leading dimension {ld} needs {need}.", name);
    }

    // A(i, kk) = a[i*rsA + kk*csA]; B(kk, j) = b[kk*rsB + j*csB]; the three forms differ only in these strides.
    private static void Run(ParallelOptions parallelism, int m, int n, int k,
        float* a, int rsA, int csA, float* b, int rsB, int csB, float* c, int ldc, bool accumulate)
    {
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++) new Span<float>(c + (long)i * ldc, n).Clear();
            return;
        }

        if (CeilDiv(m, MaxTileRows) * CeilDiv(n, MaxTileColumns) < SplitBelowTiles && k >= 2 * SplitK)
        {
            RunSplitK(parallelism, m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
            return;
        }
        RunTiles(parallelism, m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
    }

    // C (M, N) (+)= A · B over whole tiles of C, each summed over all of K by one task.
    private static void RunTiles(ParallelOptions parallelism, int m, int n, int k,
        float* a, int rsA, int csA, float* b, int rsB, int csB, float* c, int ldc, bool accumulate)
    {
        int workers = parallelism.MaxDegreeOfParallelism > 0 ? parallelism.MaxDegreeOfParallelism : Environment.ProcessorCount;
        if (m <= NarrowMaxRows && rsB == 1)
        {
            RunNarrow(parallelism, workers, m, n, k, a, rsA, csA, b, csB, c, ldc, accumulate);
            return;
        }

        // Smaller tiles when there would be too few to keep every core busy (a single thread keeps
        // whole tiles: the small products inside attention); the tiling never changes the summation
        // order, so this choice cannot change the result.
        int tileRows = Math.Min(MaxTileRows, RoundUp(m, MR));
        int tileColumns = Math.Min(MaxTileColumns, RoundUp(n, NR));
        while (workers > 1 && CeilDiv(m, tileRows) * CeilDiv(n, tileColumns) < 4 * workers && (tileRows > MR || tileColumns > NR))
        {
            if (tileColumns >= tileRows && tileColumns > NR) tileColumns = RoundUp(tileColumns / 2, NR);
            else tileRows = RoundUp(tileRows / 2, MR);
        }
        int tilesDown = CeilDiv(m, tileRows), tilesAcross = CeilDiv(n, tileColumns);
        int tiles = tilesDown * tilesAcross;

        // An operand that several tiles re-read (A by every tile of a row of tiles, B by every tile of
        // a column) is packed once up front, in parallel, and shared read-only: A in the logits product
        // (a chunk of tokens against the whole vocabulary), B in the dLmHead product and both in a
        // square product. The shared packs are k-block-major: block p0 starts at p0 * (rows rounded up).
        int mRound = RoundUp(m, MR), nRound = RoundUp(n, NR);
        bool shareA = tilesAcross > 1 && (long)mRound * k <= MaxSharedPackFloats;
        bool shareB = tilesDown > 1 && (long)nRound * k <= MaxSharedPackFloats;
        float[]? sharedA = shareA ? ArrayPool<float>.Shared.Rent(mRound * k + AlignFloats) : null;
        float[]? sharedB = shareB ? ArrayPool<float>.Shared.Rent(nRound * k + AlignFloats) : null;
        try
        {
            fixed (float* sharedABase = sharedA, sharedBBase = sharedB)
            {
                float* psa = shareA ? Align(sharedABase) : null, psb = shareB ? Align(sharedBBase) : null;
                nint pa = (nint)a, pb = (nint)b, pc = (nint)c, pSharedA = (nint)psa, pSharedB = (nint)psb;
                // Packing tasks: runs of PackPanelsPerTask micro-panels over the whole of K.
                int packTasksA = shareA ? CeilDiv(mRound / MR, PackPanelsPerTask) : 0;
                int packTasksB = shareB ? CeilDiv(nRound / NR, PackPanelsPerTask) : 0;
                void Pack(int t)
                {
                    bool isA = t < packTasksA;
                    int first = (isA ? t : t - packTasksA) * PackPanelsPerTask * (isA ? MR : NR);
                    int count = Math.Min(PackPanelsPerTask * (isA ? MR : NR), (isA ? m : n) - first);
                    for (int p0 = 0; p0 < k; p0 += KBlock)
                    {
                        int kc = Math.Min(KBlock, k - p0);
                        if (isA) PackPanelsA((float*)pa, rsA, csA, first, count, p0, kc, (float*)pSharedA + (long)p0 * mRound + (long)first * kc);
                        else PackPanelsB((float*)pb, rsB, csB, first, count, p0, kc, (float*)pSharedB + (long)p0 * nRound + (long)first * kc);
                    }
                }

                void Tile(int t)
                {
                    int i0 = t / tilesAcross * tileRows, j0 = t % tilesAcross * tileColumns;
                    float[]? pack = shareA && shareB ? null : ArrayPool<float>.Shared.Rent(PackFloatsPerThread + AlignFloats);
                    try
                    {
                        fixed (float* packedBase = pack)
                            ComputeTile((float*)pa, rsA, csA, (float*)pb, rsB, csB, (float*)pc, ldc, k, accumulate,
                                i0, Math.Min(tileRows, m - i0), j0, Math.Min(tileColumns, n - j0),
                                packedBase == null ? null : Align(packedBase),
                                (float*)pSharedA, mRound, (float*)pSharedB, nRound);
                    }
                    finally
                    {
                        if (pack is not null) ArrayPool<float>.Shared.Return(pack);
                    }
                }

                int packTasks = packTasksA + packTasksB;
                if (workers == 1)
                {
                    for (int t = 0; t < packTasks; t++) Pack(t);
                    for (int t = 0; t < tiles; t++) Tile(t);
                }
                else
                {
                    if (packTasks > 0) Parallel.For(0, packTasks, parallelism, Pack);
                    if (tiles == 1) Tile(0);
                    else Parallel.For(0, tiles, parallelism, Tile);
                }
            }
        }
        finally
        {
            if (sharedA is not null) ArrayPool<float>.Shared.Return(sharedA);
            if (sharedB is not null) ArrayPool<float>.Shared.Return(sharedB);
        }
    }

    // C is small and K long: without the split, one task per tile would walk all of K alone while the
    // other cores idle. Each slice is an ordinary tiled product (its shared packs and tiles spread over
    // every core) into its own buffer; the buffers are then added in slice order.
    private static void RunSplitK(ParallelOptions parallelism, int m, int n, int k,
        float* a, int rsA, int csA, float* b, int rsB, int csB, float* c, int ldc, bool accumulate)
    {
        int pieces = CeilDiv(k, SplitK);
        float[] partial = ArrayPool<float>.Shared.Rent(pieces * m * n); // (pieces, M, N)
        try
        {
            fixed (float* pp = partial)
            {
                for (int piece = 0; piece < pieces; piece++)
                {
                    int k0 = piece * SplitK;
                    RunTiles(parallelism, m, n, Math.Min(SplitK, k - k0), a + (long)k0 * csA, rsA, csA, b + (long)k0 * rsB, rsB, csB,
                        pp + (long)piece * m * n, n, accumulate: false);
                }
                nint pc = (nint)c, ppart = (nint)pp;
                // C (+)= P0 + P1 + ... in slice order, row by row.
                Parallel.For(0, m, parallelism, i =>
                {
                    var row = new Span<float>((float*)pc + (long)i * ldc, n);
                    int first = 0;
                    if (!accumulate)
                    {
                        new ReadOnlySpan<float>((float*)ppart + (long)i * n, n).CopyTo(row);
                        first = 1;
                    }
                    for (int piece = first; piece < pieces; piece++)
                        TensorPrimitives.Add(row, new ReadOnlySpan<float>((float*)ppart + ((long)piece * m + i) * n, n), row);
                });
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(partial);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ComputeTile(float* a, int rsA, int csA, float* b, int rsB, int csB, float* c, int ldc,
        int k, bool accumulate, int i0, int rows, int j0, int columns, float* packed,
        float* sharedA, int sharedARows, float* sharedB, int sharedBColumns)
    {
        int rowPanels = CeilDiv(rows, MR), columnPanels = CeilDiv(columns, NR);
        for (int p0 = 0; p0 < k; p0 += KBlock)
        {
            int kc = Math.Min(KBlock, k - p0);
            bool add = accumulate || p0 > 0;
            // Shared packs (see Run) are used in place of packing the tile's slices here.
            float* prepackedA = sharedA == null ? null : sharedA + (long)p0 * sharedARows + (long)i0 * kc;
            float* prepackedB = sharedB == null ? null : sharedB + (long)p0 * sharedBColumns + (long)j0 * kc;
            float* packedA = prepackedA != null ? prepackedA : packed;                        // (rowPanels, kc, MR)
            float* packedB = prepackedB != null ? prepackedB : packed + MaxTileRows * KBlock; // (columnPanels, kc, NR)
            if (prepackedA == null) PackPanelsA(a, rsA, csA, i0, rows, p0, kc, packedA);
            if (prepackedB == null) PackPanelsB(b, rsB, csB, j0, columns, p0, kc, packedB);
            // B micro-panel (16 KB) stays in L1 while every A micro-panel of the tile streams past it.
            for (int jp = 0; jp < columnPanels; jp++)
            {
                int nr = Math.Min(NR, columns - jp * NR);
                for (int ip = 0; ip < rowPanels; ip++)
                {
                    int mr = Math.Min(MR, rows - ip * MR);
                    float* cTile = c + (long)(i0 + ip * MR) * ldc + j0 + jp * NR;
                    MicroKernel(kc, packedA + ip * kc * MR, packedB + jp * kc * NR, cTile, ldc, mr, nr, add);
                }
            }
        }
    }

    /// <summary>k taken this many at a time when one stored row feeds several micro-panels.</summary>
    private const int PackKChunk = 8;

    // Rows i0 .. i0+rows of A as consecutive micro-panels: panel ip at dst + ip*kc*MR.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanelsA(float* a, int rsA, int csA, int i0, int rows, int p0, int kc, float* dst)
    {
        int full = rows / MR, done = 0;
        if (rsA == 1 && full > 1)
        {
            // Stored transposed (A is (K, M)): stored row kk holds the rows of every panel side by side, so
            // it is read in order, a few k at a time, rather than once per panel.
            for (int k0 = 0; k0 < kc; k0 += PackKChunk)
            {
                int k1 = Math.Min(kc, k0 + PackKChunk);
                for (int ip = 0; ip < full; ip++)
                {
                    float* d = dst + ip * kc * MR;
                    for (int kk = k0; kk < k1; kk++)
                    {
                        float* src = a + (long)(p0 + kk) * csA + i0 + ip * MR;
                        Vector128.Store(Vector128.Load(src), d + kk * MR);
                        *(long*)(d + kk * MR + 4) = *(long*)(src + 4);
                    }
                }
            }
            done = full;
        }
        for (int ip = done; ip * MR < rows; ip++)
            PackA(a, rsA, csA, i0 + ip * MR, Math.Min(MR, rows - ip * MR), p0, kc, dst + ip * kc * MR);
    }

    // Columns j0 .. j0+columns of B as consecutive micro-panels: panel jp at dst + jp*kc*NR.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanelsB(float* b, int rsB, int csB, int j0, int columns, int p0, int kc, float* dst)
    {
        int full = columns / NR, done = 0;
        if (csB == 1 && full > 1)
        {
            // Row-major B: a stored row holds every panel's columns side by side (see PackPanelsA).
            for (int k0 = 0; k0 < kc; k0 += PackKChunk)
            {
                int k1 = Math.Min(kc, k0 + PackKChunk);
                for (int jp = 0; jp < full; jp++)
                {
                    float* d = dst + jp * kc * NR;
                    for (int kk = k0; kk < k1; kk++)
                    {
                        float* src = b + (long)(p0 + kk) * rsB + j0 + jp * NR;
                        Vector256.Store(Vector256.Load(src), d + kk * NR);
                        Vector256.Store(Vector256.Load(src + 8), d + kk * NR + 8);
                    }
                }
            }
            done = full;
        }
        for (int jp = done; jp * NR < columns; jp++)
            PackB(b, rsB, csB, j0 + jp * NR, Math.Min(NR, columns - jp * NR), p0, kc, dst + jp * kc * NR);
    }

    // Packed A micro-panel: dst[kk*MR + i] = A(i0+i, p0+kk), rows past the edge zero.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackA(float* a, int rsA, int csA, int i0, int mr, int p0, int kc, float* dst)
    {
        if (mr < MR) new Span<float>(dst, kc * MR).Clear();
        if (rsA == 1)
        {
            // Stored transposed: each kk is a contiguous run of rows.
            for (int kk = 0; kk < kc; kk++)
            {
                float* src = a + (long)(p0 + kk) * csA + i0;
                for (int i = 0; i < mr; i++) dst[kk * MR + i] = src[i];
            }
        }
        else
        {
            if (mr == MR && csA == 1)
            {
                // Six row streams read in step, the panel written contiguously.
                float* s0 = a + (long)i0 * rsA + p0;
                float* s1 = s0 + rsA, s2 = s1 + rsA, s3 = s2 + rsA, s4 = s3 + rsA, s5 = s4 + rsA;
                int kk = 0;
                if (Avx.IsSupported)
                {
                    // Eight k at a time through a register transpose; each 8-wide store spills two floats
                    // into the next k's slot, which the next store overwrites, so stop short of the last k.
                    for (; kk + 8 < kc; kk += 8, dst += 8 * MR)
                        Transpose6x8(s0 + kk, rsA, dst);
                }
                for (; kk < kc; kk++, dst += MR)
                {
                    dst[0] = s0[kk]; dst[1] = s1[kk]; dst[2] = s2[kk];
                    dst[3] = s3[kk]; dst[4] = s4[kk]; dst[5] = s5[kk];
                }
                return;
            }
            for (int i = 0; i < mr; i++)
            {
                float* src = a + (long)(i0 + i) * rsA + (long)p0 * csA;
                for (int kk = 0; kk < kc; kk++) dst[kk * MR + i] = src[(long)kk * csA];
            }
        }
    }

    // Packed B micro-panel: dst[kk*NR + j] = B(p0+kk, j0+j), columns past the edge zero.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackB(float* b, int rsB, int csB, int j0, int nr, int p0, int kc, float* dst)
    {
        if (csB == 1)
        {
            for (int kk = 0; kk < kc; kk++)
            {
                float* src = b + (long)(p0 + kk) * rsB + j0;
                float* d = dst + kk * NR;
                if (nr == NR)
                {
                    Vector256.Store(Vector256.Load(src), d);
                    Vector256.Store(Vector256.Load(src + 8), d + 8);
                }
                else
                {
                    for (int j = 0; j < nr; j++) d[j] = src[j];
                    for (int j = nr; j < NR; j++) d[j] = 0;
                }
            }
        }
        else
        {
            // Stored transposed (B is (N, K)): each column j is a contiguous run of k.
            if (nr < NR) new Span<float>(dst, kc * NR).Clear();
            int done = 0;
            if (rsB == 1 && nr == NR && Avx.IsSupported)
            {
                // 8x8 register transposes: eight contiguous k of eight columns at a time.
                for (; done + 8 <= kc; done += 8)
                {
                    Transpose8x8(b + (long)j0 * csB + p0 + done, csB, dst + done * NR, NR);
                    Transpose8x8(b + (long)(j0 + 8) * csB + p0 + done, csB, dst + done * NR + 8, NR);
                }
            }
            for (int j = 0; j < nr; j++)
            {
                float* src = b + (long)(j0 + j) * csB + (long)p0 * rsB;
                for (int kk = done; kk < kc; kk++) dst[kk * NR + j] = src[(long)kk * rsB];
            }
        }
    }

    // dst[q*MR + r] = src[r*ldSrc + q] for r < 6, q < 8, stored in increasing q with 8-wide stores, so
    // dst[8*MR .. 8*MR+1] is overwritten too (with junk).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose6x8(float* src, int ldSrc, float* dst)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + ldSrc);
        var r2 = Avx.LoadVector256(src + 2 * ldSrc); var r3 = Avx.LoadVector256(src + 3 * ldSrc);
        var r4 = Avx.LoadVector256(src + 4 * ldSrc); var r5 = Avx.LoadVector256(src + 5 * ldSrc);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t4, 0x44); var u5 = Avx.Shuffle(t4, t4, 0xEE);
        var u6 = Avx.Shuffle(t5, t5, 0x44); var u7 = Avx.Shuffle(t5, t5, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + MR, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * MR, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * MR, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * MR, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * MR, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * MR, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * MR, Avx.Permute2x128(u3, u7, 0x31));
    }

    // dst[q*ldDst + r] = src[r*ldSrc + q] for r, q < 8.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose8x8(float* src, int ldSrc, float* dst, int ldDst)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + ldSrc);
        var r2 = Avx.LoadVector256(src + 2 * ldSrc); var r3 = Avx.LoadVector256(src + 3 * ldSrc);
        var r4 = Avx.LoadVector256(src + 4 * ldSrc); var r5 = Avx.LoadVector256(src + 5 * ldSrc);
        var r6 = Avx.LoadVector256(src + 6 * ldSrc); var r7 = Avx.LoadVector256(src + 7 * ldSrc);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldDst, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * ldDst, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * ldDst, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * ldDst, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * ldDst, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * ldDst, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * ldDst, Avx.Permute2x128(u3, u7, 0x31));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MulAdd(Vector256<float> x, Vector256<float> y, Vector256<float> acc) =>
        Fma.IsSupported ? Fma.MultiplyAdd(x, y, acc) : acc + x * y;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Broadcast(float* x) =>
        Avx.IsSupported ? Avx.BroadcastScalarToVector256(x) : Vector256.Create(*x);

    // C[0..mr, 0..nr] (+)= Ap (kc, MR) · Bp (kc, NR).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel(int kc, float* ap, float* bp, float* c, int ldc, int mr, int nr, bool add)
    {
        if (mr == MR && nr == NR)
        {
            Kernel6x16(kc, ap, bp, c, ldc, add);
            return;
        }
        // Edge tile: the full product into a stack tile, then only the elements inside C.
        float* t = stackalloc float[MR * NR]; // (MR, NR)
        Kernel6x16(kc, ap, bp, t, NR, false);
        for (int i = 0; i < mr; i++)
        {
            float* row = c + (long)i * ldc;
            for (int j = 0; j < nr; j++) row[j] = add ? row[j] + t[i * NR + j] : t[i * NR + j];
        }
    }

    // C (6, 16) (+)= Ap (kc, MR) · Bp (kc, NR), the product held in 12 registers and k unrolled by two
    // (one k at a time, in order, per accumulator). Kept free of any other code so the JIT leaves the
    // accumulators in registers across the loop.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x16(int kc, float* ap, float* bp, float* c, int ldc, bool add)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        Vector256<float> b0, b1, x;
        float* end = ap + (kc & ~1) * MR;
        for (; ap < end; ap += 2 * MR, bp += 2 * NR)
        {
            b0 = Vector256.Load(bp + 0); b1 = Vector256.Load(bp + 8);
            x = Broadcast(ap + 0); c00 = MulAdd(x, b0, c00); c01 = MulAdd(x, b1, c01);
            x = Broadcast(ap + 1); c10 = MulAdd(x, b0, c10); c11 = MulAdd(x, b1, c11);
            x = Broadcast(ap + 2); c20 = MulAdd(x, b0, c20); c21 = MulAdd(x, b1, c21);
            x = Broadcast(ap + 3); c30 = MulAdd(x, b0, c30); c31 = MulAdd(x, b1, c31);
            x = Broadcast(ap + 4); c40 = MulAdd(x, b0, c40); c41 = MulAdd(x, b1, c41);
            x = Broadcast(ap + 5); c50 = MulAdd(x, b0, c50); c51 = MulAdd(x, b1, c51);
            b0 = Vector256.Load(bp + 16); b1 = Vector256.Load(bp + 24);
            x = Broadcast(ap + 6); c00 = MulAdd(x, b0, c00); c01 = MulAdd(x, b1, c01);
            x = Broadcast(ap + 7); c10 = MulAdd(x, b0, c10); c11 = MulAdd(x, b1, c11);
            x = Broadcast(ap + 8); c20 = MulAdd(x, b0, c20); c21 = MulAdd(x, b1, c21);
            x = Broadcast(ap + 9); c30 = MulAdd(x, b0, c30); c31 = MulAdd(x, b1, c31);
            x = Broadcast(ap + 10); c40 = MulAdd(x, b0, c40); c41 = MulAdd(x, b1, c41);
            x = Broadcast(ap + 11); c50 = MulAdd(x, b0, c50); c51 = MulAdd(x, b1, c51);
        }
        if ((kc & 1) != 0)
        {
            b0 = Vector256.Load(bp + 0); b1 = Vector256.Load(bp + 8);
            x = Broadcast(ap + 0); c00 = MulAdd(x, b0, c00); c01 = MulAdd(x, b1, c01);
            x = Broadcast(ap + 1); c10 = MulAdd(x, b0, c10); c11 = MulAdd(x, b1, c11);
            x = Broadcast(ap + 2); c20 = MulAdd(x, b0, c20); c21 = MulAdd(x, b1, c21);
            x = Broadcast(ap + 3); c30 = MulAdd(x, b0, c30); c31 = MulAdd(x, b1, c31);
            x = Broadcast(ap + 4); c40 = MulAdd(x, b0, c40); c41 = MulAdd(x, b1, c41);
            x = Broadcast(ap + 5); c50 = MulAdd(x, b0, c50); c51 = MulAdd(x, b1, c51);
        }
        Store(c, c00, c01, add);
        Store(c + ldc, c10, c11, add);
        Store(c + 2 * (long)ldc, c20, c21, add);
        Store(c + 3 * (long)ldc, c30, c31, add);
        Store(c + 4 * (long)ldc, c40, c41, add);
        Store(c + 5 * (long)ldc, c50, c51, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> v0, Vector256<float> v1, bool add)
    {
        if (add)
        {
            v0 += Vector256.Load(c);
            v1 += Vector256.Load(c + 8);
        }
        Vector256.Store(v0, c);
        Vector256.Store(v1, c + 8);
    }

    // Packed panels start on a 64-byte line, so no 32-byte load of the micro-kernel straddles two lines.
    private const int AlignFloats = 16;

    private static float* Align(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    private static int CeilDiv(int x, int y) => (x + y - 1) / y;

    private static int RoundUp(int x, int multiple) => CeilDiv(Math.Max(x, 1), multiple) * multiple;
}

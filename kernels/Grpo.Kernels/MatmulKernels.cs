using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>
/// Sizes and strides of one product C (M, N) = alpha · A·B [+ C, or + bias per column]. A(i, k) is read at
/// a[i·RowStrideA + k·ColumnStrideA] and B(k, j) at b[k·RowStrideB + j·ColumnStrideB], so the
/// three row-major forms (A·Bᵀ, A·B, Aᵀ·B) are the same kernel with different strides.
/// </summary>
public readonly struct MatmulArgs
{
    /// <summary>Rows of C.</summary>
    public readonly int M;

    /// <summary>Columns of C.</summary>
    public readonly int N;

    /// <summary>The summed dimension.</summary>
    public readonly int K;

    /// <summary>Elements between A(i, k) and A(i + 1, k).</summary>
    public readonly int RowStrideA;

    /// <summary>Elements between A(i, k) and A(i, k + 1).</summary>
    public readonly int ColumnStrideA;

    /// <summary>Elements between B(k, j) and B(k + 1, j).</summary>
    public readonly int RowStrideB;

    /// <summary>Elements between B(k, j) and B(k, j + 1).</summary>
    public readonly int ColumnStrideB;

    /// <summary>Leading dimension of the row-major C.</summary>
    public readonly int Ldc;

    /// <summary>Scale applied to the product.</summary>
    public readonly float Alpha;

    /// <summary>1 to add into C, 0 to overwrite it.</summary>
    public readonly int Accumulate;

    /// <summary>1 to add bias[j] to column j as C is written (a linear layer's bias; never with <see cref="Accumulate"/>).</summary>
    public readonly int AddsBias;

    /// <summary>The k values one slice of the grid's Z axis sums (K when K is not split).</summary>
    public readonly int KChunk;

    /// <summary>Elements between the outputs of consecutive K slices (0 when K is not split: one output).</summary>
    public readonly long SplitStride;

    private MatmulArgs(int m, int n, int k, int rsA, int csA, int rsB, int csB, int ldc, float alpha, bool accumulate,
        int kChunk, long splitStride, bool addsBias = false)
    {
        M = m; N = n; K = k;
        RowStrideA = rsA; ColumnStrideA = csA; RowStrideB = rsB; ColumnStrideB = csB;
        Ldc = ldc; Alpha = alpha; Accumulate = accumulate ? 1 : 0; AddsBias = addsBias ? 1 : 0;
        KChunk = kChunk; SplitStride = splitStride;
    }

    private MatmulArgs(int m, int n, int k, int rsA, int csA, int rsB, int csB, int ldc, float alpha, bool accumulate)
        : this(m, n, k, rsA, csA, rsB, csB, ldc, alpha, accumulate, k, 0) { }

    /// <summary>
    /// The same product writing C = alpha · A·B + bias[j]: the bits of C filled with the bias and then accumulated into
    /// (one rounding of bias + product either way), without the launch that fills it.
    /// </summary>
    public MatmulArgs WithBias() =>
        new(M, N, K, RowStrideA, ColumnStrideA, RowStrideB, ColumnStrideB, Ldc, Alpha, accumulate: false, KChunk, SplitStride, addsBias: true);

    /// <summary>This product with its bias taken from C instead: for a caller that filled C with the bias first (cuBLAS, β = 1).</summary>
    public MatmulArgs BiasFromOutput() =>
        new(M, N, K, RowStrideA, ColumnStrideA, RowStrideB, ColumnStrideB, Ldc, Alpha, accumulate: true, KChunk, SplitStride);

    /// <summary>
    /// The same product cut into slices of <paramref name="kChunk"/> k values (a multiple of <see cref="MatmulKernels.KTile"/>),
    /// slice z writing its plain partial sum (alpha 1, no accumulation) to a dense (M, N) block at z·M·N of the kernel's
    /// output; <see cref="MatmulKernels.SumSplits"/> then adds the slices in z order into C with this product's alpha (and bias).
    /// </summary>
    public MatmulArgs SplitK(int kChunk) =>
        new(M, N, K, RowStrideA, ColumnStrideA, RowStrideB, ColumnStrideB, N, 1f, accumulate: false, kChunk, (long)M * N);

    /// <summary>C (M, N) = alpha · A (M, K) · B (N, K)ᵀ [+ C].</summary>
    public static MatmulArgs TransposedB(int m, int n, int k, int lda, int ldb, int ldc, float alpha, bool accumulate) =>
        new(m, n, k, lda, 1, 1, ldb, ldc, alpha, accumulate);

    /// <summary>C (M, N) = alpha · A (M, K) · B (K, N) [+ C].</summary>
    public static MatmulArgs Plain(int m, int n, int k, int lda, int ldb, int ldc, float alpha, bool accumulate) =>
        new(m, n, k, lda, 1, ldb, 1, ldc, alpha, accumulate);

    /// <summary>C (M, N) = alpha · A (K, M)ᵀ · B (K, N) [+ C].</summary>
    public static MatmulArgs TransposedA(int m, int n, int k, int lda, int ldb, int ldc, float alpha, bool accumulate) =>
        new(m, n, k, 1, lda, ldb, 1, ldc, alpha, accumulate);
}

/// <summary>
/// Tiled shared-memory matrix multiplication. A group of S x S threads (S = <c>Group.DimX</c> =
/// <c>Group.DimY</c>, a power of two up to <see cref="MaxGroupSide"/>) computes a (4S x 4S) tile of C,
/// each thread a 4 x 4 register block, staging <see cref="KTile"/>-wide slices of A and B in shared
/// memory. S = 4 fits the CPU simulator's 16-thread groups; S = 16 (256 threads, 64 x 64 tiles) is
/// the CUDA shape. Each element of C is summed in k order by one thread, so results are deterministic.
/// Launch with a grid of (⌈N / 4S⌉, ⌈M / 4S⌉, 1) groups; or, when the tiles are too few to fill the GPU (decode: M is the
/// number of sequences), with Z = the K slices of <see cref="MatmulArgs.SplitK"/> and then <see cref="SumSplits"/>.
/// Shared tiles are padded so that a warp's stores land in distinct banks (32 banks of 4 bytes): A's rows are
/// <see cref="KTile"/> + 1 = 17 words apart, so 32 consecutive i of one k (the Aᵀ·B form) hit 32 banks; B's rows are
/// 64 + 2 = 66 words apart, so the 16 k × 2 j a warp stores in the A·Bᵀ form (every projection and the LM head) hit
/// banks 2k + j, all distinct. Unpadded, both were 16-way conflicts.
/// </summary>
public static class MatmulKernels
{
    /// <summary>Outputs per thread along each axis.</summary>
    public const int RegisterTile = 4;

    /// <summary>The largest group side the shared tiles are sized for.</summary>
    public const int MaxGroupSide = 16;

    /// <summary>Width of the k slice staged in shared memory per step.</summary>
    public const int KTile = 16;

    private const int MaxTile = RegisterTile * MaxGroupSide;
    private const int AStride = KTile + 1, BStride = MaxTile + 2; // padded row lengths of the shared tiles (see above)

    /// <summary>C = alpha · A·B [+ C, or + bias] for the strides in <paramref name="p"/>; see <see cref="MatmulKernels"/> for the launch shape.</summary>
    /// <param name="p">Sizes, strides, alpha and the accumulate and bias flags.</param>
    /// <param name="a">A, (M, K) or stored (K, M) per the strides.</param>
    /// <param name="b">B, (K, N) or stored (N, K) per the strides.</param>
    /// <param name="c">(M, Ldc) row-major output.</param>
    /// <param name="bias">(N) added to each row when <see cref="MatmulArgs.AddsBias"/> is set; else unread.</param>
    public static void Matmul(MatmulArgs p, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        var aTile = SharedMemory.Allocate<float>(MaxTile * AStride); // (tileM, KTile) in rows of AStride
        var bTile = SharedMemory.Allocate<float>(KTile * BStride);   // (KTile, MaxTile) in rows of BStride
        int tx = Group.IdxX, ty = Group.IdxY, side = Group.DimX;
        int tile = RegisterTile * side, threads = side * side, tid = ty * side + tx;
        int i0 = Grid.IdxY * tile, j0 = Grid.IdxX * tile;
        int kBegin = Grid.IdxZ * p.KChunk, kEnd = XMath.Min(p.K, kBegin + p.KChunk);
        long outputOffset = Grid.IdxZ * p.SplitStride;

        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = kBegin; k0 < kEnd; k0 += KTile)
        {
            // Consecutive threads read consecutive addresses whichever way A and B are stored.
            for (int e = tid; e < tile * KTile; e += threads)
            {
                int i = p.ColumnStrideA == 1 ? e / KTile : e % tile;
                int kk = p.ColumnStrideA == 1 ? e % KTile : e / tile;
                int gi = i0 + i, gk = k0 + kk;
                aTile[i * AStride + kk] = gi < p.M && gk < kEnd ? a[(long)gi * p.RowStrideA + (long)gk * p.ColumnStrideA] : 0f;
            }
            for (int e = tid; e < tile * KTile; e += threads)
            {
                int j = p.ColumnStrideB == 1 ? e % tile : e / KTile;
                int kk = p.ColumnStrideB == 1 ? e / tile : e % KTile;
                int gj = j0 + j, gk = k0 + kk;
                bTile[kk * BStride + j] = gj < p.N && gk < kEnd ? b[(long)gk * p.RowStrideB + (long)gj * p.ColumnStrideB] : 0f;
            }
            Group.Barrier();
            for (int kk = 0; kk < KTile; kk++)
            {
                // Rows ty + r·S and columns tx + s·S: neighbouring threads touch neighbouring shared words.
                float a0 = aTile[ty * AStride + kk], a1 = aTile[(ty + side) * AStride + kk];
                float a2 = aTile[(ty + 2 * side) * AStride + kk], a3 = aTile[(ty + 3 * side) * AStride + kk];
                int bRow = kk * BStride + tx;
                float b0 = bTile[bRow], b1 = bTile[bRow + side], b2 = bTile[bRow + 2 * side], b3 = bTile[bRow + 3 * side];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }

        int row = i0 + ty, column = j0 + tx;
        var output = c.SubView(outputOffset, c.Length - outputOffset);
        Write(p, output, bias, row, column, side, c00, c01, c02, c03);
        Write(p, output, bias, row + side, column, side, c10, c11, c12, c13);
        Write(p, output, bias, row + 2 * side, column, side, c20, c21, c22, c23);
        Write(p, output, bias, row + 3 * side, column, side, c30, c31, c32, c33);
    }

    /// <summary>
    /// C(i, j) = alpha · Σ_z partials[z](i, j) [+ C(i, j), or + bias[j]], the slices added in z order (deterministic), for the product
    /// <paramref name="p"/> whose K was split into <paramref name="splits"/> slices by <see cref="MatmulArgs.SplitK"/>.
    /// </summary>
    /// <param name="index">Flat element of C, i·N + j.</param>
    /// <param name="p">The product as the caller asked for it (its alpha, accumulate flag and Ldc).</param>
    /// <param name="splits">Number of K slices.</param>
    /// <param name="partials">(splits, M, N) the slices' partial products.</param>
    /// <param name="c">(M, Ldc) output.</param>
    /// <param name="bias">(N) added to each row when <see cref="MatmulArgs.AddsBias"/> is set; else unread.</param>
    public static void SumSplits(Index1D index, MatmulArgs p, int splits, ArrayView<float> partials, ArrayView<float> c, ArrayView<float> bias)
    {
        long element = index, block = (long)p.M * p.N;
        float sum = 0f;
        for (int z = 0; z < splits; z++) sum += partials[z * block + element];
        long i = element / p.N, j = element % p.N, at = i * p.Ldc + j;
        Store(p, c, bias, at, (int)j, sum);
    }

    // One register row: columns j, j + S, j + 2S, j + 3S of C row i.
    private static void Write(MatmulArgs p, ArrayView<float> c, ArrayView<float> bias, int i, int j, int side, float v0, float v1, float v2,
        float v3)
    {
        if (i >= p.M) return;
        long at = (long)i * p.Ldc + j;
        if (j < p.N) Store(p, c, bias, at, j, v0);
        if (j + side < p.N) Store(p, c, bias, at + side, j + side, v1);
        if (j + 2 * side < p.N) Store(p, c, bias, at + 2 * side, j + 2 * side, v2);
        if (j + 3 * side < p.N) Store(p, c, bias, at + 3 * side, j + 3 * side, v3);
    }

    // C(i, j) at <paramref name="at"/> = alpha · value, plus C(i, j) or bias[j] where asked: one rounding of the sum either
    // way, so a bias added here gives the bits of a C filled with it and accumulated into.
    private static void Store(MatmulArgs p, ArrayView<float> c, ArrayView<float> bias, long at, int j, float value)
    {
        float scaled = p.Alpha * value;
        c[at] = p.Accumulate != 0 ? c[at] + scaled : p.AddsBias != 0 ? bias[j] + scaled : scaled;
    }
}

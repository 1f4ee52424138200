using Grpo.Kernels;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// The arguments of one column-major BLAS Sgemm, C = alpha · op(A)·op(B) + beta · C with C (M, N), as cuBLAS takes them,
/// for a row-major product <see cref="MatmulArgs"/>. Row-major C (M, N) is column-major Cᵀ (N, M) = Bᵀ·Aᵀ, so BLAS's A is
/// the product's B and BLAS's M is the product's N. An operand whose column stride is 1 is already the transpose BLAS
/// needs (op N, leading dimension = its row stride); one whose row stride is 1 is transposed (op T, the column stride).
/// </summary>
/// <param name="TransA">BLAS's op(A): <see cref="OpN"/> or <see cref="OpT"/> (the product's B).</param>
/// <param name="TransB">BLAS's op(B) (the product's A).</param>
/// <param name="M">Rows of BLAS's C: the product's N.</param>
/// <param name="N">Columns of BLAS's C: the product's M.</param>
/// <param name="K">The shared dimension.</param>
/// <param name="Alpha">The product's scale.</param>
/// <param name="Lda">Leading dimension of BLAS's A (the product's B).</param>
/// <param name="Ldb">Leading dimension of BLAS's B (the product's A).</param>
/// <param name="Beta">0 overwrites C (which BLAS then never reads); 1 accumulates onto it.</param>
/// <param name="Ldc">Leading dimension of C: the product's row stride of C.</param>
internal readonly record struct SgemmCall(int TransA, int TransB, int M, int N, int K, float Alpha, int Lda, int Ldb, float Beta, int Ldc)
{
    /// <summary>cublasOperation_t: CUBLAS_OP_N and CUBLAS_OP_T.</summary>
    public const int OpN = 0, OpT = 1;

    /// <summary>The Sgemm that computes <paramref name="args"/>' product (a bias must already be in C: see <see cref="MatmulArgs.BiasFromOutput"/>).</summary>
    public static SgemmCall For(MatmulArgs args)
    {
        if (args.AddsBias != 0)
            throw new ArgumentException("Sgemm has no bias argument: broadcast the bias into C and accumulate onto it (BiasFromOutput).", nameof(args));
        var (opA, lda) = Operand(args.K, args.N, args.RowStrideB, args.ColumnStrideB);
        var (opB, ldb) = Operand(args.M, args.K, args.RowStrideA, args.ColumnStrideA);
        // C's row stride is BLAS's ldc; with one row it is never used, and BLAS still wants at least max(1, N).
        int ldc = args.M <= 1 ? Math.Max(args.Ldc, Math.Max(1, args.N)) : args.Ldc;
        return new SgemmCall(opA, opB, args.N, args.M, args.K, args.Alpha, lda, ldb, args.Accumulate, ldc);
    }

    /// <summary>
    /// The BLAS op and leading dimension of a row-major operand X (rows, columns), X(r, c) at r·rowStride + c·columnStride.
    /// With unit column stride the memory is Xᵀ by columns, leading dimension rowStride (op N for BLAS, which needs Xᵀ);
    /// with unit row stride it is X by columns, leading dimension columnStride (op T). BLAS requires a leading dimension of
    /// at least max(1, rows of the stored matrix); a stride along a dimension of 0 or 1 element is never used, so it is
    /// raised to that (an (N, 1) matrix stored with both strides 1 would otherwise read as an invalid op N with ld 1).
    /// </summary>
    internal static (int Op, int Ld) Operand(int rows, int columns, int rowStride, int columnStride)
    {
        if (columnStride == 1 && (rowStride >= columns || rows <= 1)) return (OpN, Math.Max(rowStride, Math.Max(1, columns)));
        if (rowStride == 1 && (columnStride >= rows || columns <= 1)) return (OpT, Math.Max(columnStride, Math.Max(1, rows)));
        throw new ArgumentException(
            $"A GEMM operand of {rows} x {columns} needs a unit stride and rows that do not overlap; got strides {rowStride} and {columnStride}.");
    }
}

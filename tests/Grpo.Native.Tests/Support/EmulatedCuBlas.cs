using Grpo.Native.Ilgpu;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Tests.Support;

/// <summary>
/// cublasSgemm_v2 emulated on the ILGPU simulator, for running the backend's path to cuBLAS without a GPU. It refuses what
/// cuBLAS refuses with CUBLAS_STATUS_INVALID_VALUE (a negative size, an op other than N or T, a leading dimension below
/// max(1, rows of the stored matrix)) and what a GPU would only show as garbage or a fault: an element read or written
/// outside the views it was given. It computes C = alpha · op(A)·op(B) + beta · C by columns, each sum in double and
/// rounded once, and with beta = 0 never reads C (a NaN there does not propagate), as BLAS specifies.
/// </summary>
internal sealed class EmulatedCuBlas(Accelerator accelerator) : IGemmLibrary
{
    /// <summary>Sgemm calls so far.</summary>
    public int Calls { get; private set; }

    public string Description => "cuBLAS emulated on the simulator (fp32)";

    public bool Tf32 => false;

    public void Sgemm(in SgemmCall call, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c)
    {
        Validate(call, a.Length, b.Length, c.Length);
        Calls++;
        if (call.M == 0 || call.N == 0) return;
        accelerator.Synchronize(); // the kernels queued before it wrote A, B and C
        var hostA = new float[a.Length];
        var hostB = new float[b.Length];
        var hostC = new float[c.Length];
        a.CopyToCPU(hostA);
        b.CopyToCPU(hostB);
        c.CopyToCPU(hostC);
        Compute(call, hostA, hostB, hostC);
        c.CopyFromCPU(hostC);
    }

    /// <summary>The Sgemm on host arrays (checked first): C = alpha · op(A)·op(B) + beta · C, each sum in double, rounded once.</summary>
    internal static void Compute(in SgemmCall call, float[] a, float[] b, float[] c)
    {
        Validate(call, a.Length, b.Length, c.Length);
        for (int j = 0; j < call.N; j++)
        for (int i = 0; i < call.M; i++)
        {
            double sum = 0;
            for (int p = 0; p < call.K; p++)
                sum += (double)ElementA(call, a, i, p) * ElementB(call, b, p, j);
            long at = i + (long)j * call.Ldc;
            c[at] = (float)(call.Alpha * sum + (call.Beta == 0 ? 0 : call.Beta * (double)c[at]));
        }
    }

    // op(A)(i, p), A stored by columns with leading dimension Lda.
    private static float ElementA(in SgemmCall call, float[] a, int i, int p) =>
        call.TransA == SgemmCall.OpN ? a[i + (long)p * call.Lda] : a[p + (long)i * call.Lda];

    // op(B)(p, j).
    private static float ElementB(in SgemmCall call, float[] b, int p, int j) =>
        call.TransB == SgemmCall.OpN ? b[p + (long)j * call.Ldb] : b[j + (long)p * call.Ldb];

    /// <summary>cuBLAS's argument checks (its documentation of cublas&lt;t&gt;gemm), then every index against the views.</summary>
    internal static void Validate(SgemmCall call, long lengthA, long lengthB, long lengthC)
    {
        void Refuse(string why) => throw new InvalidOperationException($"cublasSgemm_v2 returned CUBLAS_STATUS_INVALID_VALUE: {why} ({call}).");
        if (call.M < 0 || call.N < 0 || call.K < 0) Refuse("a negative size");
        if (call.TransA is not (SgemmCall.OpN or SgemmCall.OpT) || call.TransB is not (SgemmCall.OpN or SgemmCall.OpT)) Refuse("an unknown op");
        int rowsA = call.TransA == SgemmCall.OpN ? call.M : call.K, columnsA = call.TransA == SgemmCall.OpN ? call.K : call.M;
        int rowsB = call.TransB == SgemmCall.OpN ? call.K : call.N, columnsB = call.TransB == SgemmCall.OpN ? call.N : call.K;
        if (call.Lda < Math.Max(1, rowsA)) Refuse($"lda {call.Lda} < max(1, {rowsA})");
        if (call.Ldb < Math.Max(1, rowsB)) Refuse($"ldb {call.Ldb} < max(1, {rowsB})");
        if (call.Ldc < Math.Max(1, call.M)) Refuse($"ldc {call.Ldc} < max(1, {call.M})");
        if (call.M == 0 || call.N == 0) return;
        // The last element of each stored matrix that the call touches must lie inside its view.
        void Inside(string name, int rows, int columns, int ld, long length)
        {
            long last = rows == 0 || columns == 0 ? -1 : rows - 1 + (long)(columns - 1) * ld;
            if (last >= length)
                throw new IndexOutOfRangeException($"Sgemm would touch element {last} of {name}, whose view holds {length} ({call}).");
        }
        Inside("A", rowsA, columnsA, call.Lda, lengthA);
        Inside("B", rowsB, columnsB, call.Ldb, lengthB);
        Inside("C", call.M, call.N, call.Ldc, lengthC);
    }

    public void Dispose() { }
}

using System.Runtime.InteropServices;
using Grpo.Kernels;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// A thin binding of the four cuBLAS calls the GEMMs need (create, set stream, set math mode, Sgemm), resolved from
/// the library <see cref="CuBlasLibrary"/> finds, on the accelerator's context and stream. fp32 math by default, so
/// every precision bound of the ILGPU kernel holds; TF32 tensor cores only when asked (<see cref="Devices.CudaOptions"/>, whose
/// remarks give TF32's wider bound).
/// </summary>
internal sealed unsafe class CuBlas : IDisposable
{
    private const int OpN = 0, OpT = 1;                   // cublasOperation_t
    private const int DefaultMath = 0, Tf32Math = 3;      // cublasMath_t: CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH

    private readonly CudaAccelerator _accelerator;
    private readonly IntPtr _handle;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, float*, IntPtr, int, IntPtr, int, float*, IntPtr, int, int> _sgemm;
    private readonly delegate* unmanaged<IntPtr, int> _destroy;

    private CuBlas(CudaAccelerator accelerator, IntPtr library, string loadedFrom, bool tf32)
    {
        _accelerator = accelerator;
        var create = (delegate* unmanaged<IntPtr*, int>)NativeLibrary.GetExport(library, "cublasCreate_v2");
        var setStream = (delegate* unmanaged<IntPtr, IntPtr, int>)NativeLibrary.GetExport(library, "cublasSetStream_v2");
        var setMathMode = (delegate* unmanaged<IntPtr, int, int>)NativeLibrary.GetExport(library, "cublasSetMathMode");
        _sgemm = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, IntPtr, int, IntPtr, int, float*, IntPtr, int, int>)
            NativeLibrary.GetExport(library, "cublasSgemm_v2");
        _destroy = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(library, "cublasDestroy_v2");
        accelerator.Bind(); // cuBLAS takes the current context: the accelerator's
        IntPtr handle;
        Check(create(&handle), "cublasCreate_v2");
        _handle = handle;
        Check(setStream(_handle, ((CudaStream)accelerator.DefaultStream).StreamPtr), "cublasSetStream_v2");
        Check(setMathMode(_handle, tf32 ? Tf32Math : DefaultMath), "cublasSetMathMode");
        LoadedFrom = loadedFrom;
        Tf32 = tf32;
    }

    /// <summary>The library file that loaded.</summary>
    public string LoadedFrom { get; }

    /// <summary>True when TF32 tensor-core math is on.</summary>
    public bool Tf32 { get; }

    /// <summary>cuBLAS on <paramref name="accelerator"/>, or null with the reason (every path tried) when it cannot load.</summary>
    /// <param name="accelerator">The CUDA accelerator whose context and stream the GEMMs use.</param>
    /// <param name="tf32">TF32 tensor-core math instead of fp32.</param>
    /// <param name="message">What loaded, or why nothing did.</param>
    public static CuBlas? TryCreate(CudaAccelerator accelerator, bool tf32, out string message)
    {
        if (!CuBlasLibrary.TryLoad(out var library, out string from, out var tried))
        {
            message = $"cuBLAS not found (tried {string.Join(", ", tried)}); GEMMs use the ILGPU kernel. " +
                      $"Set {CudaLibrarySearch.FolderVariable} to the folder holding libcublas.so.N.";
            return null;
        }
        try
        {
            var blas = new CuBlas(accelerator, library, from, tf32);
            message = $"cuBLAS from {from} ({(tf32 ? "TF32 tensor cores" : "fp32")})";
            return blas;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or InvalidOperationException)
        {
            message = $"cuBLAS at {from} did not start ({e.Message}); GEMMs use the ILGPU kernel.";
            return null;
        }
    }

    /// <summary>
    /// Queues C = alpha · A·B [+ C] (<paramref name="args"/>' row-major forms) as one Sgemm. Row-major C (M, N) is
    /// column-major Cᵀ (N, M) = Bᵀ·Aᵀ, so cuBLAS gets B first; an operand whose column stride is 1 is already the
    /// transpose cuBLAS needs (no op), one whose row stride is 1 is transposed.
    /// </summary>
    public void Gemm(MatmulArgs args, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c)
    {
        var (opA, lda) = Operand(args.RowStrideA, args.ColumnStrideA);
        var (opB, ldb) = Operand(args.RowStrideB, args.ColumnStrideB);
        float alpha = args.Alpha, beta = args.Accumulate;
        Check(_sgemm(_handle, opB, opA, args.N, args.M, args.K, &alpha, b.LoadEffectiveAddressAsPtr(), ldb,
            a.LoadEffectiveAddressAsPtr(), lda, &beta, c.LoadEffectiveAddressAsPtr(), args.Ldc), "cublasSgemm_v2");
    }

    /// <summary>The cuBLAS op and leading dimension of an operand stored with the given strides (one of them 1).</summary>
    internal static (int Op, int Ld) Operand(int outerStride, int innerStride) =>
        innerStride == 1 ? (OpN, outerStride) : outerStride == 1 ? (OpT, innerStride)
        : throw new ArgumentException($"A GEMM operand needs a unit stride; got {outerStride} and {innerStride}.");

    private static void Check(int status, string call)
    {
        if (status != 0) throw new InvalidOperationException($"{call} returned cuBLAS status {status}.");
    }

    public void Dispose() => _destroy(_handle);
}

using System.Runtime.InteropServices;
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
internal sealed unsafe class CuBlas : IGemmLibrary
{
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

    /// <inheritdoc />
    public bool Tf32 { get; }

    /// <inheritdoc />
    public string Description => $"cuBLAS from {LoadedFrom} ({(Tf32 ? "TF32" : "fp32")})";

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
            message = blas.Description;
            return blas;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or InvalidOperationException)
        {
            message = $"cuBLAS at {from} did not start ({e.Message}); GEMMs use the ILGPU kernel.";
            return null;
        }
    }

    /// <inheritdoc />
    public void Sgemm(in SgemmCall call, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c)
    {
        float alpha = call.Alpha, beta = call.Beta;
        _accelerator.Bind(); // cuBLAS runs on the calling thread's current context, which must be the accelerator's
        Check(_sgemm(_handle, call.TransA, call.TransB, call.M, call.N, call.K, &alpha, a.LoadEffectiveAddressAsPtr(), call.Lda,
            b.LoadEffectiveAddressAsPtr(), call.Ldb, &beta, c.LoadEffectiveAddressAsPtr(), call.Ldc), "cublasSgemm_v2");
    }

    private static void Check(int status, string call)
    {
        if (status != 0) throw new InvalidOperationException($"{call} returned cuBLAS status {status}.");
    }

    public void Dispose() => _destroy(_handle);
}

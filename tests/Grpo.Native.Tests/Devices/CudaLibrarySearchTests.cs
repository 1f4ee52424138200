using Grpo.Kernels;
using Grpo.Native.Ilgpu;
using NUnit.Framework;

namespace Grpo.Native.Tests.Devices;

/// <summary>
/// Where the CUDA driver and cuBLAS are looked for, and how a row-major product maps onto cuBLAS's column-major
/// Sgemm: checked without loading either library (there is no GPU here).
/// </summary>
public sealed class CudaLibrarySearchTests
{
    [Test]
    public void TheDriverIsAlsoLookedForAsLibcudaSo1()
    {
        if (OperatingSystem.IsWindows()) Assert.Ignore("Linux library names");
        Assert.That(CudaDriverLibrary.Candidates("libcuda.so"), Is.EqualTo(new[] { "libcuda.so", "libcuda.so.1" }));
        Assert.That(CudaDriverLibrary.Candidates("cuda"), Is.EqualTo(new[] { "libcuda.so", "libcuda.so.1" }), "ILGPU's import name");
        Assert.That(CudaDriverLibrary.Candidates("libcuda.so.1"), Is.EqualTo(new[] { "libcuda.so.1" }));
        Assert.That(CudaDriverLibrary.IsDriverImport("libcuda.so") && CudaDriverLibrary.IsDriverImport("nvcuda"));
        Assert.That(CudaDriverLibrary.IsDriverImport("libcudart.so.12") || CudaDriverLibrary.IsDriverImport("libnvidia-ml.so"), Is.False);
    }

    /// <summary>
    /// Without a GPU, creating a cuda device names what was looked for and why it failed: no driver library (this machine),
    /// or a driver that reports no GPU. (With a GPU the device is created and there is nothing to check here.)
    /// </summary>
    [Test]
    public void CudaWithoutAGpuSaysWhetherTheDriverLoaded()
    {
        if (IlgpuDevice.IsCudaAvailable()) Assert.Pass("a CUDA GPU is visible");
        var error = Assert.Throws<NotSupportedException>(() => IlgpuDevice.CreateCuda())!;
        Assert.That(error.Message, Does.StartWith("No usable CUDA GPU").And.Contain("libcuda.so.1"));
        Assert.That(error.Message, Does.Contain(CudaDriverLibrary.AnyLoaded() ? "the driver reports no CUDA GPU" : "no CUDA driver library could be loaded"));
    }

    [Test]
    public void CuBlasIsTriedInTheNamedFolderThenOnTheLoaderPathThenInWheelFolders()
    {
        var tried = CudaLibrarySearch.Candidates(CuBlasLibrary.FileNames, "/opt/cuda-libs", ["/site/nvidia/cublas/lib"]);
        Assert.That(tried, Is.EqualTo(new[]
        {
            "/opt/cuda-libs/libcublas.so.13", "/opt/cuda-libs/libcublas.so.12", "/opt/cuda-libs/libcublas.so.11",
            "libcublas.so.13", "libcublas.so.12", "libcublas.so.11",
            "/site/nvidia/cublas/lib/libcublas.so.13", "/site/nvidia/cublas/lib/libcublas.so.12", "/site/nvidia/cublas/lib/libcublas.so.11",
        }));
        Assert.That(CudaLibrarySearch.Candidates(CuBlasLibrary.FileNames, null, []), Is.EqualTo(new[] { "libcublas.so.13", "libcublas.so.12", "libcublas.so.11" }));
    }

    [Test]
    public void WheelFoldersAreEveryNvidiaPackagesLibFolderInOrder()
    {
        string root = Path.Combine(Path.GetTempPath(), "grpo-site-" + Guid.NewGuid().ToString("N"));
        try
        {
            foreach (string package in new[] { "cublas", "cu13", "cuda_runtime" })
                Directory.CreateDirectory(Path.Combine(root, "nvidia", package, "lib"));
            Directory.CreateDirectory(Path.Combine(root, "nvidia", "no_lib_here"));
            var folders = CudaLibrarySearch.NvidiaLibFolders([Path.Combine(root, "missing"), root]);
            Assert.That(folders, Is.EqualTo(new[] { "cu13", "cublas", "cuda_runtime" }.Select(p => Path.Combine(root, "nvidia", p, "lib"))));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: a row-major operand is already its transpose for cuBLAS (op N, ld = row stride).</summary>
    [Test]
    public void EachRowMajorFormMapsToTheCuBlasOpAndLeadingDimension()
    {
        const int OpN = 0, OpT = 1;
        // A·Bᵀ (LinearForward): A (M, K) row-major, B (N, K) row-major read as (K, N) by column.
        var tb = MatmulArgs.TransposedB(m: 5, n: 7, k: 3, lda: 3, ldb: 3, ldc: 7, 1f, accumulate: false);
        Assert.That(CuBlas.Operand(tb.RowStrideA, tb.ColumnStrideA), Is.EqualTo((OpN, 3)));
        Assert.That(CuBlas.Operand(tb.RowStrideB, tb.ColumnStrideB), Is.EqualTo((OpT, 3)));
        // A·B (dInput): both row-major.
        var plain = MatmulArgs.Plain(m: 5, n: 3, k: 7, lda: 7, ldb: 3, ldc: 3, 1f, accumulate: true);
        Assert.That(CuBlas.Operand(plain.RowStrideA, plain.ColumnStrideA), Is.EqualTo((OpN, 7)));
        Assert.That(CuBlas.Operand(plain.RowStrideB, plain.ColumnStrideB), Is.EqualTo((OpN, 3)));
        // Aᵀ·B (dWeight): A stored (K, M).
        var ta = MatmulArgs.TransposedA(m: 7, n: 3, k: 5, lda: 7, ldb: 3, ldc: 3, 1f, accumulate: true);
        Assert.That(CuBlas.Operand(ta.RowStrideA, ta.ColumnStrideA), Is.EqualTo((OpT, 7)));
        Assert.That(CuBlas.Operand(ta.RowStrideB, ta.ColumnStrideB), Is.EqualTo((OpN, 3)));
    }
}

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
}

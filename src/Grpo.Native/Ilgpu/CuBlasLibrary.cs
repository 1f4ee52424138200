using System.Runtime.InteropServices;

namespace Grpo.Native.Ilgpu;

/// <summary>cuBLAS's file names, newest major version first, found by <see cref="CudaLibrarySearch"/>.</summary>
internal static class CuBlasLibrary
{
    /// <summary>Major versions tried, newest first.</summary>
    public static readonly int[] MajorVersions = [13, 12, 11];

    /// <summary>libcublas.so.13, .12, .11.</summary>
    public static readonly string[] FileNames = MajorVersions.Select(v => $"libcublas.so.{v}").ToArray();

    /// <summary>Loads the newest cuBLAS found; <paramref name="tried"/> lists every attempt for messages.</summary>
    public static bool TryLoad(out IntPtr handle, out string loadedFrom, out IReadOnlyList<string> tried) =>
        CudaLibrarySearch.TryLoad(FileNames, out handle, out loadedFrom, out tried, beforeLoad: file =>
        {
            // A file in a wheel folder needs its sibling libcublasLt first: load it from there so the loader finds it.
            string lt = Path.Combine(Path.GetDirectoryName(file)!, Path.GetFileName(file).Replace("libcublas", "libcublasLt"));
            if (File.Exists(lt)) NativeLibrary.TryLoad(lt, out _);
        });
}

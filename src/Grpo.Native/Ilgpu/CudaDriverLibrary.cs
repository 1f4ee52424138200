using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// Finds the CUDA driver for ILGPU. ILGPU 1.5 asks the loader for <c>libcuda.so</c>, the development link that
/// driver-only installs (containers, most cloud images) lack: they ship only <c>libcuda.so.1</c>. A resolver on
/// ILGPU's assembly tries the name ILGPU asks for, then <c>libcuda.so.1</c>, and remembers what it tried, so
/// "no GPU" can say exactly what was looked for.
/// </summary>
internal static class CudaDriverLibrary
{
    private static readonly object Gate = new();
    private static readonly List<string> Attempts = [];
    private static bool _installed;

    /// <summary>The file names tried for a driver import of <paramref name="requested"/> (ILGPU asks for "cuda"), in order.</summary>
    internal static IReadOnlyList<string> Candidates(string requested) =>
        OperatingSystem.IsWindows() ? [requested] : requested == "libcuda.so.1" ? [requested] : ["libcuda.so", "libcuda.so.1"];

    /// <summary>True for the names under which ILGPU imports the driver API (not the runtime, NVML or other CUDA libraries).</summary>
    internal static bool IsDriverImport(string name) =>
        name is "cuda" or "nvcuda" or "libcuda" || name.StartsWith("libcuda.so", StringComparison.Ordinal);

    /// <summary>Installs the resolver once; safe to call from every device creation.</summary>
    public static void Install()
    {
        lock (Gate)
        {
            if (_installed) return;
            _installed = true;
            try
            {
                NativeLibrary.SetDllImportResolver(typeof(Context).Assembly, Resolve);
            }
            catch (InvalidOperationException)
            {
                // Someone else (ILGPU itself, in a later version) already resolves its imports: leave it to them.
            }
        }
    }

    /// <summary>What the resolver tried so far, for an error message: "libcuda.so (not found), libcuda.so.1 (loaded)".</summary>
    public static string Describe()
    {
        lock (Gate)
            return Attempts.Count == 0 ? "nothing (ILGPU did not ask for the driver)" : string.Join(", ", Attempts.Distinct());
    }

    /// <summary>True when one of the resolver's attempts loaded a driver library.</summary>
    public static bool AnyLoaded()
    {
        lock (Gate) return Attempts.Any(a => a.EndsWith("(loaded)", StringComparison.Ordinal));
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!IsDriverImport(name)) return IntPtr.Zero; // the default search handles everything else
        foreach (string candidate in Candidates(name))
        {
            bool loaded = NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle);
            lock (Gate) Attempts.Add($"{candidate} ({(loaded ? "loaded" : "not found")})");
            if (loaded) return handle;
        }
        return IntPtr.Zero;
    }
}

using System.Runtime.InteropServices;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// Where CUDA libraries the project binds at run time (cuBLAS, NCCL) are looked for, in order: a folder named by
/// <c>GRPO_CUDA_LIBS</c>, then the loader path (LD_LIBRARY_PATH, ldconfig), then the <c>nvidia/*/lib</c> folders of Python
/// installations' site-packages, where PyTorch's CUDA wheels put them (GPU machines often carry CUDA only that way).
/// The search is a pure function of its inputs so tests can check the order without loading anything.
/// </summary>
internal static class CudaLibrarySearch
{
    /// <summary>Environment variable naming a folder that holds the libraries (libcublas.so.N, libcublasLt.so.N, libnccl.so.2).</summary>
    public const string FolderVariable = "GRPO_CUDA_LIBS";

    /// <summary>
    /// The paths or names tried, in order: <paramref name="folder"/>'s <paramref name="fileNames"/>; the bare names for
    /// the loader path; each <paramref name="nvidiaLibFolders"/> entry's <paramref name="fileNames"/>.
    /// </summary>
    /// <param name="fileNames">The library's file names, preferred first (newest major version first).</param>
    /// <param name="folder">GRPO_CUDA_LIBS's folder, or null.</param>
    /// <param name="nvidiaLibFolders">Wheel folders (<see cref="NvidiaLibFolders"/>).</param>
    public static IReadOnlyList<string> Candidates(IReadOnlyList<string> fileNames, string? folder, IEnumerable<string> nvidiaLibFolders)
    {
        var result = new List<string>();
        if (!string.IsNullOrWhiteSpace(folder)) result.AddRange(fileNames.Select(n => Path.Combine(folder, n)));
        result.AddRange(fileNames);
        foreach (string lib in nvidiaLibFolders) result.AddRange(fileNames.Select(n => Path.Combine(lib, n)));
        return result;
    }

    /// <summary>
    /// The <c>nvidia/*/lib</c> folders (sorted) under each site-packages root: the Python of an active virtual
    /// environment or conda, then the user's and the system's.
    /// </summary>
    public static IReadOnlyList<string> NvidiaLibFolders(IEnumerable<string> sitePackages) =>
        sitePackages.Where(Directory.Exists)
            .SelectMany(root => Directory.Exists(Path.Combine(root, "nvidia"))
                ? Directory.GetDirectories(Path.Combine(root, "nvidia")).Order(StringComparer.Ordinal).Select(d => Path.Combine(d, "lib"))
                : [])
            .Where(Directory.Exists)
            .ToList();

    /// <summary>Site-packages roots on this machine, in search order.</summary>
    public static IEnumerable<string> SitePackages()
    {
        var prefixes = new List<string>();
        foreach (string variable in new[] { "VIRTUAL_ENV", "CONDA_PREFIX" })
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } prefix) prefixes.Add(prefix);
        prefixes.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local"));
        prefixes.AddRange(["/usr/local", "/usr", "/opt/conda"]);
        foreach (string prefix in prefixes)
        {
            string lib = Path.Combine(prefix, "lib");
            if (!Directory.Exists(lib)) continue;
            foreach (string python in Directory.GetDirectories(lib, "python3*").Order(StringComparer.Ordinal).Reverse())
            {
                yield return Path.Combine(python, "site-packages");
                yield return Path.Combine(python, "dist-packages");
            }
        }
        yield return "/usr/lib/python3/dist-packages";
    }

    /// <summary>Loads the first candidate of <paramref name="fileNames"/> that loads.</summary>
    /// <param name="fileNames">The library's file names, preferred first.</param>
    /// <param name="handle">The loaded library.</param>
    /// <param name="loadedFrom">The candidate that loaded.</param>
    /// <param name="tried">Every candidate, for messages.</param>
    /// <param name="beforeLoad">Called with a file that exists in a folder before it is loaded (to load its siblings first).</param>
    public static bool TryLoad(IReadOnlyList<string> fileNames, out IntPtr handle, out string loadedFrom, out IReadOnlyList<string> tried,
        Action<string>? beforeLoad = null)
    {
        var candidates = Candidates(fileNames, Environment.GetEnvironmentVariable(FolderVariable), NvidiaLibFolders(SitePackages()));
        tried = candidates;
        foreach (string candidate in candidates)
        {
            if (Path.IsPathRooted(candidate))
            {
                if (!File.Exists(candidate)) continue;
                beforeLoad?.Invoke(candidate);
            }
            if (NativeLibrary.TryLoad(candidate, out handle))
            {
                loadedFrom = candidate;
                return true;
            }
        }
        handle = IntPtr.Zero;
        loadedFrom = "";
        return false;
    }
}

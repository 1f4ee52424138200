using System.Runtime.InteropServices;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// Where cuBLAS is looked for at run time, newest major version first: a folder named by <c>GRPO_CUDA_LIBS</c>,
/// then the loader path (LD_LIBRARY_PATH, ldconfig), then the <c>nvidia/*/lib</c> folders of Python installations'
/// site-packages, where PyTorch's CUDA wheels put it (GPU machines often carry CUDA only that way).
/// The search is a pure function of its inputs so tests can check the order without loading anything.
/// </summary>
internal static class CuBlasLibrary
{
    /// <summary>Environment variable naming a folder that holds libcublas.so.N (and libcublasLt.so.N).</summary>
    public const string FolderVariable = "GRPO_CUDA_LIBS";

    /// <summary>Major versions tried, newest first.</summary>
    public static readonly int[] MajorVersions = [13, 12, 11];

    /// <summary>
    /// The paths or names tried, in order: <paramref name="folder"/>'s libcublas.so.13, .12, .11; the bare names
    /// for the loader path; each <paramref name="nvidiaLibFolders"/> entry's libcublas.so.13, .12, .11.
    /// </summary>
    public static IReadOnlyList<string> Candidates(string? folder, IEnumerable<string> nvidiaLibFolders)
    {
        var names = MajorVersions.Select(v => $"libcublas.so.{v}").ToArray();
        var result = new List<string>();
        if (!string.IsNullOrWhiteSpace(folder)) result.AddRange(names.Select(n => Path.Combine(folder, n)));
        result.AddRange(names);
        foreach (string lib in nvidiaLibFolders) result.AddRange(names.Select(n => Path.Combine(lib, n)));
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

    /// <summary>Loads the first candidate that loads; <paramref name="tried"/> lists every attempt for messages.</summary>
    public static bool TryLoad(out IntPtr handle, out string loadedFrom, out IReadOnlyList<string> tried)
    {
        var candidates = Candidates(Environment.GetEnvironmentVariable(FolderVariable), NvidiaLibFolders(SitePackages()));
        tried = candidates;
        foreach (string candidate in candidates)
        {
            // A file in a wheel folder needs its siblings (libcublasLt) first: load it from there so the loader finds them.
            if (Path.IsPathRooted(candidate) && !File.Exists(candidate)) continue;
            if (Path.IsPathRooted(candidate))
            {
                string lt = Path.Combine(Path.GetDirectoryName(candidate)!, Path.GetFileName(candidate).Replace("libcublas", "libcublasLt"));
                if (File.Exists(lt)) NativeLibrary.TryLoad(lt, out _);
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

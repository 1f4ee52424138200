namespace Grpo.Native.Tests.Datasets;

/// <summary>A temporary folder for the files a test writes, deleted when disposed.</summary>
internal sealed class DatasetFolder : IDisposable
{
    public DatasetFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "grpo-data-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>Writes <paramref name="lines"/> joined by "\n" to <paramref name="name"/> and returns its path.</summary>
    public string WriteLines(string name, params string[] lines)
    {
        string path = File(name);
        System.IO.File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    /// <summary>The path of <paramref name="name"/> in the folder (subfolders created).</summary>
    public string File(string name)
    {
        string path = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        return path;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

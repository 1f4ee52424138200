using System.Text.Json;
using Grpo.Native.Operations;

namespace Grpo.Native.Checkpoints;

/// <summary>
/// The parts of a Hugging Face model folder's <c>generation_config.json</c> that this library uses: the end-of-sequence
/// ids (stop tokens) and the sampling settings the model's authors recommend. Other fields are ignored; every field read
/// is optional.
/// </summary>
/// <remarks>
/// <para>How the command line uses it: <see cref="EosTokenIds"/> are stop tokens of <c>grpo train --dataset</c>,
/// <c>grpo sample</c> and <c>grpo eval</c> (before the tokenizer's own EOS); <see cref="SamplingDefaults"/> are the
/// defaults of <c>grpo sample</c> and <c>grpo eval</c> only. Training keeps TRL's temperature 1 without top-p/top-k,
/// because the trainer's log-probs are those of the sampling distribution.</para>
/// <para>Unlike <c>transformers</c>, a file without <c>do_sample</c> is not read as greedy decoding, and a file without
/// <c>top_k</c> does not mean top-k 50: absent settings leave this library's defaults (temperature 1, no filters).</para>
/// </remarks>
public sealed record GenerationConfig
{
    /// <summary>The file name in a model folder.</summary>
    public const string FileName = "generation_config.json";

    /// <summary><c>eos_token_id</c>, a number or a list in the file; empty when absent or null.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary><c>temperature</c>: finite and ≥ 0; null when absent.</summary>
    public float? Temperature { get; init; }

    /// <summary><c>top_p</c>: in (0, 1]; null when absent.</summary>
    public float? TopP { get; init; }

    /// <summary><c>top_k</c>: ≥ 0 (0 turns it off); null when absent.</summary>
    public int? TopK { get; init; }

    /// <summary><c>do_sample</c>; false means greedy decoding. Null when absent.</summary>
    public bool? DoSample { get; init; }

    /// <summary>
    /// <c>repetition_penalty</c>: finite and &gt; 0; null when absent. The sampler does not apply it (a penalty would make
    /// the sampler's log-probs disagree with the trainer's), so a value other than 1 is only reported.
    /// </summary>
    public float? RepetitionPenalty { get; init; }

    /// <summary>True when <see cref="RepetitionPenalty"/> is set to something other than 1, which the sampler ignores.</summary>
    public bool HasIgnoredRepetitionPenalty => RepetitionPenalty is { } penalty && penalty != 1f;

    /// <summary>
    /// The stop tokens of generation: <see cref="EosTokenIds"/> first, then <paramref name="tokenizerEos"/> (the
    /// tokenizer's EOS) when it is not among them. Chat models often list their end-of-turn token here, which their
    /// tokenizer's EOS alone would miss.
    /// </summary>
    /// <param name="tokenizerEos">The tokenizer's EOS id, or null when it has none.</param>
    public IReadOnlyList<int> StopTokens(int? tokenizerEos) =>
        tokenizerEos is { } eos && !EosTokenIds.Contains(eos) ? [.. EosTokenIds, eos] : EosTokenIds;

    /// <summary>
    /// The sampling options this file recommends: temperature 0 (greedy) when <c>do_sample</c> is false, else its
    /// <c>temperature</c> (1 when absent); its <c>top_k</c> and <c>top_p</c> (off when absent). Min-p is never set.
    /// </summary>
    public SamplingOptions SamplingDefaults() => new()
    {
        Temperature = DoSample == false ? 0f : Temperature ?? 1f,
        TopK = TopK ?? 0,
        TopP = TopP ?? 1f,
    };

    /// <summary>
    /// Reads <c>generation_config.json</c> from <paramref name="path"/> (the file or its model folder); null when a folder
    /// has no such file (it is optional in Hugging Face folders).
    /// </summary>
    /// <exception cref="FileNotFoundException"><paramref name="path"/> names a file that does not exist.</exception>
    /// <exception cref="CheckpointFormatException">The file is not valid JSON, or a field has the wrong type or is out of range; the message names the file and the field.</exception>
    public static GenerationConfig? Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string file;
        if (Directory.Exists(path))
        {
            file = Path.Combine(path, FileName);
            if (!File.Exists(file)) return null;
        }
        else
        {
            file = path;
            if (!File.Exists(file)) throw new FileNotFoundException($"Generation config '{Path.GetFullPath(file)}' does not exist.", file);
        }
        return Parse(File.ReadAllText(file), Path.GetFullPath(file));
    }

    /// <summary>Parses generation_config.json text; <paramref name="source"/> names it in error messages.</summary>
    /// <exception cref="CheckpointFormatException">Not valid JSON, not an object, or a field has the wrong type or is out of range.</exception>
    public static GenerationConfig Parse(string json, string source = FileName)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true });
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException($"'{source}': the generation config is JSON {root.ValueKind}, not an object.");
            var config = new GenerationConfig
            {
                EosTokenIds = EosIds(root, source),
                Temperature = Number(root, source, "temperature", t => t >= 0, "a finite number >= 0, such as 0.7"),
                TopP = Number(root, source, "top_p", p => p > 0 && p <= 1, "a number in (0, 1], such as 0.95"),
                TopK = Integer(root, source, "top_k"),
                DoSample = Bool(root, source, "do_sample"),
                RepetitionPenalty = Number(root, source, "repetition_penalty", r => r > 0, "a finite number > 0 (1 means none)"),
            };
            return config;
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"'{source}': the generation config is not valid JSON: {e.Message}", e);
        }
    }

    private static bool Present(JsonElement root, string name, out JsonElement value) =>
        root.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    private static IReadOnlyList<int> EosIds(JsonElement root, string source)
    {
        if (!Present(root, "eos_token_id", out var value)) return [];
        static bool IsId(JsonElement e, out int id)
        {
            id = 0;
            return e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out id) && id >= 0;
        }
        if (IsId(value, out int single)) return [single];
        if (value.ValueKind == JsonValueKind.Array)
        {
            var ids = new List<int>();
            foreach (var element in value.EnumerateArray())
            {
                if (!IsId(element, out int id))
                    throw new CheckpointFormatException(
                        $"'{source}': eos_token_id holds {element.GetRawText()}, which is not a token id; it must be a non-negative integer or a list of them.");
                if (!ids.Contains(id)) ids.Add(id);
            }
            return ids;
        }
        throw new CheckpointFormatException(
            $"'{source}': eos_token_id is {value.GetRawText()}; it must be a non-negative integer or a list of them.");
    }

    private static float? Number(JsonElement root, string source, string name, Func<double, bool> inRange, string expected)
    {
        if (!Present(root, name, out var value)) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || !double.IsFinite(number) || !inRange(number)
            || !float.IsFinite((float)number))
            throw new CheckpointFormatException($"'{source}': {name} is {value.GetRawText()}; it must be {expected}.");
        return (float)number;
    }

    private static int? Integer(JsonElement root, string source, string name)
    {
        if (!Present(root, name, out var value)) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int number) || number < 0)
            throw new CheckpointFormatException($"'{source}': {name} is {value.GetRawText()}; it must be an integer >= 0 (0 turns it off).");
        return number;
    }

    private static bool? Bool(JsonElement root, string source, string name)
    {
        if (!Present(root, name, out var value)) return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new CheckpointFormatException($"'{source}': {name} is {value.GetRawText()}; it must be true or false."),
        };
    }
}

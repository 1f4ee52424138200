using System.Text.Json.Nodes;
using Grpo.Native.Checkpoints;

namespace Grpo.Native.Tokenization;

/// <summary>
/// The special tokens a Hugging Face post-processor puts around one encoded text (<c>tokenizer.json</c>'s
/// <c>post_processor</c>, single-sequence case): TemplateProcessing, RobertaProcessing, BertProcessing,
/// ByteLevel (ids unchanged) and Sequence. It runs here rather than in the native tokenizer so that encoding
/// with and without special tokens, and <c>transformers</c>' rebuilt Llama/Gemma post-processor, share one path.
/// </summary>
internal sealed class TokenizerPostProcessor
{
    private readonly int[] _before, _after;

    private TokenizerPostProcessor(int[] before, int[] after)
    {
        _before = before;
        _after = after;
    }

    /// <summary>Adds nothing.</summary>
    public static TokenizerPostProcessor None { get; } = new([], []);

    /// <summary>Ids before the text and after it.</summary>
    public static TokenizerPostProcessor Around(int[] before, int[] after) => new(before, after);

    /// <summary>The ids this post-processor adds before and after a text.</summary>
    public (IReadOnlyList<int> Before, IReadOnlyList<int> After) Added => (_before, _after);

    /// <summary><paramref name="ids"/> with the special tokens around them.</summary>
    public int[] Apply(int[] ids) => _before.Length + _after.Length == 0 ? ids : [.. _before, .. ids, .. _after];

    /// <summary>Reads a <c>post_processor</c> entry; <paramref name="file"/> names the file in errors.</summary>
    /// <exception cref="CheckpointFormatException">The entry is malformed or of a type this library does not know.</exception>
    public static TokenizerPostProcessor Parse(JsonNode? node, string file)
    {
        if (node is null) return None;
        string type = node["type"]?.GetValue<string>()
            ?? throw new CheckpointFormatException($"'{file}': post_processor has no \"type\".");
        switch (type)
        {
            case "ByteLevel":
                return None; // only trims offsets
            case "TemplateProcessing":
                return ParseTemplate(node, file);
            case "RobertaProcessing":
            case "BertProcessing":
                return new([PairId(node["cls"], "cls", file)], [PairId(node["sep"], "sep", file)]);
            case "Sequence":
                var before = new List<int>();
                var after = new List<int>();
                foreach (var inner in node["processors"]?.AsArray() ?? throw new CheckpointFormatException($"'{file}': a Sequence post_processor has no \"processors\"."))
                {
                    var step = Parse(inner, file);
                    before.InsertRange(0, step._before); // a later processor wraps what the earlier ones made
                    after.AddRange(step._after);
                }
                return new([.. before], [.. after]);
            default:
                throw new CheckpointFormatException(
                    $"'{file}': post_processor type '{type}' is not supported (TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel and Sequence are).");
        }
    }

    /// <summary>TemplateProcessing's "single" list: SpecialToken entries around one Sequence "A".</summary>
    private static TokenizerPostProcessor ParseTemplate(JsonNode node, string file)
    {
        var specials = node["special_tokens"]?.AsObject();
        var single = node["single"]?.AsArray() ?? throw new CheckpointFormatException($"'{file}': TemplateProcessing has no \"single\" template.");
        var before = new List<int>();
        var after = new List<int>();
        bool seenSequence = false;
        foreach (var piece in single)
        {
            if (piece?["Sequence"] is not null)
            {
                if (seenSequence) throw new CheckpointFormatException($"'{file}': TemplateProcessing's single template names the sequence twice.");
                seenSequence = true;
                continue;
            }
            string name = piece?["SpecialToken"]?["id"]?.GetValue<string>()
                ?? throw new CheckpointFormatException($"'{file}': a TemplateProcessing piece is neither a Sequence nor a SpecialToken: {piece?.ToJsonString()}");
            var ids = specials?[name]?["ids"]?.AsArray()
                ?? throw new CheckpointFormatException($"'{file}': TemplateProcessing uses special token '{name}' but special_tokens does not list its ids.");
            (seenSequence ? after : before).AddRange(ids.Select(id => id!.GetValue<int>()));
        }
        if (!seenSequence) throw new CheckpointFormatException($"'{file}': TemplateProcessing's single template has no sequence ($A).");
        return new([.. before], [.. after]);
    }

    /// <summary>A ["token", id] pair of RobertaProcessing/BertProcessing.</summary>
    private static int PairId(JsonNode? pair, string name, string file) =>
        pair is JsonArray { Count: 2 } array ? array[1]!.GetValue<int>()
            : throw new CheckpointFormatException($"'{file}': post_processor \"{name}\" is not a [token, id] pair.");
}

using System.CommandLine;
using System.Text;
using System.Text.Json;
using Grpo.Native.Checkpoints;
using Grpo.Native.Tokenization;

namespace Grpo.Cli;

/// <summary>
/// <c>grpo tokenize</c>: the parity interface of the tokenizer and the chat template. Reads JSON lines and
/// writes one answer line per input line, to compare with <c>transformers</c> on the same model folder:
/// <c>{"text"}</c> → <c>{"ids"}</c>; <c>{"messages"}</c> → <c>{"text", "ids"}</c>; <c>{"decode"}</c> → <c>{"text"}</c>.
/// A line it cannot process gets <c>{"error"}</c> and the command goes on; a problem with the folder ends it (exit 2).
/// </summary>
internal static class TokenizeCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "a Hugging Face model folder; only its tokenizer files are read", Required = true };
        var input = new Option<string>("--input") { Description = "JSON lines: {\"text\": ..., \"add_special_tokens\"?: bool} | {\"messages\": [...], \"add_generation_prompt\"?: bool, \"chat_template_kwargs\"?: {...}} | {\"decode\": [ids]}", Required = true };
        var outFile = new Option<string>("--output") { Description = "JSON lines, one per input line: {\"ids\"} | {\"text\", \"ids\"} | {\"text\"} | {\"error\"}", Required = true };
        var command = new Command("tokenize",
            "Tokenizes texts, renders and tokenizes conversations with the chat template, and decodes ids, exactly as transformers does " +
            "(tokenizer(text)[\"input_ids\"], apply_chat_template, decode): the parity interface of the tokenizer.");
        foreach (var option in new Option[] { model, input, outFile }) command.Options.Add(option);
        command.SetAction(parse => CliErrors.Guarded(error, "tokenize", () =>
        {
            string inputPath = parse.GetValue(input)!, outputPath = parse.GetValue(outFile)!;
            if (!File.Exists(inputPath)) throw new FileNotFoundException($"--input: '{inputPath}' does not exist.");
            using var tokenizer = HuggingFaceTokenizer.Load(parse.GetValue(model)!);
            int lines = 0, errors = 0;
            AtomicFile.Write(outputPath, stream =>
            {
                using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true); // AtomicFile flushes and closes the stream
                foreach (string line in File.ReadLines(inputPath))
                {
                    lines++;
                    string answer = Answer(tokenizer, line, lines, ref errors);
                    writer.Write(answer);
                    writer.Write('\n');
                }
            });
            output.WriteLine($"{lines} lines tokenized into {outputPath}{(errors > 0 ? $"; {errors} of them answered with an error" : "")}");
            return GrpoCommand.Success;
        }));
        return command;
    }

    private static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The output line for one input line.</summary>
    internal static string Answer(ITokenizer tokenizer, string line, int number, ref int errors)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ArgumentException("the line is not a JSON object.");
            if (root.TryGetProperty("text", out var text))
            {
                bool special = !root.TryGetProperty("add_special_tokens", out var flag) || Boolean(flag, "add_special_tokens");
                return Serialize(new { ids = tokenizer.Encode(String(text, "text"), special) });
            }
            if (root.TryGetProperty("messages", out var messages))
            {
                var conversation = JsonValues.ToMessages(messages, "messages");
                bool generationPrompt = root.TryGetProperty("add_generation_prompt", out var g) && Boolean(g, "add_generation_prompt");
                var arguments = root.TryGetProperty("chat_template_kwargs", out var kwargs)
                    ? JsonValues.ToPlain(kwargs) as Dictionary<string, object?> ?? throw new ArgumentException("chat_template_kwargs is not an object.")
                    : null;
                string rendered = tokenizer.ApplyChatTemplate(conversation, generationPrompt, arguments);
                // As apply_chat_template(tokenize=True): the template wrote the special tokens, so none are added.
                return Serialize(new { text = rendered, ids = tokenizer.Encode(rendered, addSpecialTokens: false) });
            }
            if (root.TryGetProperty("decode", out var ids))
            {
                if (ids.ValueKind != JsonValueKind.Array) throw new ArgumentException("decode is not a list of token ids.");
                int[] tokens = ids.EnumerateArray().Select(id => id.TryGetInt32(out int value) ? value
                    : throw new ArgumentException($"decode holds {id.GetRawText()}, which is not a token id.")).ToArray();
                return Serialize(new { text = tokenizer.Decode(tokens, skipSpecialTokens: false) });
            }
            throw new ArgumentException("the line has none of \"text\", \"messages\" and \"decode\".");
        }
        catch (Exception e) when (e is JsonException or ArgumentException or NotSupportedException or FormatException or InvalidOperationException
                                   or Grpo.Native.Tokenization.Templates.ChatTemplateException) // raise_exception's message goes into the error line
        {
            errors++;
            return Serialize(new { error = $"line {number}: {CliErrors.Message(e)}" });
        }
    }

    private static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Compact);

    private static string String(JsonElement value, string name) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new ArgumentException($"{name} is {value.ValueKind}, not a string.");

    private static bool Boolean(JsonElement value, string name) => value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new ArgumentException($"{name} is {value.ValueKind}, not true or false."),
    };
}

using System.Text.Json;
using Grpo.Cli;
using Grpo.Native.Tests.Tokenization;
using NUnit.Framework;

namespace Grpo.Native.Tests.Cli;

/// <summary><c>grpo tokenize</c>: one answer line per input line, errors per line, folder problems exit 2.</summary>
public sealed class TokenizeCommandTests
{
    private static (int Exit, string Output, string Error) Run(params string[] args) => CliRun.Grpo(args);

    private static string TempFile(string name) => Path.Combine(Path.GetTempPath(), $"grpo-tokenize-{Guid.NewGuid():N}-{name}");

    [Test]
    public void EveryLineGetsItsAnswerAndBadLinesGetAnError()
    {
        string input = TempFile("in.jsonl"), output = TempFile("out.jsonl");
        var hello = TokenizerTestData.Expected.Single(c => c.Tokenizer == "llama3_1" && c.Text == "Hello world, GRPO in C#!");
        File.WriteAllLines(input,
        [
            JsonSerializer.Serialize(new { text = hello.Text }),
            JsonSerializer.Serialize(new { text = hello.Text, add_special_tokens = false }),
            JsonSerializer.Serialize(new { decode = hello.Ids }),
            "{\"text\": 3}",
            "not json",
            "{\"decode\": [1, 999999999]}",
            "{\"nothing\": true}",
        ]);
        try
        {
            var (exit, stdout, error) = Run("tokenize", "--model", TokenizerTestData.Folder("llama3_1"), "--input", input, "--output", output);
            Assert.That(exit, Is.EqualTo(GrpoCommand.Success), error);
            Assert.That(stdout, Does.Contain("7 lines").And.Contain("4 of them answered with an error"));
            var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            Assert.That(lines, Has.Count.EqualTo(7));
            Assert.That(lines[0].GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()), Is.EqualTo(hello.Ids));
            Assert.That(lines[1].GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()), Is.EqualTo(hello.IdsNoSpecial));
            Assert.That(lines[2].GetProperty("text").GetString(), Is.EqualTo(hello.Decoded), "decode keeps special tokens");
            Assert.That(lines[3].GetProperty("error").GetString(), Does.Contain("line 4").And.Contain("text is Number"));
            Assert.That(lines[4].GetProperty("error").GetString(), Does.Contain("line 5"));
            Assert.That(lines[5].GetProperty("error").GetString(), Does.Contain("999999999"));
            Assert.That(lines[6].GetProperty("error").GetString(), Does.Contain("none of \"text\", \"messages\" and \"decode\""));
        }
        finally
        {
            File.Delete(input);
            File.Delete(output);
        }
    }

    [Test]
    public void AFolderWithoutATokenizerExitsWithTwoAndWritesNothing()
    {
        string folder = Path.Combine(Path.GetTempPath(), "grpo-notok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        string input = TempFile("in.jsonl"), output = TempFile("out.jsonl");
        File.WriteAllText(input, "{\"text\": \"hi\"}\n");
        try
        {
            var (exit, _, error) = Run("tokenize", "--model", folder, "--input", input, "--output", output);
            Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(error, Does.Contain("tokenize:").And.Contain("tokenizer.json").And.Not.Contain("   at "));
            Assert.That(File.Exists(output), Is.False);

            (exit, _, error) = Run("tokenize", "--model", folder, "--input", TempFile("missing.jsonl"), "--output", output);
            Assert.That(exit, Is.EqualTo(GrpoCommand.BadArguments));
            Assert.That(error, Does.Contain("--input"));
        }
        finally
        {
            Directory.Delete(folder, true);
            File.Delete(input);
        }
    }
}

/// <summary><c>grpo sample --prompt</c> on a folder with a Hugging Face tokenizer encodes the text with it.</summary>
public sealed class SampleWithHuggingFaceTokenizerTests
{
    [Test]
    public void PromptTextIsEncodedByTheFoldersTokenizer()
    {
        // A tiny random GPT-2 with GPT-2's real vocabulary (vocab.json + merges.txt): greedy decoding of "Hello world"
        // must equal greedy decoding of its ids 15496, 995, so the text went through the folder's tokenizer.
        string folder = DatasetTrainTests.TinyGpt2WithTokenizer();
        try
        {
            string[] common = ["sample", "--model", folder, "--temperature", "0", "--max-tokens", "4", "--device", "cpu"];
            var byText = Run([.. common, "--prompt", "Hello world"]);
            var byIds = Run([.. common, "--prompt-ids", "15496,995"]);
            Assert.That(byText.Exit, Is.EqualTo(GrpoCommand.Success), byText.Error);
            Assert.That(byIds.Exit, Is.EqualTo(GrpoCommand.Success), byIds.Error);
            Assert.That(byText.Output, Is.EqualTo(byIds.Output));
            Assert.That(byText.Output, Does.StartWith("[0] ").And.Not.Match(@"\[0\] \d+,\d+"), "decoded text, not ids");
        }
        finally { Directory.Delete(folder, true); }
    }

    private static (int Exit, string Output, string Error) Run(params string[] args) => CliRun.Grpo(args);
}

/// <summary><c>grpo tokenize</c> with conversations: the rendered text and its ids, and the template's own refusals.</summary>
public sealed class TokenizeConversationsTests
{
    [Test]
    public void ConversationsAreRenderedAndTokenizedAndRejectionsBecomeErrorLines()
    {
        string input = Path.Combine(Path.GetTempPath(), $"grpo-chat-{Guid.NewGuid():N}.jsonl"), output = input + ".out";
        File.WriteAllLines(input,
        [
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi!\"}], \"add_generation_prompt\": true}",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi!\"}], \"add_generation_prompt\": true, \"chat_template_kwargs\": {\"enable_thinking\": false}}",
            "{\"messages\": [{\"role\": \"user\"}]}",
        ]);
        try
        {
            var (exit, _, error) = CliRun.Grpo("tokenize", "--model", TokenizerTestData.Folder("qwen3"), "--input", input, "--output", output);
            Assert.That(exit, Is.EqualTo(Grpo.Cli.GrpoCommand.Success), error);
            var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            Assert.That(lines[0].GetProperty("text").GetString(), Is.EqualTo("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"));
            Assert.That(lines[0].GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).Take(3), Is.EqualTo(new[] { 151644, 872, 198 }),
                "<|im_start|> user \\n");
            Assert.That(lines[1].GetProperty("text").GetString(), Does.EndWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), "enable_thinking = false");
            Assert.That(lines[2].GetProperty("error").GetString(), Does.Contain("line 3").And.Contain("content"));

            // Gemma-3's template refuses roles that do not alternate: its own message, on that line only.
            File.WriteAllLines(input,
            [
                "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}",
            ]);
            (exit, _, error) = CliRun.Grpo("tokenize", "--model", TokenizerTestData.Folder("gemma3"), "--input", input, "--output", output);
            Assert.That(exit, Is.EqualTo(Grpo.Cli.GrpoCommand.Success), error);
            lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            Assert.That(lines[0].GetProperty("error").GetString(), Does.Contain("Conversation roles must alternate"));
            Assert.That(lines[1].GetProperty("text").GetString(), Is.EqualTo("<bos><start_of_turn>user\na<end_of_turn>\n"));
        }
        finally
        {
            File.Delete(input);
            File.Delete(output);
        }
    }
}

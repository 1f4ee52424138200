using System.CommandLine;
using Grpo.Native.Models;
using Grpo.Native.Tokenization;
using Grpo.Native.Training;

namespace Grpo.Cli;

/// <summary><c>grpo sample</c>: generates completions from a model folder with the sampling options, through the KV cache.</summary>
internal static class SampleCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "a Hugging Face model folder (gpt2, llama, qwen2 or qwen3), e.g. a checkpoint's model/ folder", Required = true };
        var prompt = new Option<string?>("--prompt") { Description = "prompt text, encoded with the folder's Hugging Face tokenizer (as one user message of its chat template, if it has one) or the grpo_tokenizer.json that grpo train saves; otherwise use --prompt-ids" };
        var noChatTemplate = new Option<bool>("--no-chat-template") { Description = "encode --prompt as plain text even when the tokenizer has a chat template" };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "prompt as comma-separated token ids" };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "most tokens to generate (default: what the model's context leaves after the prompt)" };
        var count = new Option<int>("--count") { Description = "completions to sample", DefaultValueFactory = _ => 1 };
        var temperature = new Option<float?>("--temperature") { Description = "sampling temperature; 0 is greedy (default: generation_config.json's, 0 if it sets do_sample false, else 1)" };
        var topK = new Option<int?>("--top-k") { Description = "keep the k most likely tokens (0: off; default: generation_config.json's, else off)" };
        var topP = new Option<float?>("--top-p") { Description = "nucleus sampling mass (1: off; default: generation_config.json's, else off)" };
        var minP = new Option<float>("--min-p") { Description = "drop tokens below min-p × the top probability (0: off)", DefaultValueFactory = _ => 0f };
        var stop = new Option<string?>("--stop-ids") { Description = "comma-separated token ids that end a completion (default: generation_config.json's eos_token_id and the tokenizer's EOS)" };
        var seed = new Option<int>("--seed") { Description = "sampling seed", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or ilgpu-cpu (default: GRPO_DEVICE, else auto)" };
        var command = new Command("sample",
            "Generates completions for a prompt with the sampling options (temperature, top-k, top-p, min-p, stop tokens); the model folder's " +
            "generation_config.json gives the defaults (its repetition_penalty is not applied).");
        foreach (var option in new Option[] { model, prompt, noChatTemplate, promptIds, maxTokens, count, temperature, topK, topP, minP, stop, seed, device })
            command.Options.Add(option);
        command.SetAction(parse => CliErrors.Guarded(error, "sample", () =>
        {
            string folder = parse.GetValue(model)!;
            string? text = parse.GetValue(prompt), ids = parse.GetValue(promptIds);
            if ((text is null) == (ids is null)) throw new ArgumentException("pass exactly one of --prompt and --prompt-ids.");
            using var tokenizer = SampleTokenizer.Load(folder);
            if (text is not null && tokenizer is null)
                throw new ArgumentException(
                    $"--prompt: '{folder}' has neither a Hugging Face tokenizer (tokenizer.json) nor the {CharacterTokenizer.FileName} that grpo train saves; pass --prompt-ids instead.");
            int[] promptTokens = text is not null ? tokenizer!.PromptTokens(text, useChatTemplate: !parse.GetValue(noChatTemplate)) : ParseIds(ids!, "--prompt-ids");
            var generation = GenerationDefaults.Load(folder, error);
            int[] stopTokens = parse.GetValue(stop) is { } s ? ParseIds(s, "--stop-ids")
                : [.. generation.StopTokens(tokenizer?.Tokenizer.SpecialTokens.Eos)];
            int n = parse.GetValue(count);
            if (n < 1) throw new ArgumentException($"--count is {n}; sample at least 1 completion.");
            var sampling = GenerationDefaults.Sampling(generation, parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(topP), parse.GetValue(minP));
            using var dev = CliErrors.CreateDevice(parse.GetValue(device));
            using var policy = TransformerModel.Load(dev, folder);
            int room = policy.Config.MaxPositions - promptTokens.Length;
            int max = parse.GetValue(maxTokens) ?? room;
            if (max < 1 || max > room)
                throw new ArgumentException(
                    $"--max-tokens is {max} but the {promptTokens.Length}-token prompt leaves room for 1 to {room} tokens in the model's context of {policy.Config.MaxPositions}.");
            using var generator = new RolloutGenerator(policy, n, promptTokens.Length, max, promptTokens.Length);
            var rollout = generator.Generate([promptTokens], n, max, sampling, stopTokens, (ulong)parse.GetValue(seed));
            for (int i = 0; i < n; i++)
            {
                var completion = rollout.Completions[i];
                string shown = tokenizer is not null ? tokenizer.Tokenizer.Decode(completion) : string.Join(",", completion);
                output.WriteLine($"[{i}] {shown}    ({completion.Length} tokens{(rollout.Truncated[i] ? ", hit --max-tokens" : "")}, " +
                                 $"mean log-prob {(completion.Length == 0 ? 0 : rollout.Logprobs[i].Average()):F3})");
            }
            return GrpoCommand.Success;
        }));
        return command;
    }

    private static int[] ParseIds(string text, string option) =>
        text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(part => int.TryParse(part, out int id) ? id : throw new ArgumentException($"{option}: '{part}' is not a token id."))
            .ToArray() is { Length: > 0 } parsed ? parsed : throw new ArgumentException($"{option} holds no token id.");
}

using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Grpo.Native.Datasets;
using Grpo.Native.Models;
using Grpo.Native.Rewards;
using Grpo.Native.Tokenization;
using Grpo.Native.Training;

namespace Grpo.Cli;

/// <summary>
/// <c>grpo eval --model DIR --dataset FILE --reward NAME[,NAME...]</c>: pass@1 (greedy) and the mean reward of K samples
/// per prompt on the first rows of a dataset, with the prompts built as <c>grpo train --dataset</c> builds them. The work
/// is <see cref="Evaluator"/>'s; this class reads the options and prints the result.
/// </summary>
internal static class EvalCommand
{
    /// <summary>Samples per prompt when --samples is not given (TRL's default group size).</summary>
    public const int DefaultSamples = 8;

    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "a Hugging Face model folder (gpt2, llama, qwen2 or qwen3) with its tokenizer, e.g. a checkpoint's model/ folder", Required = true };
        var dataset = new Option<string>("--dataset") { Description = "the prompts: a JSONL or Parquet file, or a folder of shards; rows are taken in file order", Required = true };
        var promptColumn = new Option<string>("--prompt-column") { Description = "the column holding the prompt (text, or a list of {role, content} messages)", DefaultValueFactory = _ => "prompt" };
        var systemPrompt = new Option<string?>("--system-prompt") { Description = "a system message put first in every conversation that does not start with one" };
        var noChatTemplate = new Option<bool>("--no-chat-template") { Description = "encode text prompts as they are instead of as one user message of the chat template" };
        var maxPromptLength = new Option<int>("--max-prompt-length") { Description = "longest prompt in tokens; longer rows are skipped and counted, never cut", DefaultValueFactory = _ => 512 };
        var maxCompletionLength = new Option<int>("--max-completion-length") { Description = "most tokens generated per completion", DefaultValueFactory = _ => 256 };
        var reward = new Option<string>("--reward") { Description = $"built-in reward functions, comma-separated: {string.Join(", ", BuiltInRewards.Names)}", Required = true };
        var rewardWeights = new Option<string?>("--reward-weights") { Description = "one weight per --reward function, comma-separated (default 1 each)" };
        var overlongBuffer = new Option<int?>("--overlong-buffer") { Description = "soft_overlong_punishment's buffer in tokens (default 20% of --max-completion-length)" };
        var limit = new Option<int?>("--limit") { Description = "evaluate the first N rows only (default: all)" };
        var samples = new Option<int>("--samples") { Description = "K: completions sampled per prompt for the mean reward", DefaultValueFactory = _ => DefaultSamples };
        var temperature = new Option<float?>("--temperature") { Description = "temperature of the K samples (default: generation_config.json's, 0 if it sets do_sample false, else 1); pass@1 is always greedy" };
        var topK = new Option<int?>("--top-k") { Description = "top-k of the K samples (0: off; default: generation_config.json's, else off)" };
        var topP = new Option<float?>("--top-p") { Description = "top-p of the K samples (1: off; default: generation_config.json's, else off)" };
        var batchSize = new Option<int>("--batch-size") { Description = "prompts generated together through one key/value cache", DefaultValueFactory = _ => 8 };
        var seed = new Option<int>("--seed") { Description = "seed of the samples", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or ilgpu-cpu (default: GRPO_DEVICE, else auto)" };
        var json = new Option<bool>("--json") { Description = "print only {\"pass@1\": x, \"mean_reward\": y, \"prompts\": n, \"samples\": k, \"skipped\": s} (null for a value with nothing scored)" };

        var command = new Command("eval",
            "Evaluates a model on a dataset with built-in rewards: pass@1 is the fraction of prompts whose greedy completion earns the best " +
            "weighted reward (the sum of weight x best score; the best scores are accuracy 1, think_format 1, soft_overlong_punishment 0, " +
            "repetition_penalty 0; a negative weight takes the function's lowest score), and mean_reward is the mean weighted reward of " +
            "--samples completions per prompt at the sampling temperature. Completions no reward scores are left out of both and counted. " +
            "Stop tokens are generation_config.json's eos_token_id and the tokenizer's EOS.");
        foreach (var option in new Option[] { model, dataset, promptColumn, systemPrompt, noChatTemplate, maxPromptLength, maxCompletionLength, reward,
                     rewardWeights, overlongBuffer, limit, samples, temperature, topK, topP, batchSize, seed, device, json })
            command.Options.Add(option);
        command.SetAction(parse => CliErrors.Guarded(error, "eval", () =>
        {
            string folder = parse.GetValue(model)!, datasetPath = parse.GetValue(dataset)!, column = parse.GetValue(promptColumn)!;
            int k = parse.GetValue(samples), completionLength = parse.GetValue(maxCompletionLength), promptLength = parse.GetValue(maxPromptLength);
            int? rowLimit = parse.GetValue(limit);
            if (k < 1) throw new ArgumentException($"--samples is {k}; sample at least 1 completion per prompt.");
            if (rowLimit is < 1) throw new ArgumentException($"--limit is {rowLimit}; evaluate at least 1 row, or leave it out for all.");
            if (completionLength < 1) throw new ArgumentException($"--max-completion-length is {completionLength}; generate at least 1 token.");
            if (promptLength < 1) throw new ArgumentException($"--max-prompt-length is {promptLength}; it must be at least 1.");
            if (parse.GetValue(batchSize) is var batch and < 1) throw new ArgumentException($"--batch-size is {batch}; generate at least 1 prompt at a time.");
            var rewards = BuiltInRewards.Parse(parse.GetValue(reward)!, parse.GetValue(rewardWeights),
                new BuiltInRewardOptions { MaxCompletionLength = completionLength, OverlongBuffer = parse.GetValue(overlongBuffer) });

            if (!HuggingFaceTokenizer.IsPresent(folder))
                throw new ArgumentException($"--model: '{folder}' has no Hugging Face tokenizer (tokenizer.json, or vocab.json and merges.txt).");
            var generation = GenerationDefaults.Load(folder, error);
            var sampling = GenerationDefaults.Sampling(generation, parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(topP));
            using var tokenizer = HuggingFaceTokenizer.Load(folder);
            var rows = LoadRows(datasetPath, column, rowLimit);
            CheckReferenceColumns(rewards, rows, datasetPath);
            var builder = new PromptBuilder(tokenizer, new PromptFormatOptions
            {
                UseChatTemplate = !parse.GetValue(noChatTemplate), SystemPrompt = parse.GetValue(systemPrompt), MaxPromptLength = promptLength,
            });

            using var dev = CliErrors.CreateDevice(parse.GetValue(device));
            using var policy = TransformerModel.Load(dev, folder);
            if (promptLength + completionLength > policy.Config.MaxPositions)
                throw new ArgumentException(
                    $"--max-prompt-length {promptLength} plus --max-completion-length {completionLength} exceed the model's context of " +
                    $"{policy.Config.MaxPositions} tokens; lower one of them.");
            var evaluator = new Evaluator(policy, tokenizer, rewards, new EvaluatorOptions
            {
                MaxCompletionLength = completionLength, Samples = k, Sampling = sampling, BatchSize = parse.GetValue(batchSize),
                StopTokens = generation.StopTokens(tokenizer.SpecialTokens.Eos), Seed = parse.GetValue(seed),
            });
            bool asJson = parse.GetValue(json);
            if (!asJson)
                output.WriteLine($"eval {folder} on {datasetPath}: {rows.Count} rows; rewards {string.Join(", ", rewards.Select(r => $"{r.Name} x{r.Weight:G3}"))} " +
                                 $"(pass at weighted reward >= {evaluator.PassThreshold:G6}); {k} samples per prompt at temperature {sampling.Temperature:G3}; on {dev}");
            var result = evaluator.Evaluate(rows, builder);
            if (result.Prompts == 0)
                throw new ArgumentException(
                    $"--max-prompt-length {promptLength}: all {rows.Count} rows have longer prompts, so nothing was evaluated; raise it.");
            if (asJson) output.WriteLine(Json(result));
            else PrintSummary(result, promptLength, output);
            return GrpoCommand.Success;
        }));
        return command;
    }

    /// <summary>The first <paramref name="limit"/> rows, in file order; a missing prompt column is named as --prompt-column's problem.</summary>
    private static IReadOnlyList<PromptRow> LoadRows(string path, string column, int? limit)
    {
        PromptDataset dataset;
        try
        {
            dataset = PromptDataset.Load(path, column);
        }
        catch (PromptDatasetException e) when (e.MissingColumn == column)
        {
            throw new ArgumentException($"--prompt-column {column}: {e.Message}", e);
        }
        return limit is { } n && n < dataset.Count ? dataset.Take(n).ToList() : dataset;
    }

    /// <summary>accuracy without a reference column would leave every completion unscored: say so instead of printing NaN.</summary>
    private static void CheckReferenceColumns(IReadOnlyList<RewardFunction> rewards, IReadOnlyList<PromptRow> rows, string path)
    {
        if (!rewards.Any(r => r.Name == AccuracyReward.Name)) return;
        if (rows.Any(row => AccuracyReward.ReferenceColumns.Any(c => row.Columns.TryGetValue(c, out object? value) && value is not null))) return;
        var columns = rows.Count == 0 ? [] : rows[0].Columns.Keys.ToList();
        throw new ArgumentException(
            $"--reward {AccuracyReward.Name} compares with the reference answer in a '{string.Join("' or '", AccuracyReward.ReferenceColumns)}' column, " +
            $"but no row of '{path}' has one (its other columns: {(columns.Count == 0 ? "none" : string.Join(", ", columns))}); " +
            "add the column, or choose rewards that need no reference.");
    }

    /// <summary>Exactly {"pass@1", "mean_reward", "prompts", "samples", "skipped"}; a NaN (nothing scored) is null.</summary>
    private static string Json(EvaluationResult result)
    {
        static double? Value(double x) => double.IsNaN(x) ? null : x;
        return JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["pass@1"] = Value(result.PassAt1), ["mean_reward"] = Value(result.MeanReward),
            ["prompts"] = result.Prompts, ["samples"] = result.Samples, ["skipped"] = result.Skipped,
        });
    }

    private static void PrintSummary(EvaluationResult r, int maxPromptLength, TextWriter output)
    {
        static string F(double x) => double.IsNaN(x) ? "n/a" : x.ToString("F4", CultureInfo.InvariantCulture);
        int scoredGreedy = r.Prompts - r.UnscoredGreedy;
        output.WriteLine($"prompts      {r.Prompts} evaluated, {r.Skipped} skipped (over --max-prompt-length {maxPromptLength})");
        output.WriteLine($"pass@1       {F(r.PassAt1)}  ({r.Details.Count(d => d.Passed)} of {scoredGreedy} scored greedy completions" +
                         $"{(r.UnscoredGreedy > 0 ? $"; {r.UnscoredGreedy} unscored, left out" : "")})");
        output.WriteLine($"mean_reward  {F(r.MeanReward)}  ({r.Prompts * r.Samples - r.UnscoredSamples} scored samples, {r.Samples} per prompt" +
                         $"{(r.UnscoredSamples > 0 ? $"; {r.UnscoredSamples} unscored, left out" : "")})");
        foreach (var (name, mean) in r.MeanRewardPerFunction)
            output.WriteLine($"  {name,-26} mean score {F(mean)}");
    }
}

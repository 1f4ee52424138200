using Grpo.Native.Datasets;
using Grpo.Native.Devices;
using Grpo.Native.Losses;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Rewards;
using Grpo.Native.Tasks;
using Grpo.Native.Tests.Models;
using Grpo.Native.Tokenization;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Repository;

/// <summary>
/// Runs the README's C# example (section "Using it from C#") with concrete inputs, so that the
/// example cannot drift from the API. Keep the two in step: the calls below are the README's.
/// </summary>
public sealed class ReadmeExampleTests
{
    [Test]
    public void TheReadmeExampleRunsAndGivesFiniteResults()
    {
        const int n = 16, t = 5, c = 8, v = 11; // 2 prompts × G = 8 completions
        var random = new Random(3);
        float[] scores = Enumerable.Range(0, n * 2).Select(_ => (float)random.NextDouble()).ToArray();

        using var device = Device.Create(DeviceKind.Cpu);
        var ops = device.Operations;

        // --- the README's example, verbatim from here ---
        using var rewardsPerFunction = device.FromArray<float>(scores, n, 2);   // (N, F)
        using var rewards = device.Allocate<float>(n);                         // (N)
        using var advantages = device.Allocate<float>(n);                      // (N)
        using var groupMean = device.Allocate<float>(n / 8);                   // (N/G)
        using var groupStd = device.Allocate<float>(n / 8);                    // (N/G)
        var stats = ops.ComputeAdvantages(rewardsPerFunction, [1.0f, 0.5f], groupSize: 8, RewardScaling.Group,
                                          rewards, advantages, groupMean, groupStd);
        // --- up to the fused loss, whose inputs the README leaves to the reader ---
        using var hidden = device.FromArray<float>(Enumerable.Range(0, n * t * c).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), n, t, c);
        using var lmHead = device.FromArray<float>(Enumerable.Range(0, v * c).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), v, c);
        using var tokens = device.FromArray<int>(Enumerable.Range(0, n * t).Select(_ => random.Next(v)).ToArray(), n, t);
        using var mask = device.FromArray<float>(Enumerable.Repeat(1f, n * t).ToArray(), n, t);
        using var dHidden = device.Allocate<float>(n, t, c);
        using var dLmHead = device.Allocate<float>(v, c);
        dHidden.Fill(0);
        dLmHead.Fill(0);
        // --- verbatim again ---
        using var loss = new FusedGrpoLoss(device, completions: n, completionLength: t);
        var result = loss.Compute(hidden /* (N, T, C) */, lmHead /* (V, C) */, tokens /* (N, T) */,
                                  mask /* (N, T) */, advantages, oldLogprobs: null, refLogprobs: null,
                                  temperature: 1.0f, new GrpoObjectiveOptions { LossType = LossType.Dapo },
                                  dHidden /* (N, T, C) += */, dLmHead /* (V, C) += */);
        Console.WriteLine($"loss {result.Loss}, clipped {result.ClipRatioRegion:P1}, entropy {result.MeanEntropy}");

        Assert.That(stats.FracRewardZeroStd, Is.EqualTo(0));
        Assert.That(float.IsFinite(result.Loss) && float.IsFinite(result.MeanEntropy));
        Assert.That(dLmHead.ToArray().Any(x => x != 0), "the example's gradient reached the LM head");
    }

    [Test]
    public void TheReadmeTrainingExampleRuns()
    {
        const int steps = 3;
        string outputFolder = Path.Combine(Path.GetTempPath(), "grpo-readme-" + Guid.NewGuid().ToString("N"));
        try
        {
            // --- the README's training example, verbatim from here ---
            using var device = Device.FromEnvironment();          // GRPO_DEVICE=auto|cpu|cuda|ilgpu-cpu
            var task = StringTransformTask.Get("reverse");        // prompts and a character tokenizer
            using var policy = TransformerModel.CreateRandom(device, task.DefaultModel(), seed: 1); // or TransformerModel.Load(device, hfFolder)
            var options = new GrpoTrainerOptions
            {
                GroupSize = 8, PromptsPerStep = 16, MaxPromptLength = task.MaxPromptLength,
                MaxCompletionLength = task.MaxCompletionLength, StopTokens = [task.Tokenizer.Eos],
                LearningRate = 3e-4f, TotalSteps = steps,
            };
            var exact = RewardFunction.Create("exact", (prompt, completion) =>
                completion == new string(prompt.TrimEnd('=').Reverse().ToArray()) ? 1f : 0f);
            using var trainer = new GrpoTrainer(policy, task.Tokenizer, [exact], options);
            trainer.StepCompleted += (_, e) => Console.WriteLine($"step {e.Metrics.Step}: reward {e.Metrics.Reward:F3}");
            for (int step = 1; step <= options.TotalSteps; step++)
                trainer.TrainStep(task.TrainingWords(seed: 0, step, options.PromptsPerStep).Select(task.PromptTokens).ToArray());
            policy.Save(outputFolder);                            // config.json + model.safetensors, loadable by transformers
            // --- end of the example ---
            Assert.That(trainer.Step, Is.EqualTo(steps));
            Assert.That(File.Exists(Path.Combine(outputFolder, "model.safetensors")));
        }
        finally
        {
            if (Directory.Exists(outputFolder)) Directory.Delete(outputFolder, recursive: true);
        }
    }

    [Test]
    public void TheReadmeFineTuningExampleRuns()
    {
        // A tiny random GPT-2 with GPT-2's real tokenizer and a context long enough for the example's lengths.
        const int steps = 2;
        var config = TinyModels.Config("gpt2", vocab: 50257) with { MaxPositions = 256 };
        string modelFolder = TinyModels.WriteFolder(config, TinyModels.Parameters(config, new Random(2)));
        string datasetFile = Path.Combine(modelFolder, "train.jsonl");
        foreach (string file in new[] { "vocab.json", "merges.txt" })
            File.Copy(Path.Combine(Tokenization.TokenizerTestData.Folder("gpt2"), file), Path.Combine(modelFolder, file));
        File.WriteAllLines(datasetFile, Enumerable.Range(1, 6).Select(i => $"{{\"prompt\": \"What is {i} + {i}?\", \"answer\": \"#### {2 * i}\"}}"));
        try
        {
            // --- the README's fine-tuning example, verbatim from here ---
            using var device = Device.FromEnvironment();
            using var policy = TransformerModel.Load(device, modelFolder);            // e.g. ./Qwen2.5-0.5B-Instruct
            using var tokenizer = HuggingFaceTokenizer.Load(modelFolder);
            var dataset = PromptDataset.Load(datasetFile);                           // e.g. gsm8k/train.parquet: prompt, answer
            var prompts = new PromptSource(dataset, new PromptBuilder(tokenizer, new PromptFormatOptions { MaxPromptLength = 128 }),
                new PromptSampler(dataset.Count, seed: 1));
            var options = new GrpoTrainerOptions
            {
                GroupSize = 8, PromptsPerStep = 4, MaxPromptLength = 128, MaxCompletionLength = 64,
                StopTokens = [tokenizer.SpecialTokens.Eos!.Value], TotalSteps = steps,
            };
            using var trainer = new GrpoTrainer(policy, tokenizer, [AccuracyReward.Create()], options);
            for (int step = 1; step <= options.TotalSteps; step++)
            {
                var batch = prompts.NextPrompts(options.PromptsPerStep);             // rows within MaxPromptLength, with their columns
                trainer.TrainStep(batch.Select(p => p.Tokens.TokenIds.ToArray()).ToArray(), batch.Select(p => p.Row.Columns).ToArray());
            }
            // --- end of the example ---
            Assert.That(trainer.Step, Is.EqualTo(steps));
            string readme = File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "README.md"));
            Assert.That(readme, Does.Contain("using var trainer = new GrpoTrainer(policy, tokenizer, [AccuracyReward.Create()], options);"));
            Assert.That(readme, Does.Contain("trainer.TrainStep(batch.Select(p => p.Tokens.TokenIds.ToArray()).ToArray(), batch.Select(p => p.Row.Columns).ToArray());"));
        }
        finally
        {
            Directory.Delete(modelFolder, recursive: true);
        }
    }

    [Test]
    public void TheReadmeStillContainsTheExample()
    {
        string readme = File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "README.md"));
        Assert.That(readme, Does.Contain("ops.ComputeAdvantages(rewardsPerFunction, [1.0f, 0.5f], groupSize: 8, RewardScaling.Group,"));
        Assert.That(readme, Does.Contain("using var loss = new FusedGrpoLoss(device, completions: n, completionLength: t);"));
        Assert.That(readme, Does.Contain("using Grpo.Native.Losses;"));
        Assert.That(readme, Does.Contain("using var trainer = new GrpoTrainer(policy, task.Tokenizer, [exact], options);"));
        Assert.That(readme, Does.Contain("trainer.TrainStep(task.TrainingWords(seed: 0, step, options.PromptsPerStep).Select(task.PromptTokens).ToArray());"));
    }
}

using Grpo.Native.Cpu;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

using static Grpo.Native.Tests.Training.TinyRuns;

namespace Grpo.Native.Tests.Distributed;

/// <summary>The trainer on K ranks (threads of this process) against one process: the same weights and metrics, bit for bit.</summary>
public sealed class DataParallelTrainerTests
{
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public void KRanksTrainExactlyAsOneProcess(int size)
    {
        var random = TestRandom.Create();
        // Micro-batches of random size, so ranks own unequal numbers of them (or none); options that make every global
        // quantity matter: batch-scaled rewards, dapo's whole-batch token count, μ = 2 with old log-probs, β > 0, and the
        // per-micro-batch entropy mask with an entropy bonus.
        var options = Options(seed: random.Next(1000)) with
        {
            PromptsPerStep = 12, GroupSize = 2, MicroBatchSize = random.Next(1, 25), NumIterations = 2, Beta = 0.04f,
            ScaleRewards = RewardScaling.Batch, LossType = random.Next(2) == 0 ? LossType.Dapo : LossType.Grpo,
            EntropyCoefficient = 0.01f, TopEntropyQuantile = 0.5f,
        };
        TestContext.Out.WriteLine($"K = {size}, micro-batch {options.MicroBatchSize}, loss {options.LossType}, seed {options.Seed}");
        int modelSeed = random.Next(1000);
        var rewards = new[] { Reverse.Rewards()[0], Varied };
        const int Steps = 2;

        (float[] Weights, List<IReadOnlyDictionary<string, double>> Metrics) Train(Grpo.Native.Distributed.ICommunicator? ranks)
        {
            using var device = new CpuDevice(maxDegreeOfParallelism: 1);
            using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), modelSeed);
            using var reference = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), modelSeed);
            using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, rewards, options, reference, ranks);
            var metrics = Enumerable.Range(1, Steps).Select(step => trainer.TrainStep(Prompts(options, step)).ToDictionary()).ToList();
            return (policy.Parameters.Buffer.ToArray(), metrics);
        }

        var one = Train(null);
        var world = new InProcessRanks(size);
        var ranks = world.Run(rank => Train(rank));
        SameAsOneProcess.Assert(one.Weights, one.Metrics, ranks);
    }

    [Test]
    public void APromptCountTheRanksDoNotDivideIsRefusedBeforeAnyWork()
    {
        var world = new InProcessRanks(3);
        using var device = new CpuDevice();
        using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1);
        var options = Options() with { PromptsPerStep = 4 };
        var e = Assert.Throws<ArgumentException>(() => new GrpoTrainer(policy, Reverse.Tokenizer, Reverse.Rewards(), options, communicator: world.Ranks[0]));
        Assert.That(e!.Message, Does.Contain("--prompts").And.Contain("3 ranks"));
    }

    [Test]
    public void RanksWithDifferentWeightsAreRefusedAtTheFirstStep()
    {
        var world = new InProcessRanks(2);
        var options = Options() with { PromptsPerStep = 2 };
        var errors = world.Run(rank =>
        {
            using var device = new CpuDevice(maxDegreeOfParallelism: 1);
            using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), seed: 1 + rank.Rank); // a different model per rank
            using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, Reverse.Rewards(), options, communicator: rank);
            try
            {
                trainer.TrainStep(Prompts(options, 1));
                return null;
            }
            catch (InvalidOperationException e)
            {
                Assert.That(trainer.Step, Is.EqualTo(0), "no step was trained");
                return e.Message;
            }
        });
        foreach (string? error in errors) Assert.That(error, Does.Contain("Rank(s) 1 differ from rank 0"));
    }
}

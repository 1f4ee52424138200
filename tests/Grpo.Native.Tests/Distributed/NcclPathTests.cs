using Grpo.Native.Distributed;
using Grpo.Native.Ilgpu;
using Grpo.Native.Models;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

using static Grpo.Native.Tests.Training.TinyRuns;

namespace Grpo.Native.Tests.Distributed;

/// <summary>
/// The path a data-parallel gradient takes to NCCL, run on the simulator with NCCL emulated (<see cref="EmulatedNccl"/>):
/// rank 0's id handed to every rank, the communicator joined, the gradient's device address and count passed to the
/// all-reduce, and the trainer on two ranks against one process. A GPU machine runs NCCL itself over one rank (selfcheck).
/// </summary>
[NonParallelizable]
public sealed class NcclPathTests
{
    [Test]
    public void TwoRanksSumAWindowOfTheirBuffersAsAPlusB()
    {
        var random = TestRandom.Create();
        const int length = 1003, offset = 7;
        float[][] inputs = Enumerable.Range(0, 2).Select(_ => TestRandom.Normal(random, length + 2 * offset)).ToArray();
        var world = new InProcessRanks(2);
        var results = world.Run(rank =>
        {
            using var device = IlgpuDevice.CreateCpuSimulator();
            var nccl = new EmulatedNccl();
            device.UseNccl(nccl);
            using var allReduce = GradientAllReduce.For(rank, device);
            using var buffer = device.FromArray<float>(inputs[rank.Rank], length + 2 * offset); // (P + 14)
            using var window = buffer.Slice(offset, length);                                   // (P) the gradient
            allReduce.Sum(window);
            return (allReduce.Transport, nccl.AllReduces, Values: buffer.ToArray());
        });
        for (int r = 0; r < 2; r++)
        {
            Assert.That(results[r].Transport, Does.StartWith("NCCL emulated").And.Contain("2 rank(s)"));
            Assert.That(results[r].AllReduces, Is.EqualTo(1));
            float[] got = results[r].Values;
            for (int i = 0; i < length + 2 * offset; i++)
            {
                bool inside = i >= offset && i < offset + length;
                float expected = inside ? inputs[0][i] + inputs[1][i] : inputs[r][i];
                Assert.That(BitConverter.SingleToInt32Bits(got[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected)),
                    $"rank {r}, element {i} ({(inside ? "summed" : "outside the window, untouched")})");
            }
        }
    }

    /// <summary>
    /// Two ranks on the simulator, their gradients summed through NCCL's path, against one process on the simulator: the
    /// same weights and metrics, bit for bit (with two ranks NCCL's sum is a + b, the one-process tree's top node).
    /// </summary>
    [Test]
    public void TwoRanksTrainExactlyAsOneProcessThroughNccl()
    {
        var random = TestRandom.Create();
        // Small, as the simulator is slow: one micro-batch per rank, μ = 2 (two updates, two all-reduces) and β > 0.
        var options = Options(seed: random.Next(1000)) with
        {
            PromptsPerStep = 2, GroupSize = 2, MicroBatchSize = 2, NumIterations = 2, Beta = 0.04f, MaxCompletionLength = 3,
        };
        int modelSeed = random.Next(1000);
        var rewards = new[] { Reverse.Rewards()[0], Varied };
        const int Steps = 1;

        (float[] Weights, List<IReadOnlyDictionary<string, double>> Metrics, int AllReduces) Train(ICommunicator? ranks)
        {
            using var device = IlgpuDevice.CreateCpuSimulator();
            var nccl = new EmulatedNccl();
            if (ranks is not null) device.UseNccl(nccl);
            using var policy = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), modelSeed);
            using var reference = TransformerModel.CreateRandom(device, Reverse.DefaultModel(), modelSeed);
            using var trainer = new GrpoTrainer(policy, Reverse.Tokenizer, rewards, options, reference, ranks);
            var metrics = Enumerable.Range(1, Steps).Select(step => trainer.TrainStep(Prompts(options, step)).ToDictionary()).ToList();
            return (policy.Parameters.Buffer.ToArray(), metrics, nccl.AllReduces);
        }

        var one = Train(null);
        var ranks = new InProcessRanks(2).Run(rank => Train(rank));
        for (int r = 0; r < 2; r++)
            Assert.That(ranks[r].AllReduces, Is.EqualTo(Steps * options.NumIterations), $"rank {r}: one NCCL all-reduce per update");
        SameAsOneProcess.Assert(one.Weights, one.Metrics, ranks.Select(rank => (rank.Weights, rank.Metrics)).ToArray());
    }

    [Test]
    public void ASecondNcclIsRefused()
    {
        using var device = IlgpuDevice.CreateCpuSimulator();
        device.UseNccl(new EmulatedNccl());
        Assert.That(() => device.UseNccl(new EmulatedNccl()), Throws.InvalidOperationException);
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Models;
using Grpo.Native.Tests.Models;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Training;

/// <summary>
/// A GRPO step on the ILGPU simulator, counted: once the first step has sized every buffer, a step whose shapes
/// repeat allocates no device memory (disposed tensors' buffers are reused) and frees none; the managed CPU
/// backend reuses its arrays the same way.
/// </summary>
public sealed class TrainingStepDeviceTrafficTests
{
    [Test]
    public void AStepAfterTheFirstAllocatesAndFreesNoDeviceMemory()
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config("llama", layers: 1);
        using var policy = TransformerModel.CreateRandom(device, config, seed: random.Next());
        // No stop tokens: every completion has the full length, so every step has the same shapes.
        var options = new GrpoTrainerOptions
        {
            GroupSize = 2, PromptsPerStep = 2, MaxPromptLength = 4, MaxCompletionLength = 3, LearningRate = 1e-3f,
            TotalSteps = 10, MicroBatchSize = 4, Seed = random.Next(),
        };
        var reward = RewardFunction.Create("varied", input => input.CompletionTokens.Sum() % 5);
        using var trainer = new GrpoTrainer(policy, new DigitTokenizer(config.VocabSize), [reward], options);
        for (int step = 1; step <= 3; step++)
        {
            int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 4, 4);
            var before = device.Stats.Snapshot();
            long reuses = device.Stats.Reuses;
            trainer.TrainStep(prompts);
            var counted = device.Stats.Snapshot() - before;
            TestContext.Out.WriteLine($"step {step}: {counted}, {device.Stats.Reuses - reuses} buffers reused");
            if (step == 1) continue; // the first step sizes the buffers
            Assert.That(counted.Allocations, Is.Zero, $"step {step} allocated device memory");
            Assert.That(counted.Frees, Is.Zero, $"step {step} freed device memory");
        }
    }

    /// <summary>
    /// What a step reads back from the device, counted on the simulator (the copies CUDA would make): the rollout's tokens
    /// and log-probs (2, the completions must reach the reward functions), the advantages' statistics and their outputs
    /// for the metrics (2), and one read of every update's scalars at the end: each micro-batch's objective scalars with the
    /// input checks and the entropy metric, and each update's gate (norm, clip factor, whether it applied), which were
    /// decided on the device. Before the gate, a step read once per micro-batch and update and once per update besides
    /// (4 + μ·(M + 1)); before the checks and the entropy mean moved onto the device, 9 + 4M. Entropy masking (the last case)
    /// finds its quantile on the device too; it read the entropies once per micro-batch and update before.
    /// </summary>
    [TestCase(1, 1, 1f)]
    [TestCase(2, 2, 1f)]
    [TestCase(4, 3, 1f)]
    [TestCase(2, 2, 0.5f)]
    public void AStepReadsBackFiveTimesWhateverItsMicroBatchesAndUpdates(int microBatches, int iterations, float topEntropyQuantile)
    {
        var device = (IlgpuDevice)TestDevices.Get(DeviceKind.IlgpuCpu);
        var random = TestRandom.Create();
        var config = TinyModels.Config("qwen2", layers: 1);
        using var policy = TransformerModel.CreateRandom(device, config, seed: random.Next());
        using var reference = TransformerModel.CreateRandom(device, config, seed: random.Next());
        var options = new GrpoTrainerOptions
        {
            GroupSize = 2, PromptsPerStep = 2, MaxPromptLength = 4, MaxCompletionLength = 3, LearningRate = 1e-3f,
            TotalSteps = 10, MicroBatchSize = 4 / microBatches, NumIterations = iterations, Beta = 0.04f, MaxGradNorm = 1e-3f,
            Seed = random.Next(), TopEntropyQuantile = topEntropyQuantile,
        };
        var reward = RewardFunction.Create("varied", input => input.CompletionTokens.Sum() % 5);
        using var trainer = new GrpoTrainer(policy, new DigitTokenizer(config.VocabSize), [reward], options, reference);
        for (int step = 1; step <= 2; step++)
        {
            var before = device.Stats.Snapshot();
            var metrics = trainer.TrainStep(TinyModels.Sequences(random, config.VocabSize, 4, 4));
            var counted = device.Stats.Snapshot() - before;
            TestContext.Out.WriteLine($"step {step}, {microBatches} micro-batch(es), μ = {iterations}: {counted}; " +
                $"{metrics.UpdatesApplied} updates, grad norm {metrics.GradNorm}");
            Assert.That(counted.DeviceToHostCopies, Is.EqualTo(5), $"step {step}: {counted}");
            // The first step may wait once where a scratch buffer or the rope table grows; after it, nothing waits but the reads.
            if (step > 1) Assert.That(counted.Synchronizations, Is.Zero, $"step {step}: its phases are timed by marks in the queue, not by waits");
            var phases = metrics.Phases!;
            double phaseSum = phases.Rollout + phases.Rewards + phases.ReferenceLogprobs + phases.PolicyForwardBackward + phases.Optimizer;
            Assert.That(phases.Rollout, Is.GreaterThan(0), "the rollout is timed");
            Assert.That(phases.PolicyForwardBackward, Is.GreaterThan(0), "the forward and backward are timed");
            Assert.That(phaseSum, Is.LessThanOrEqualTo(metrics.StepTime), "the phases are disjoint parts of the step");
            Assert.That(metrics.UpdatesApplied, Is.EqualTo(iterations), "every update applied");
            Assert.That(trainer.Optimizer.StepCount, Is.EqualTo(step * iterations), "the optimizer's step count");
        }
    }

    /// <summary>
    /// The same on the managed CPU backend: after the first step every tensor reuses the array of one disposed in an
    /// earlier step, so the process does not pile up dead activation arrays between full garbage collections.
    /// </summary>
    [Test]
    public void AStepAfterTheFirstAllocatesNoArraysOnTheCpuBackend()
    {
        using var device = new Grpo.Native.Cpu.CpuDevice();
        var random = TestRandom.Create();
        var config = TinyModels.Config("qwen2", layers: 2);
        using var policy = TransformerModel.CreateRandom(device, config, seed: random.Next());
        using var reference = TransformerModel.CreateRandom(device, config, seed: random.Next());
        var options = new GrpoTrainerOptions
        {
            GroupSize = 2, PromptsPerStep = 2, MaxPromptLength = 4, MaxCompletionLength = 3, LearningRate = 1e-3f,
            TotalSteps = 10, MicroBatchSize = 2, Beta = 0.04f, Seed = random.Next(),
        };
        var reward = RewardFunction.Create("varied", input => input.CompletionTokens.Sum() % 5);
        using var trainer = new GrpoTrainer(policy, new DigitTokenizer(config.VocabSize), [reward], options, reference);
        for (int step = 1; step <= 3; step++)
        {
            int[][] prompts = TinyModels.Sequences(random, config.VocabSize, 4, 4);
            long before = device.ArrayAllocations;
            trainer.TrainStep(prompts);
            long allocated = device.ArrayAllocations - before;
            TestContext.Out.WriteLine($"step {step}: {allocated} arrays allocated, {device.CachedBytes} bytes cached, " +
                $"{device.AllocatedBytes} bytes live (peak {device.PeakAllocatedBytes})");
            if (step == 1) continue;
            Assert.That(allocated, Is.Zero, $"step {step} allocated new arrays");
        }
    }

    /// <summary>
    /// The activation sets a step creates: the policy's training set, an inference set for the old log-probs only when
    /// μ &gt; 1, and one reference set (β &gt; 0) for all micro-batches, sized for the largest (the rollout's decoder keeps its
    /// own across steps); none for passes that do not run, so no memory is held or cached for them. (Before: the policy's
    /// inference set every step, and a reference set per micro-batch.)
    /// </summary>
    [TestCase(0f, 1, 1, 0)]
    [TestCase(0.04f, 1, 1, 1)]
    [TestCase(0.04f, 2, 2, 1)]
    public void AStepCreatesOnlyTheActivationSetsItsPassesUse(float beta, int iterations, int policySets, int referenceSets)
    {
        using var device = new Grpo.Native.Cpu.CpuDevice();
        var random = TestRandom.Create();
        var config = TinyModels.Config("llama", layers: 1);
        using var policy = TransformerModel.CreateRandom(device, config, seed: random.Next());
        using var reference = TransformerModel.CreateRandom(device, config, seed: random.Next());
        var options = new GrpoTrainerOptions
        {
            GroupSize = 2, PromptsPerStep = 2, MaxPromptLength = 4, MaxCompletionLength = 3, LearningRate = 1e-3f,
            TotalSteps = 10, MicroBatchSize = 1, NumIterations = iterations, Beta = beta, Seed = random.Next(), // 4 micro-batches
        };
        var reward = RewardFunction.Create("varied", input => input.CompletionTokens.Sum() % 5);
        using var trainer = new GrpoTrainer(policy, new DigitTokenizer(config.VocabSize), [reward], options, reference);
        for (int step = 1; step <= 2; step++)
        {
            int policyBefore = policy.ActivationSetsCreated, referenceBefore = reference.ActivationSetsCreated;
            trainer.TrainStep(TinyModels.Sequences(random, config.VocabSize, 4, 4));
            Assert.That(policy.ActivationSetsCreated - policyBefore, Is.EqualTo(policySets), $"step {step}: the policy's sets");
            Assert.That(reference.ActivationSetsCreated - referenceBefore, Is.EqualTo(referenceSets), $"step {step}: the reference's sets");
        }
    }

    /// <summary>Token ids as space-separated numbers: the reward reads ids only.</summary>
    private sealed class DigitTokenizer(int vocabulary) : Grpo.Native.Tokenization.ITokenizer
    {
        public int VocabularySize => vocabulary;
        public int[] Encode(string text) => text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        public string Decode(IReadOnlyList<int> tokens) => string.Join(' ', tokens);
    }
}

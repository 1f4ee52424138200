using Grpo.Native.Cpu;
using Grpo.Native.Models;
using Grpo.Native.Tasks;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Training;

/// <summary>
/// Long runs, not in the default test set (about a minute):
/// <c>dotnet test Grpo.Native.sln -c Release --filter "TestCategory=Soak"</c>.
/// </summary>
[Explicit("a 1000-step run; select it with --filter \"TestCategory=Soak\"")]
[Category("Soak")]
public sealed class SoakTests
{
    [Test]
    public void AThousandStepsGrowNeitherManagedMemoryNorDeviceAllocations()
    {
        var task = StringTransformTask.Get("reverse");
        var options = new GrpoTrainerOptions
        {
            GroupSize = 4, PromptsPerStep = 8, MaxPromptLength = task.MaxPromptLength, MaxCompletionLength = task.MaxCompletionLength,
            StopTokens = [task.Tokenizer.Eos], LearningRate = 3e-4f, TotalSteps = 1000, MicroBatchSize = 16, Seed = 1,
        };
        using var device = new CpuDevice();
        using var policy = TransformerModel.CreateRandom(device, task.DefaultModel(), seed: 1);
        using var trainer = new GrpoTrainer(policy, task.Tokenizer, task.Rewards(), options);
        long managedAfterWarmUp = 0, deviceAfterWarmUp = 0;
        for (int step = 1; step <= options.TotalSteps; step++)
        {
            trainer.TrainStep(task.TrainingWords(options.Seed, step, options.PromptsPerStep).Select(task.PromptTokens).ToArray());
            if (step == 100)
            {
                managedAfterWarmUp = GC.GetTotalMemory(forceFullCollection: true);
                deviceAfterWarmUp = device.AllocatedBytes;
            }
        }
        long managedAtEnd = GC.GetTotalMemory(forceFullCollection: true);
        TestContext.Out.WriteLine($"managed memory after 100 steps {managedAfterWarmUp / 1048576.0:F1} MiB, after 1000 {managedAtEnd / 1048576.0:F1} MiB; " +
                                  $"device tensors {deviceAfterWarmUp} -> {device.AllocatedBytes} bytes");
        Assert.That(device.AllocatedBytes, Is.EqualTo(deviceAfterWarmUp), "every per-step tensor is freed");
        Assert.That(managedAtEnd - managedAfterWarmUp, Is.LessThan(8L << 20), "managed memory stays flat (well under 8 MiB of growth)");
    }
}

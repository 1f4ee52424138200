using Grpo.Native.Devices;
using Grpo.Native.Losses;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tests.Support;
using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Models;

/// <summary>The model trains: a tiny model of each family overfits one batch, and micro-batches accumulate to the full batch's gradient.</summary>
public sealed class TransformerTrainingTests
{
    public static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds()
        from name in new[] { "gpt2", "llama", "qwen2", "qwen3" }
        select new TestCaseData(kind, name);

    [TestCaseSource(nameof(Cases))]
    public void TinyModelOverfitsOneBatch(DeviceKind kind, string name)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        // The ILGPU CPU simulator runs every thread of a kernel as a real thread (about 1 s per step of the
        // larger case): there the model has one layer and the batch two short sequences, so the test stays fast.
        // The ids are all different, so the batch can be fitted exactly whatever the draw. Over 300 seeds of
        // each family and size the loss fell at least 64-fold (median 80-12,000-fold), so the tenfold bar
        // below holds with a wide margin.
        bool simulator = kind == DeviceKind.IlgpuCpu;
        var config = TinyModels.Config(name, vocab: simulator ? 16 : 48, layers: simulator ? 1 : 2);
        using var model = TransformerModel.CreateRandom(device, config, seed: random.Next());
        var sequences = simulator
            ? TinyModels.DistinctSequences(random, config.VocabSize, 8, 6)
            : TinyModels.DistinctSequences(random, config.VocabSize, 12, 9, 12, 7);
        using var batch = TokenBatch.Create(device, sequences, config.VocabSize, config.MaxPositions);
        using var activations = model.CreateActivations(batch.TokenCount);
        using var loss = new NextTokenLoss(device, batch.TokenCount);
        using var dHidden = device.Allocate<float>(batch.TokenCount, config.HiddenSize);
        using var optimizer = new AdamWOptimizer(device, model.Parameters.Count, new AdamWOptions { WeightDecay = 0 });
        float first = 0, last = 0;
        int steps = simulator ? 40 : 60;
        for (int step = 0; step < steps; step++)
        {
            model.ZeroGradients();
            dHidden.Fill(0f);
            var hidden = model.Forward(batch, activations);
            last = loss.Compute(batch, hidden, model.LmHead, dHidden, model.LmHeadGradient);
            if (step == 0) first = last;
            model.Backward(batch, activations, dHidden);
            GradientClipping.ClipGlobalNorm(device.Operations, model.Gradients.Buffer, 1.0f);
            optimizer.Step(model.Parameters.Buffer, model.Gradients.Buffer, simulator ? 2e-2f : 1e-2f);
        }
        TestContext.Out.WriteLine($"{name} on {kind}: cross-entropy {first:F4} -> {last:F4} in {steps} steps ({first / last:F1}x)");
        Assert.That(last, Is.LessThan(first / 10), "the loss should fall at least tenfold on one fixed batch");
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void MicroBatchesAccumulateToTheFullBatchGradient(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var config = TinyModels.Config("qwen2");
        using var model = TransformerModel.CreateRandom(device, config, seed: random.Next());
        device.Operations.Scale(model.Parameters.Buffer, 10f);
        var sequences = TinyModels.Sequences(random, config.VocabSize, 6, 3, 8, 5);

        // loss = Σ over every row of w·log p(target): splitting the rows into micro-batches splits the sum.
        int total = sequences.Sum(s => s.Length);
        int[] targets = Enumerable.Range(0, total).Select(_ => random.Next(config.VocabSize)).ToArray();
        float[] weights = TestRandom.Normal(random, total);
        void Accumulate(int first, int count)
        {
            var part = sequences.Skip(first).Take(count).ToArray();
            int rowOffset = sequences.Take(first).Sum(s => s.Length), m = part.Sum(s => s.Length);
            using var batch = TokenBatch.Create(device, part, config.VocabSize, config.MaxPositions);
            using var activations = model.CreateActivations(m);
            using var targetTensor = device.FromArray<int>(targets.AsSpan(rowOffset, m), m);
            using var dLogprobs = device.FromArray<float>(weights.AsSpan(rowOffset, m), m);
            using var logprobs = device.Allocate<float>(m);
            using var lse = device.Allocate<float>(m);
            using var dHidden = device.Allocate<float>(m, config.HiddenSize);
            dHidden.Fill(0f);
            var hidden = model.Forward(batch, activations);
            device.Operations.LogSoftmaxGatherForward(hidden, model.LmHead, targetTensor, 1f, logprobs, lse, null);
            device.Operations.LogSoftmaxGatherBackward(hidden, model.LmHead, targetTensor, 1f, lse, dLogprobs, dHidden, model.LmHeadGradient);
            model.Backward(batch, activations, dHidden);
        }

        model.ZeroGradients();
        Accumulate(0, 4);
        double[] full = Array.ConvertAll(model.Gradients.Buffer.ToArray(), v => (double)v);
        model.ZeroGradients();
        Accumulate(0, 1);
        Accumulate(1, 2);
        Accumulate(3, 1);
        Compare.WorstRelativeError("three micro-batches vs one batch", full, model.Gradients.Buffer.ToArray(), 1e-4);
    }
}

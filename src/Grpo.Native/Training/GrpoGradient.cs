using Grpo.Native.Losses;
using Grpo.Native.Models;
using Grpo.Native.Operations;

namespace Grpo.Native.Training;

/// <summary>What <see cref="GrpoGradient.Compute"/> returns: the parity outputs of <c>grpo grad</c>.</summary>
/// <param name="Loss">The aggregated GRPO loss.</param>
/// <param name="Advantages">(N) the advantages computed from the rewards.</param>
/// <param name="Logprobs">(N, T) the policy's per-token log-probs, zero-padded past each completion.</param>
/// <param name="CompletionSlots">T: the longest completion.</param>
/// <param name="Gradient">(P) d loss / d every parameter, laid out like the model's parameter buffer.</param>
/// <param name="Metrics">Clip ratios, KL and entropy of the loss.</param>
public sealed record GrpoGradResult(float Loss, float[] Advantages, float[] Logprobs, int CompletionSlots, float[] Gradient,
    FusedGrpoLossResult Metrics);

/// <summary>
/// The GRPO loss and gradient of one fixed batch, exactly as a trainer step computes them (rewards →
/// advantages → reference log-probs when β &gt; 0 → policy forward, loss, backward), with nothing sampled:
/// the parity interface against PyTorch / TRL.
/// </summary>
public static class GrpoGradient
{
    /// <summary>Computes the loss and the gradient of every parameter of <paramref name="policy"/>.</summary>
    /// <param name="policy">The model whose gradient is taken; its gradients are zeroed first.</param>
    /// <param name="reference">The reference model; required when β &gt; 0, unused otherwise.</param>
    /// <param name="batch">The batch.</param>
    /// <exception cref="ArgumentException">β &gt; 0 without a reference model, or the batch does not fit the model.</exception>
    public static GrpoGradResult Compute(TransformerModel policy, TransformerModel? reference, GrpoGradBatch batch)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(batch);
        batch.Validate();
        batch.CheckAgainst(policy.Config);
        if (batch.Objective.Beta > 0 && reference is null)
            throw new ArgumentException($"beta is {batch.Objective.Beta} but no reference model was given; pass one (grpo grad --ref DIR) or set beta to 0.",
                nameof(reference));
        if (reference is not null && reference.Config.VocabSize != policy.Config.VocabSize)
            throw new ArgumentException("The reference model's vocabulary differs from the policy's; they must share a tokenizer.", nameof(reference));

        var device = policy.Device;
        var ops = device.Operations;
        int n = batch.Completions.Length, t = Math.Max(1, batch.Completions.Max(c => c.Length));

        // Advantages over the whole batch, before it is split (as TRL computes them on the whole generation batch).
        var (scores, functions, weights) = batch.RewardMatrix();
        using var rewards = device.FromArray<float>(scores, n, functions);     // (N, F)
        using var weighted = device.Allocate<float>(n);                         // (N)
        using var advantages = device.Allocate<float>(n);                       // (N)
        using var groupMean = device.Allocate<float>(n / batch.GroupSize);      // (N/G)
        using var groupStd = device.Allocate<float>(n / batch.GroupSize);       // (N/G)
        RewardAggregation.ComputeAdvantages(device, rewards, weights, batch.GroupSize, batch.ScaleRewards, batch.MultiObjectiveAggregation,
            weighted, advantages, groupMean, groupStd);

        int size = batch.MicroBatchCompletions ?? n, count = (n + size - 1) / size;
        bool[] excluded = batch.MaskTruncatedCompletions ? batch.Truncated() : new bool[n]; // TRL: no eos token → out of the loss
        int totalTokens = Enumerable.Range(0, n).Sum(i => excluded[i] ? 0 : batch.Completions[i].Length);
        var lp = new float[n * t];                                              // (N, T) zero-padded
        float loss = 0;
        double low = 0, high = 0, region = 0, kl = 0, entropy = 0, dual = 0, cispo = 0;
        policy.ZeroGradients();
        for (int first = 0; first < n; first += size)
        {
            int k = Math.Min(size, n - first);
            var promptOfEach = Enumerable.Range(first, k).Select(i => (IReadOnlyList<int>)batch.Prompts[i / batch.GroupSize]).ToArray();
            var completionsOfBatch = Enumerable.Range(first, k).Select(i => (IReadOnlyList<int>)batch.Completions[i]).ToArray();
            using var micro = CompletionBatch.Create(device, promptOfEach, completionsOfBatch, policy.Config.VocabSize, policy.Config.MaxPositions);
            if (batch.MaskTruncatedCompletions) micro.MaskOut(excluded[first..(first + k)]);
            int slots = micro.CompletionSlots, m = micro.Sequences.TokenCount, tokens = micro.MaskedTokenCount;
            using var old = batch.OldLogprobs is null ? null : device.FromArray<float>(Grid(batch.OldLogprobs[first..(first + k)], k, slots), k, slots); // (k, T_mb)
            using var refLogprobs = batch.Objective.Beta > 0 ? device.Allocate<float>(k, slots) : null;                                              // (k, T_mb)
            if (refLogprobs is not null)
            {
                using var refActivations = reference!.CreateActivations(m, ActivationMode.Inference);
                GrpoLossPass.CompletionLogProbs(reference, micro, refActivations, batch.Temperature, refLogprobs);
            }
            using var microAdvantages = advantages.Slice(first, k);              // (k)
            using var logprobs = device.Allocate<float>(k, slots);              // (k, T_mb)
            using var activations = policy.CreateActivations(m);
            float share = MicroBatchShare.Of(batch.Objective.LossType, tokens, totalTokens, count);
            var r = GrpoLossPass.Run(policy, micro, activations, microAdvantages, old, refLogprobs, batch.Temperature, batch.Objective, share, logprobs);
            loss += share * r.Loss;
            double w = totalTokens == 0 ? 0 : (double)tokens / totalTokens; // metrics: token-weighted means, as the trainer logs them
            low += w * r.ClipRatioLow; high += w * r.ClipRatioHigh; region += w * r.ClipRatioRegion; kl += w * r.MeanKl;
            entropy += w * r.MeanEntropy; dual += w * r.DualClipRatio; cispo += w * r.CispoClipRatio;
            float[] rows = logprobs.ToArray();
            for (int i = 0; i < k; i++)
                Array.Copy(rows, i * slots, lp, (first + i) * t, batch.Completions[first + i].Length); // zero-padded, as documented
        }
        var metrics = new FusedGrpoLossResult(loss, (float)low, (float)high, (float)region, (float)kl, (float)entropy, (float)dual, (float)cispo);
        return new GrpoGradResult(loss, advantages.ToArray(), lp, t, policy.Gradients.Buffer.ToArray(), metrics);
    }

    /// <summary>Ragged rows → an (N, T) grid, zero-padded.</summary>
    private static float[] Grid(float[][] rows, int n, int t)
    {
        var grid = new float[n * t];
        for (int i = 0; i < n; i++) rows[i].CopyTo(grid, i * t);
        return grid;
    }
}

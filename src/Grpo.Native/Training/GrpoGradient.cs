using Grpo.Native.Losses;
using Grpo.Native.Models;

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
        int n = batch.Completions.Length;
        using var completions = CompletionBatch.Create(device, batch.Prompts, batch.Completions, batch.GroupSize,
            policy.Config.VocabSize, policy.Config.MaxPositions);
        int t = completions.CompletionSlots, m = completions.Sequences.TokenCount;

        using var rewards = device.FromArray<float>(batch.Rewards, n, 1);       // (N, F = 1)
        using var weighted = device.Allocate<float>(n);                         // (N)
        using var advantages = device.Allocate<float>(n);                       // (N)
        using var groupMean = device.Allocate<float>(n / batch.GroupSize);      // (N/G)
        using var groupStd = device.Allocate<float>(n / batch.GroupSize);       // (N/G)
        ops.ComputeAdvantages(rewards, [1f], batch.GroupSize, batch.ScaleRewards, weighted, advantages, groupMean, groupStd);

        using var old = batch.OldLogprobs is null ? null : device.FromArray<float>(Grid(batch.OldLogprobs, n, t), n, t); // (N, T)
        using var refLogprobs = batch.Objective.Beta > 0 ? device.Allocate<float>(n, t) : null;                       // (N, T)
        if (refLogprobs is not null)
        {
            using var refActivations = reference!.CreateActivations(m, ActivationMode.Inference);
            GrpoLossPass.CompletionLogProbs(reference, completions, refActivations, batch.Temperature, refLogprobs);
        }

        using var logprobs = device.Allocate<float>(n, t);                      // (N, T)
        using var activations = policy.CreateActivations(m);
        policy.ZeroGradients();
        var metrics = GrpoLossPass.Run(policy, completions, activations, advantages, old, refLogprobs, batch.Temperature,
            batch.Objective, 1f, logprobs);

        float[] lp = logprobs.ToArray();
        for (int i = 0; i < n; i++)
            for (int s = batch.Completions[i].Length; s < t; s++) lp[i * t + s] = 0; // zero-padded, as documented
        return new GrpoGradResult(metrics.Loss, advantages.ToArray(), lp, t, policy.Gradients.Buffer.ToArray(), metrics);
    }

    /// <summary>Ragged rows → an (N, T) grid, zero-padded.</summary>
    private static float[] Grid(float[][] rows, int n, int t)
    {
        var grid = new float[n * t];
        for (int i = 0; i < n; i++) rows[i].CopyTo(grid, i * t);
        return grid;
    }
}

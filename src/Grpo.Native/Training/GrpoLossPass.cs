using Grpo.Native.Losses;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Training;

/// <summary>
/// The policy's side of a GRPO update on one batch of completions: forward over the packed
/// prompt + completion sequences, gather the hidden state that predicts each completion token,
/// the fused GRPO loss (log-probs, clipped objective, KL, aggregation) from those states, and
/// the backward, which ACCUMULATES into the model's gradients. Also computes per-token log-probs
/// without gradients (old log-probs for μ &gt; 1, and the reference model's).
/// </summary>
public static class GrpoLossPass
{
    /// <summary>
    /// Per-token log-probs of the completion tokens, log softmax(logits / temperature), with no gradient.
    /// </summary>
    /// <param name="model">The policy or the reference model.</param>
    /// <param name="batch">The completions.</param>
    /// <param name="activations">Planned for at least batch.Sequences.TokenCount rows; inference mode is enough.</param>
    /// <param name="temperature">The sampling temperature.</param>
    /// <param name="logprobs">(N, T) output; padding cells hold the log-prob of token 0 and are masked out downstream.</param>
    public static void CompletionLogProbs(TransformerModel model, CompletionBatch batch, TransformerActivations activations,
        float temperature, Tensor<float> logprobs)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        var ops = model.Device.Operations;
        int n = batch.Count, t = batch.CompletionSlots, c = model.Config.HiddenSize;
        Guard.Shape(logprobs, nameof(logprobs), n, t);
        var hidden = model.Forward(batch.Sequences, activations);                    // (M, C)
        using var gathered = model.Device.Allocate<float>(n * t, c);                 // (N·T, C)
        using var logSumExp = model.Device.Allocate<float>(n * t);                   // (N·T)
        ops.EmbeddingForward(gathered, batch.PredictingRows, hidden, null, null);
        ops.LogSoftmaxGatherForward(gathered, model.LmHead, batch.CompletionTokens.Reshape(n * t), temperature,
            logprobs.Reshape(n * t), logSumExp, null);
    }

    /// <summary>
    /// The GRPO loss of <paramref name="batch"/> under the policy and its gradient, accumulated into
    /// <see cref="TransformerModel.Gradients"/> (times <paramref name="gradientScale"/>).
    /// </summary>
    /// <param name="model">The policy.</param>
    /// <param name="batch">The completions.</param>
    /// <param name="activations">Training activations planned for at least batch.Sequences.TokenCount rows.</param>
    /// <param name="advantages">(N) one advantage per completion.</param>
    /// <param name="oldLogprobs">(N, T) the sampling policy's log-probs, or null for μ = 1 (ρ = 1, gradient still flows).</param>
    /// <param name="refLogprobs">(N, T) the reference model's log-probs; needed when β &gt; 0.</param>
    /// <param name="temperature">The sampling temperature.</param>
    /// <param name="options">Clipping, β, aggregation, importance-sampling level.</param>
    /// <param name="gradientScale">This batch's share of a larger batch's loss (micro-batching); 1 for a whole batch.</param>
    /// <param name="logprobs">Optional (N, T) output: the policy's per-token log-probs (the <c>grad</c> command reports them).</param>
    public static FusedGrpoLossResult Run(TransformerModel model, CompletionBatch batch, TransformerActivations activations,
        Tensor<float> advantages, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs, float temperature,
        GrpoObjectiveOptions options, float gradientScale = 1f, Tensor<float>? logprobs = null) =>
        Accumulate(model, batch, activations, advantages, oldLogprobs, refLogprobs, temperature, options, gradientScale, logprobs, scalars: null)!;

    /// <summary>
    /// <see cref="Run"/> without reading anything back: the loss, the metrics and the input checks stay on the device in
    /// <paramref name="scalars"/> (<see cref="ObjectiveScalars"/>), so a training step reads them once, at its end.
    /// </summary>
    /// <param name="model">The policy.</param>
    /// <param name="batch">The completions.</param>
    /// <param name="activations">Training activations planned for at least batch.Sequences.TokenCount rows.</param>
    /// <param name="advantages">(N) one advantage per completion.</param>
    /// <param name="oldLogprobs">(N, T) the sampling policy's log-probs, or null for μ = 1.</param>
    /// <param name="refLogprobs">(N, T) the reference model's log-probs; needed when β &gt; 0.</param>
    /// <param name="temperature">The sampling temperature.</param>
    /// <param name="options">Clipping, β, aggregation, importance-sampling level.</param>
    /// <param name="gradientScale">This batch's share of a larger batch's loss.</param>
    /// <param name="scalars">(<see cref="ObjectiveScalars.Count"/>) output on the device.</param>
    public static void RunToDevice(TransformerModel model, CompletionBatch batch, TransformerActivations activations,
        Tensor<float> advantages, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs, float temperature,
        GrpoObjectiveOptions options, float gradientScale, Tensor<float> scalars)
    {
        ArgumentNullException.ThrowIfNull(scalars);
        Accumulate(model, batch, activations, advantages, oldLogprobs, refLogprobs, temperature, options, gradientScale, null, scalars);
    }

    /// <summary>The pass; the loss's result when <paramref name="scalars"/> is null, else null (the scalars stay on the device).</summary>
    private static FusedGrpoLossResult? Accumulate(TransformerModel model, CompletionBatch batch, TransformerActivations activations,
        Tensor<float> advantages, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs, float temperature,
        GrpoObjectiveOptions options, float gradientScale, Tensor<float>? logprobs, Tensor<float>? scalars)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        var device = model.Device;
        var ops = device.Operations;
        int n = batch.Count, t = batch.CompletionSlots, c = model.Config.HiddenSize, m = batch.Sequences.TokenCount;
        if (logprobs is not null) Guard.Shape(logprobs, nameof(logprobs), n, t);

        var hidden = model.Forward(batch.Sequences, activations);                    // (M, C)
        using var gathered = device.Allocate<float>(n, t, c);                        // (N, T, C)
        using var dGathered = device.Allocate<float>(n, t, c);                       // (N, T, C)
        using var dHidden = device.Allocate<float>(m, c);                            // (M, C)
        using var loss = new FusedGrpoLoss(device, n, t);
        ops.EmbeddingForward(gathered.Reshape(n * t, c), batch.PredictingRows, hidden, null, null);
        dGathered.Fill(0f);
        FusedGrpoLossResult? result = null;
        if (scalars is null)
            result = loss.Compute(gathered, model.LmHead, batch.CompletionTokens, batch.Mask, advantages, oldLogprobs, refLogprobs,
                temperature, options, dGathered, model.LmHeadGradient, gradientScale);
        else
            loss.ComputeToDevice(gathered, model.LmHead, batch.CompletionTokens, batch.Mask, advantages, oldLogprobs, refLogprobs,
                temperature, options, dGathered, model.LmHeadGradient, gradientScale, scalars);
        if (logprobs is not null) logprobs.CopyFrom(loss.Logprobs.ToArray()); // a host round trip: only the grad command asks

        // Each packed row receives the gradient of the (at most one) grid cell it predicts; padding cells carry zero.
        dHidden.Fill(0f);
        ops.EmbeddingBackward(dHidden, null, dGathered.Reshape(n * t, c), batch.PredictingRows, null);
        model.Backward(batch.Sequences, activations, dHidden);
        return result;
    }
}

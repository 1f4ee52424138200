using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// Per-token log-probabilities straight from hidden states and the LM head, without ever holding
    /// the (M, V) logits: z = hidden · lmHeadᵀ / temperature is computed a chunk of tokens at a time
    /// (extra memory O(chunk · V)), and per token m with target y_m it writes
    /// logprobs_m = z_{m,y_m} − lse_m, logSumExp_m = log Σ_j exp z_{m,j} (kept for the backward) and,
    /// when <paramref name="entropy"/> is given, entropy_m = lse_m − Σ_j softmax(z_m)_j z_{m,j}.
    /// Outputs are overwritten.
    /// </summary>
    /// <param name="hidden">(M, C) final hidden states, one row per token.</param>
    /// <param name="lmHead">(V, C) LM head / unembedding weights in the Hugging Face layout (one row per vocabulary entry).</param>
    /// <param name="targets">(M) the token id whose log-probability each row gathers, in [0, V).</param>
    /// <param name="temperature">Sampling temperature the logits are divided by; positive and finite.</param>
    /// <param name="logprobs">(M) output: log p(target) under softmax(z).</param>
    /// <param name="logSumExp">(M) output: log-sum-exp of z (of the logits divided by the temperature).</param>
    /// <param name="entropy">(M) optional output: entropy of softmax(z), a metric; no gradient flows through it.</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or lives on another device.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The temperature is not positive and finite, or a target is outside [0, V).</exception>
    void LogSoftmaxGatherForward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature,
        Tensor<float> logprobs, Tensor<float> logSumExp, Tensor<float>? entropy);

    /// <summary>
    /// Backward of <see cref="LogSoftmaxGatherForward"/>: given g = d loss / d logprobs it ACCUMULATES
    /// dHidden_m += (1/T) Σ_j dz_{m,j} lmHead_j and dLmHead_j += (1/T) Σ_m dz_{m,j} hidden_m with
    /// dz_{m,j} = g_m (1[j = y_m] − softmax(z_m)_j), recomputing each logits chunk instead of storing it.
    /// Callers zero the gradients first (llm.c convention).
    /// With <paramref name="entropy"/> and <paramref name="dEntropy"/> (both or neither) the loss also depends on the
    /// entropies H_m of the forward, and dz_{m,j} gains dEntropy_m · (−p_{m,j} (log p_{m,j} + H_m)), the entropy's
    /// gradient in the logits z = hidden · lmHeadᵀ / temperature.
    /// </summary>
    /// <param name="hidden">(M, C) the hidden states the forward saw.</param>
    /// <param name="lmHead">(V, C) the LM head the forward saw.</param>
    /// <param name="targets">(M) the targets the forward saw.</param>
    /// <param name="temperature">The forward's temperature.</param>
    /// <param name="logSumExp">(M) the forward's log-sum-exp output.</param>
    /// <param name="dLogprobs">(M) gradient of the loss with respect to the log-probabilities.</param>
    /// <param name="dHidden">(M, C) gradient accumulated (+=) with respect to the hidden states.</param>
    /// <param name="dLmHead">(V, C) gradient accumulated (+=) with respect to the LM head.</param>
    /// <param name="entropy">(M) optional: the forward's entropy output.</param>
    /// <param name="dEntropy">(M) optional: gradient of the loss with respect to the entropies.</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or lives on another device, or only one of the entropy pair is given.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The temperature is not positive and finite, or a target is outside [0, V).</exception>
    void LogSoftmaxGatherBackward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature,
        Tensor<float> logSumExp, Tensor<float> dLogprobs, Tensor<float> dHidden, Tensor<float> dLmHead,
        Tensor<float>? entropy = null, Tensor<float>? dEntropy = null);

    /// <summary>
    /// The most extra memory, in bytes, the fused log-softmax-gather uses on this device for
    /// <paramref name="tokens"/> rows, a vocabulary of <paramref name="vocabulary"/> and
    /// <paramref name="channels"/> channels: O(chunk · V), independent of the token count once it
    /// exceeds one chunk. Compare with the tokens · V · 4 bytes of materialised logits.
    /// </summary>
    long LogSoftmaxGatherScratchBytes(int tokens, int vocabulary, int channels);
}

/// <summary>Argument checks both backends run before the fused log-softmax-gather, so they reject the same inputs with the same messages.</summary>
internal static class LogSoftmaxGatherValidation
{
    /// <summary>Checks shapes and the temperature; returns (M, C, V).</summary>
    public static (int M, int C, int V) Forward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets,
        float temperature, Tensor<float> logprobs, Tensor<float> logSumExp, Tensor<float>? entropy)
    {
        var (m, c, v) = Common(hidden, lmHead, targets, temperature);
        Guard.Shape(logprobs, nameof(logprobs), m);
        Guard.Shape(logSumExp, nameof(logSumExp), m);
        if (entropy is not null) Guard.Shape(entropy, nameof(entropy), m);
        return (m, c, v);
    }

    /// <summary>Checks shapes and the temperature; returns (M, C, V).</summary>
    public static (int M, int C, int V) Backward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets,
        float temperature, Tensor<float> logSumExp, Tensor<float> dLogprobs, Tensor<float> dHidden, Tensor<float> dLmHead,
        Tensor<float>? entropy, Tensor<float>? dEntropy)
    {
        var (m, c, v) = Common(hidden, lmHead, targets, temperature);
        if ((entropy is null) != (dEntropy is null))
            throw new ArgumentException(
                $"'{(entropy is null ? nameof(entropy) : nameof(dEntropy))}' is null but the other is not: pass both the forward's entropies and d loss / d entropy, or neither.",
                entropy is null ? nameof(entropy) : nameof(dEntropy));
        if (entropy is not null) Guard.Shape(entropy, nameof(entropy), m);
        if (dEntropy is not null) Guard.Shape(dEntropy, nameof(dEntropy), m);
        Guard.Shape(logSumExp, nameof(logSumExp), m);
        Guard.Shape(dLogprobs, nameof(dLogprobs), m);
        Guard.Shape(dHidden, nameof(dHidden), m, c);
        Guard.Shape(dLmHead, nameof(dLmHead), v, c);
        return (m, c, v);
    }

    /// <summary>Throws unless every target id lies in [0, V), naming the first bad index and its value.</summary>
    public static void Targets(ReadOnlySpan<int> targets, int vocabulary)
    {
        for (int i = 0; i < targets.Length; i++)
        {
            int id = targets[i];
            if ((uint)id >= (uint)vocabulary)
                throw new ArgumentOutOfRangeException("targets", id,
                    $"'targets'[{i}] is {id} but token ids must lie in [0, {vocabulary}) for an LM head of {vocabulary} rows; " +
                    "check the tokenizer's vocabulary against the model's.");
        }
    }

    private static (int M, int C, int V) Common(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature)
    {
        Guard.Rank(hidden, nameof(hidden), 2, "(tokens, channels)");
        Guard.Rank(lmHead, nameof(lmHead), 2, "(vocabulary, channels)");
        int m = hidden.Shape[0], c = hidden.Shape[1], v = lmHead.Shape[0];
        if (lmHead.Shape[1] != c)
            throw new ArgumentException(
                $"'lmHead' has shape {lmHead.Shape} but 'hidden' has {c} channels; the LM head must be (vocabulary, {c}).",
                nameof(lmHead));
        Guard.Shape(targets, nameof(targets), m);
        if (!(temperature > 0) || !float.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature,
                $"'temperature' must be positive and finite but was {temperature}; use 1 for the plain softmax.");
        return (m, c, v);
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Losses;

/// <summary>
/// Cross-entropy of next-token prediction over packed sequences (supervised fine-tuning, and the
/// overfitting tests of the model): loss = −mean over every row that has a next token of
/// log softmax(hidden · lmHeadᵀ)[next token]. Runs through the fused log-softmax-gather, so the
/// (tokens × vocabulary) logits are never held.
/// </summary>
public sealed class NextTokenLoss : IDisposable
{
    private readonly IGrpoOperations _ops;
    private readonly Tensor<int> _targets;     // (M) next token, or 0 for a sequence's last row
    private readonly Tensor<float> _weights;   // (M) d loss / d log-prob: −1/count, 0 for last rows
    private readonly Tensor<float> _logprobs;  // (M)
    private readonly Tensor<float> _logSumExp; // (M)

    /// <summary>Allocates per-token buffers for up to <paramref name="maxTokens"/> rows.</summary>
    public NextTokenLoss(Device device, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        _ops = device.Operations;
        MaxTokens = maxTokens;
        _targets = device.Allocate<int>(maxTokens);
        _weights = device.Allocate<float>(maxTokens);
        _logprobs = device.Allocate<float>(maxTokens);
        _logSumExp = device.Allocate<float>(maxTokens);
    }

    /// <summary>The most rows one call takes.</summary>
    public int MaxTokens { get; }

    /// <summary>
    /// Computes the loss and ACCUMULATES its gradients into <paramref name="dHidden"/> and <paramref name="dLmHead"/>.
    /// </summary>
    /// <param name="batch">The packed sequences (their own tokens are the targets, shifted by one).</param>
    /// <param name="hidden">(M, C) the model's final hidden states for the batch.</param>
    /// <param name="lmHead">(V, C) the LM head.</param>
    /// <param name="dHidden">(M, C) += d loss / d hidden.</param>
    /// <param name="dLmHead">(V, C) += d loss / d LM head.</param>
    /// <returns>The mean negative log-likelihood, in nats per predicted token.</returns>
    public float Compute(TokenBatch batch, Tensor<float> hidden, Tensor<float> lmHead, Tensor<float> dHidden, Tensor<float> dLmHead)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int m = batch.TokenCount;
        if (m > MaxTokens)
            throw new ArgumentException($"The batch has {m} rows but the loss was made for {MaxTokens}.", nameof(batch));
        var targets = new int[m];
        var weights = new float[m];
        int predicted = m - batch.SequenceCount;
        if (predicted == 0)
            throw new ArgumentException("Every sequence has a single token: there is no next token to predict.", nameof(batch));
        for (int b = 0; b < batch.SequenceCount; b++)
            for (int row = batch.HostStarts[b]; row < batch.HostStarts[b + 1] - 1; row++)
            {
                targets[row] = batch.HostIds[row + 1];
                weights[row] = -1f / predicted;
            }
        var targetRows = _targets.Slice(0, m);    // (M)
        var weightRows = _weights.Slice(0, m);    // (M)
        var logprobs = _logprobs.Slice(0, m);     // (M)
        var logSumExp = _logSumExp.Slice(0, m);   // (M)
        targetRows.CopyFrom(targets);
        weightRows.CopyFrom(weights);
        _ops.LogSoftmaxGatherForward(hidden, lmHead, targetRows, 1f, logprobs, logSumExp, null);
        _ops.LogSoftmaxGatherBackward(hidden, lmHead, targetRows, 1f, logSumExp, weightRows, dHidden, dLmHead);
        float[] lp = logprobs.ToArray();
        double loss = 0;
        for (int row = 0; row < m; row++) loss += weights[row] * (double)lp[row];
        return (float)loss;
    }

    /// <summary>Frees the buffers.</summary>
    public void Dispose()
    {
        _targets.Dispose();
        _weights.Dispose();
        _logprobs.Dispose();
        _logSumExp.Dispose();
    }
}

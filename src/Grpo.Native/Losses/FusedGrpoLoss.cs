using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Losses;

/// <summary>What one <see cref="FusedGrpoLoss.Compute"/> measured, under TRL's metric names.</summary>
/// <param name="Loss">The aggregated GRPO loss (TRL: <c>loss</c>).</param>
/// <param name="ClipRatioLow">Masked fraction of tokens clipped below (<c>clip_ratio/low_mean</c>).</param>
/// <param name="ClipRatioHigh">Masked fraction of tokens clipped above (<c>clip_ratio/high_mean</c>).</param>
/// <param name="ClipRatioRegion">Masked fraction clipped on either side (<c>clip_ratio/region_mean</c>).</param>
/// <param name="MeanKl">Masked mean of the KL estimate (k3 unless chosen otherwise); 0 when beta is 0 (<c>kl</c>).</param>
/// <param name="MeanEntropy">Masked mean entropy of softmax(logits / temperature) (<c>entropy</c>).</param>
/// <param name="DualClipRatio">Masked fraction of tokens decided by the dual clip (verl's <c>pg_clipfrac_lower</c>); 0 when it is off.</param>
/// <param name="CispoClipRatio">Masked fraction of tokens whose CISPO weight is capped, A &gt; 0 (<c>cispo_clip_ratio</c>); 0 unless the loss is cispo.</param>
public sealed record FusedGrpoLossResult(
    float Loss, float ClipRatioLow, float ClipRatioHigh, float ClipRatioRegion, float MeanKl, float MeanEntropy,
    float DualClipRatio = 0f, float CispoClipRatio = 0f);

/// <summary>
/// The GRPO loss and its gradients straight from the policy's final hidden states:
/// hidden → logits (chunk by chunk) → per-token log-probs and entropies → the GRPO objective (+ β·KL, − c·entropy,
/// entropy masking) → d hidden, d LM head.
/// Written once over <see cref="IGrpoOperations"/>, so it runs on every backend.
/// <para>
/// Memory: besides its inputs and gradients it holds five (N, T) buffers (log-probs, log-sum-exp,
/// entropy, d log-probs, d entropy) and the gather operation's O(chunk × V) scratch. The (N·T × V) logits are
/// never materialised: the backward recomputes each chunk of logits instead of storing it.
/// </para>
/// </summary>
public sealed class FusedGrpoLoss : IDisposable
{
    private readonly IGrpoOperations _operations;
    private readonly Tensor<float> _logprobs;   // (N, T)
    private readonly Tensor<float> _logSumExp;  // (N, T)
    private readonly Tensor<float> _entropy;    // (N, T)
    private readonly Tensor<float> _dLogprobs;  // (N, T)
    private readonly Tensor<float> _dEntropy;   // (N, T) d loss / d entropy: the entropy bonus's gradient

    /// <summary>Allocates the per-token buffers for <paramref name="completions"/> × <paramref name="completionLength"/> tokens.</summary>
    public FusedGrpoLoss(Device device, int completions, int completionLength)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(completions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(completionLength, 1);
        Device = device;
        _operations = device.Operations;
        Completions = completions;
        CompletionLength = completionLength;
        try
        {
            _logprobs = device.Allocate<float>(completions, completionLength);
            _logSumExp = device.Allocate<float>(completions, completionLength);
            _entropy = device.Allocate<float>(completions, completionLength);
            _dLogprobs = device.Allocate<float>(completions, completionLength);
            _dEntropy = device.Allocate<float>(completions, completionLength);
        }
        catch
        {
            Dispose(); // out of memory part-way: free what was allocated
            throw;
        }
    }

    /// <summary>The device everything runs on.</summary>
    public Device Device { get; }

    /// <summary>N: completions per call.</summary>
    public int Completions { get; }

    /// <summary>T: token slots per completion (the longest completion; shorter ones are masked).</summary>
    public int CompletionLength { get; }

    /// <summary>(N, T) per-token log-probs of the completion tokens from the last <see cref="Compute"/>; store them as old log-probs when μ &gt; 1.</summary>
    public Tensor<float> Logprobs => _logprobs;

    /// <summary>(N, T) per-token entropy of softmax(logits / temperature) from the last <see cref="Compute"/>.</summary>
    public Tensor<float> Entropy => _entropy;

    /// <summary>(N, T) d loss / d log-prob from the last <see cref="Compute"/>.</summary>
    public Tensor<float> LogprobGradient => _dLogprobs;

    /// <summary>
    /// Computes the loss and ACCUMULATES (+=) its gradients into <paramref name="dHidden"/> and <paramref name="dLmHead"/>.
    /// </summary>
    /// <param name="hidden">(N, T, C) final hidden states; row (n, t) is the state that predicts completion token t of completion n.</param>
    /// <param name="lmHead">(V, C) LM-head weight in Hugging Face layout.</param>
    /// <param name="completionTokens">(N, T) completion token ids; padding slots must still hold a valid id (e.g. 0).</param>
    /// <param name="mask">(N, T) 1 for completion tokens, 0 for padding.</param>
    /// <param name="advantages">(N) one advantage per completion.</param>
    /// <param name="oldLogprobs">(N, T) log-probs of the policy that sampled, or null when μ = 1 (then ρ = 1, but the gradient is not 0).</param>
    /// <param name="refLogprobs">(N, T) reference-model log-probs; required when β &gt; 0, unused when β = 0.</param>
    /// <param name="temperature">The sampling temperature: log-probs are of logits / temperature.</param>
    /// <param name="options">Loss type, clipping, β and the KL estimator, importance-sampling level, the entropy bonus and mask.</param>
    /// <param name="dHidden">(N, T, C) += d loss / d hidden.</param>
    /// <param name="dLmHead">(V, C) += d loss / d LM head.</param>
    /// <param name="gradientScale">
    /// Multiplies the gradients (not the returned loss): a micro-batch's share of a larger batch's loss,
    /// so that micro-batches accumulate to the full batch's gradient. Finite; 1 by default.
    /// </param>
    public FusedGrpoLossResult Compute(
        Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> completionTokens, Tensor<float> mask,
        Tensor<float> advantages, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs, float temperature,
        GrpoObjectiveOptions options, Tensor<float> dHidden, Tensor<float> dLmHead, float gradientScale = 1f)
    {
        var objective = Run(hidden, lmHead, completionTokens, mask, advantages, oldLogprobs, refLogprobs, temperature, options,
            dHidden, dLmHead, gradientScale, scalars: null)!;
        return new FusedGrpoLossResult(objective.Loss, objective.ClipRatioLow, objective.ClipRatioHigh,
            objective.ClipRatioRegion, objective.MeanKl, objective.MeanEntropy, objective.DualClipRatio, objective.CispoClipRatio);
    }

    /// <summary>
    /// <see cref="Compute"/> without reading anything back: the loss, the metrics and the input checks stay on the device in
    /// <paramref name="scalars"/> (<see cref="ObjectiveScalars"/>), for a training step that reads them once at its end.
    /// </summary>
    /// <param name="hidden">As <see cref="Compute"/>.</param>
    /// <param name="lmHead">As <see cref="Compute"/>.</param>
    /// <param name="completionTokens">As <see cref="Compute"/>.</param>
    /// <param name="mask">As <see cref="Compute"/>.</param>
    /// <param name="advantages">As <see cref="Compute"/>.</param>
    /// <param name="oldLogprobs">As <see cref="Compute"/>.</param>
    /// <param name="refLogprobs">As <see cref="Compute"/>.</param>
    /// <param name="temperature">As <see cref="Compute"/>.</param>
    /// <param name="options">As <see cref="Compute"/>.</param>
    /// <param name="dHidden">As <see cref="Compute"/>.</param>
    /// <param name="dLmHead">As <see cref="Compute"/>.</param>
    /// <param name="gradientScale">As <see cref="Compute"/>.</param>
    /// <param name="scalars">(<see cref="ObjectiveScalars.Count"/>) output on the device.</param>
    public void ComputeToDevice(
        Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> completionTokens, Tensor<float> mask,
        Tensor<float> advantages, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs, float temperature,
        GrpoObjectiveOptions options, Tensor<float> dHidden, Tensor<float> dLmHead, float gradientScale, Tensor<float> scalars)
    {
        ArgumentNullException.ThrowIfNull(scalars);
        Run(hidden, lmHead, completionTokens, mask, advantages, oldLogprobs, refLogprobs, temperature, options,
            dHidden, dLmHead, gradientScale, scalars);
    }

    /// <summary>The pass; the objective's result when <paramref name="scalars"/> is null, else null (the scalars stay on the device).</summary>
    private GrpoObjectiveResult? Run(
        Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> completionTokens, Tensor<float> mask,
        Tensor<float> advantages, Tensor<float>? oldLogprobs, Tensor<float>? refLogprobs, float temperature,
        GrpoObjectiveOptions options, Tensor<float> dHidden, Tensor<float> dLmHead, float gradientScale, Tensor<float>? scalars)
    {
        ArgumentNullException.ThrowIfNull(options);
        Guard.Finite(gradientScale, nameof(gradientScale), "pass the micro-batch's share of the batch loss, e.g. its tokens / the batch's tokens.");
        int n = Completions, t = CompletionLength;
        Guard.Rank(hidden, nameof(hidden), 3, "(N, T, C) of final hidden states");
        int c = hidden.Shape[2];
        Guard.Shape(hidden, nameof(hidden), n, t, c);
        Guard.Shape(completionTokens, nameof(completionTokens), n, t);
        Guard.Shape(dHidden, nameof(dHidden), n, t, c);

        // The gather operation works on token rows: view (N, T, ...) as (N·T, ...), no copies.
        using var hiddenRows = hidden.Reshape(n * t, c);            // (N·T, C)
        using var dHiddenRows = dHidden.Reshape(n * t, c);          // (N·T, C)
        using var tokenRows = completionTokens.Reshape(n * t);      // (N·T)
        using var logprobRows = _logprobs.Reshape(n * t);           // (N·T)
        using var logSumExpRows = _logSumExp.Reshape(n * t);        // (N·T)
        using var entropyRows = _entropy.Reshape(n * t);            // (N·T)
        using var dLogprobRows = _dLogprobs.Reshape(n * t);         // (N·T)
        using var dEntropyRows = _dEntropy.Reshape(n * t);          // (N·T)

        _operations.LogSoftmaxGatherForward(hiddenRows, lmHead, tokenRows, temperature, logprobRows, logSumExpRows, entropyRows);
        bool entropyBonus = options.EntropyCoefficient != 0;
        GrpoObjectiveResult? objective = null;
        if (scalars is null)
            objective = _operations.GrpoObjective(_logprobs, oldLogprobs, refLogprobs, advantages, mask, options, _dLogprobs,
                _entropy, entropyBonus ? _dEntropy : null);
        else
            _operations.GrpoObjectiveToDevice(_logprobs, oldLogprobs, refLogprobs, advantages, mask, options, _dLogprobs,
                _entropy, entropyBonus ? _dEntropy : null, scalars);
        if (gradientScale != 1f)
        {
            _operations.Scale(_dLogprobs, gradientScale);
            if (entropyBonus) _operations.Scale(_dEntropy, gradientScale);
        }
        // The entropy bonus's gradient flows through the softmax only when it is on.
        _operations.LogSoftmaxGatherBackward(hiddenRows, lmHead, tokenRows, temperature, logSumExpRows, dLogprobRows, dHiddenRows, dLmHead,
            entropyBonus ? entropyRows : null, entropyBonus ? dEntropyRows : null);

        return objective;
    }

    /// <summary>Frees the per-token buffers.</summary>
    public void Dispose()
    {
        _logprobs?.Dispose();
        _logSumExp?.Dispose();
        _entropy?.Dispose();
        _dLogprobs?.Dispose();
        _dEntropy?.Dispose();
    }
}

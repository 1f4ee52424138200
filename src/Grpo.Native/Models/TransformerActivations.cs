using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Models;

/// <summary>What a <see cref="TransformerActivations"/> keeps between the forward and the backward.</summary>
public enum ActivationMode
{
    /// <summary>Every activation the backward needs is saved per layer: fastest backward.</summary>
    Training,

    /// <summary>
    /// The cheap activations (norm outputs and the MLP's activation output) are not saved per layer
    /// but recomputed in the backward from what is: less memory for a little more work.
    /// </summary>
    TrainingWithRecompute,

    /// <summary>No backward: every layer reuses one set of buffers (sampling, reference log-probs).</summary>
    Inference,
}

/// <summary>The activation memory planned up front for a token budget, in bytes.</summary>
/// <param name="SavedBytes">Kept from the forward for the backward (per-layer activations and residual streams).</param>
/// <param name="ScratchBytes">Reused by every layer (projections, gradient buffers of the backward).</param>
/// <param name="RecomputeSavesBytes">What <see cref="ActivationMode.TrainingWithRecompute"/> saves compared with <see cref="ActivationMode.Training"/>.</param>
public sealed record ActivationMemory(long SavedBytes, long ScratchBytes, long RecomputeSavesBytes)
{
    /// <summary>Everything the activations hold.</summary>
    public long TotalBytes => SavedBytes + ScratchBytes;

    /// <inheritdoc />
    public override string ToString() =>
        $"{TotalBytes / 1048576.0:F1} MiB ({SavedBytes / 1048576.0:F1} MiB saved for the backward, {ScratchBytes / 1048576.0:F1} MiB scratch)";
}

/// <summary>
/// Every buffer the forward and backward passes of one model use, planned and allocated once for
/// up to <see cref="MaxTokens"/> packed token rows, so that a training step allocates nothing.
/// A call with fewer tokens uses the leading rows of each buffer. Shapes below are for M = MaxTokens.
/// </summary>
public sealed class TransformerActivations : IDisposable
{
    private readonly List<Tensor<float>> _owned = new();
    private readonly Device _device;

    internal TransformerActivations(Device device, ModelConfig config, int maxTokens, ActivationMode mode)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        _device = device;
        MaxTokens = maxTokens;
        Mode = mode;
        int m = maxTokens, c = config.HiddenSize, h = config.NumHeads, d = config.HeadDim, kvh = config.NumKeyValueHeads;
        int i = config.IntermediateSize, layers = config.NumLayers;
        bool layerNorm = config.ModelType == "gpt2", swiGlu = !layerNorm, qkNorm = config.HasQkNorm;
        bool training = mode != ActivationMode.Inference;
        bool saveCheap = mode == ActivationMode.Training;
        try
        {
            (Residual, Blocks, Hidden, FinalMean, FinalRstd, Projection, Memory) = Plan(device, config, m, c, h, d, kvh, i, layers,
                layerNorm, swiGlu, qkNorm, training, saveCheap);
        }
        catch
        {
            Dispose(); // an allocation failed part-way (out of memory): free what was allocated
            throw;
        }
    }

    private (Tensor<float>[], BlockActivations[], Tensor<float>, Tensor<float>?, Tensor<float>, Tensor<float>, ActivationMemory) Plan(
        Device device, ModelConfig config, int m, int c, int h, int d, int kvh, int i, int layers,
        bool layerNorm, bool swiGlu, bool qkNorm, bool training, bool saveCheap)
    {
        long saved = 0, scratch = 0;
        Tensor<float> New(ref long counter, params int[] shape)
        {
            var t = device.Allocate<float>(shape);
            _owned.Add(t);
            counter += t.Length * sizeof(float);
            return t;
        }

        // Residual streams: x_0 .. x_L (training keeps every one; inference updates one in place).
        var residual = new Tensor<float>[layers + 1];
        for (int l = 0; l <= layers; l++)
            residual[l] = training || l == 0 ? New(ref saved, m, c) : residual[0];

        var blocks = new BlockActivations[layers];
        BlockActivations? shared = null;
        for (int l = 0; l < layers; l++)
        {
            if (!training && shared is not null) { blocks[l] = shared; continue; }
            // Cheap activations are shared across layers unless every one is saved.
            bool reuseCheap = !saveCheap && l > 0;
            var first = l > 0 ? blocks[0] : null;
            blocks[l] = shared = new BlockActivations(
                Norm1: reuseCheap ? first!.Norm1 : New(ref saved, m, c),
                Mean1: layerNorm ? New(ref saved, m) : null,
                Rstd1: New(ref saved, m),
                QueryProjection: qkNorm ? New(ref saved, m, h * d) : null,
                KeyProjection: qkNorm ? New(ref saved, m, kvh * d) : null,
                QueryRstd: qkNorm ? New(ref saved, m, h) : null,
                KeyRstd: qkNorm ? New(ref saved, m, kvh) : null,
                Query: New(ref saved, m, h * d),
                Key: New(ref saved, m, kvh * d),
                Value: New(ref saved, m, kvh * d),
                Attention: New(ref saved, m, h * d),
                LogSumExp: New(ref saved, m, h),
                AttentionResidual: training ? New(ref saved, m, c) : residual[0],
                Norm2: reuseCheap ? first!.Norm2 : New(ref saved, m, c),
                Mean2: layerNorm ? New(ref saved, m) : null,
                Rstd2: New(ref saved, m),
                GateUp: swiGlu ? New(ref saved, m, 2 * i) : null,
                Up: swiGlu ? null : New(ref saved, m, i),
                Activation: reuseCheap ? first!.Activation : New(ref saved, m, i));
        }
        var hidden = New(ref saved, m, c);
        var finalMean = layerNorm ? New(ref saved, m) : null;
        var finalRstd = New(ref saved, m);
        var projection = New(ref scratch, m, c);
        // One GEMM's q, k and v before they are split into the three buffers above; in the backward, their gradients joined.
        QkvProjection = New(ref scratch, m, h * d + 2 * kvh * d);

        if (training)
        {
            DResidual = New(ref scratch, m, c);
            DNorm = New(ref scratch, m, c);
            DQuery = New(ref scratch, m, h * d);
            DKey = New(ref scratch, m, kvh * d);
            DValue = New(ref scratch, m, kvh * d);
            DQueryProjection = qkNorm ? New(ref scratch, m, h * d) : null;
            DKeyProjection = qkNorm ? New(ref scratch, m, kvh * d) : null;
            DAttention = New(ref scratch, m, h * d);
            DGateUp = swiGlu ? New(ref scratch, m, 2 * i) : null;
            DUp = swiGlu ? null : New(ref scratch, m, i);
            DActivation = New(ref scratch, m, i);
        }
        long recomputeSaves = layers > 1 ? (long)(layers - 1) * m * (2L * c + i) * sizeof(float) : 0;
        return (residual, blocks, hidden, finalMean, finalRstd, projection, new ActivationMemory(saved, scratch, recomputeSaves));
    }

    /// <summary>The most packed token rows one pass may have.</summary>
    public int MaxTokens { get; }

    /// <summary>What is kept for the backward.</summary>
    public ActivationMode Mode { get; }

    /// <summary>The bytes planned and allocated.</summary>
    public ActivationMemory Memory { get; }

    /// <summary>(M, C) final hidden states (after the final norm) of the last forward.</summary>
    public Tensor<float> Hidden { get; }

    internal Tensor<float>[] Residual { get; }          // L+1 × (M, C)
    internal BlockActivations[] Blocks { get; }
    internal Tensor<float>? FinalMean { get; }          // (M)
    internal Tensor<float> FinalRstd { get; }           // (M)
    internal Tensor<float> Projection { get; }          // (M, C) output of o_proj / down_proj before the residual add
    internal Tensor<float> QkvProjection { get; private set; } = null!; // (M, H·D + 2·KVH·D) the fused q/k/v GEMM's output (backward: its gradient)

    internal Tensor<float>? DResidual { get; private set; }          // (M, C) gradient of the residual stream
    internal Tensor<float>? DNorm { get; private set; }              // (M, C) gradient of a norm output
    internal Tensor<float>? DQuery { get; private set; }             // (M, H·D)
    internal Tensor<float>? DKey { get; private set; }               // (M, KVH·D)
    internal Tensor<float>? DValue { get; private set; }             // (M, KVH·D)
    internal Tensor<float>? DQueryProjection { get; private set; }   // (M, H·D) Qwen3: gradient before q_norm
    internal Tensor<float>? DKeyProjection { get; private set; }     // (M, KVH·D) Qwen3: gradient before k_norm
    internal Tensor<float>? DAttention { get; private set; }         // (M, H·D)
    internal Tensor<float>? DGateUp { get; private set; }            // (M, 2I) SwiGLU only: gradient of the gate|up rows
    internal Tensor<float>? DUp { get; private set; }                // (M, I) GPT-2 only: gradient of c_fc's output
    internal Tensor<float>? DActivation { get; private set; }        // (M, I)

    /// <summary>True when the backward must recompute the norm outputs and the MLP activation.</summary>
    internal bool Recompute => Mode == ActivationMode.TrainingWithRecompute;

    internal Device Device => _device;

    /// <summary>A view of the first <paramref name="rows"/> rows of a planned (MaxTokens, ...) buffer.</summary>
    internal Tensor<float> Rows(Tensor<float> planned, int rows) =>
        planned.Shape.Rank == 1 ? planned.Slice(0, rows) : planned.Slice(0, rows, (int)(planned.Length / MaxTokens));

    /// <summary>Frees every buffer.</summary>
    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
    }
}

/// <summary>One transformer block's activations, each (M, ·) for M = MaxTokens.</summary>
internal sealed record BlockActivations(
    Tensor<float> Norm1,             // (M, C) output of the attention norm
    Tensor<float>? Mean1,            // (M) LayerNorm only
    Tensor<float> Rstd1,             // (M)
    Tensor<float>? QueryProjection,  // (M, H·D) Qwen3 only: q_proj output, before q_norm
    Tensor<float>? KeyProjection,    // (M, KVH·D) Qwen3 only: k_proj output, before k_norm
    Tensor<float>? QueryRstd,        // (M, H) Qwen3 only: q_norm's rstd of each head's row
    Tensor<float>? KeyRstd,          // (M, KVH) Qwen3 only: k_norm's rstd of each head's row
    Tensor<float> Query,             // (M, H·D), normalised per head (Qwen3), then rotated when the family uses RoPE
    Tensor<float> Key,               // (M, KVH·D), likewise
    Tensor<float> Value,             // (M, KVH·D)
    Tensor<float> Attention,         // (M, H·D) attention output before o_proj
    Tensor<float> LogSumExp,         // (M, H)
    Tensor<float> AttentionResidual, // (M, C) x + attention projection: the MLP's residual input
    Tensor<float> Norm2,             // (M, C) output of the MLP norm
    Tensor<float>? Mean2,            // (M) LayerNorm only
    Tensor<float> Rstd2,             // (M)
    Tensor<float>? GateUp,           // (M, 2I) SwiGLU only: one GEMM's gate_proj output (I columns), then up_proj's (I columns)
    Tensor<float>? Up,               // (M, I) GPT-2 only: c_fc output (pre-GELU)
    Tensor<float> Activation);       // (M, I) GELU(up) or silu(gate)·up: down_proj's input

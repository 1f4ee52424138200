using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Models;

/// <summary>
/// A decoder-only transformer (GPT-2, Llama, Qwen2 or Qwen3, configured by a Hugging Face config.json),
/// written by hand in llm.c's style over <see cref="IGrpoOperations"/>, so it runs on every backend.
/// Parameters and gradients each live in one buffer (<see cref="ParameterSet"/>) with a named view per
/// tensor. The forward runs over packed sequences of different lengths (<see cref="TokenBatch"/>) and
/// returns the final hidden states: the fused log-softmax-gather turns those into per-token log-probs
/// without ever holding (tokens × vocabulary) logits.
/// <para>Dimensions: M packed token rows, C channels, H query heads, KVH key/value heads, D head width,
/// I MLP width, V vocabulary, L layers.</para>
/// </summary>
public sealed partial class TransformerModel : IDisposable
{
    private readonly IGrpoOperations _ops;
    private readonly TransformerWeights _weights;
    private ParameterSet? _gradients;
    private TransformerWeights? _gradientViews;

    private TransformerModel(Device device, ModelConfig config)
    {
        Device = device;
        Config = config;
        _ops = device.Operations;
        Parameters = new ParameterSet(device, TransformerLayout.For(config));
        _weights = TransformerWeights.From(Parameters, config);
    }

    /// <summary>The device everything lives on.</summary>
    public Device Device { get; }

    /// <summary>The architecture.</summary>
    public ModelConfig Config { get; }

    /// <summary>Every parameter in one buffer, with Hugging Face names.</summary>
    public ParameterSet Parameters { get; }

    /// <summary>
    /// The gradients, same layout as <see cref="Parameters"/>; allocated (zeroed) on first use. Backward
    /// passes ACCUMULATE into them, so micro-batches add up until <see cref="ZeroGradients"/>.
    /// </summary>
    public ParameterSet Gradients => _gradients ??= CreateGradients();

    /// <summary>(V, C) the LM-head matrix: the token embedding itself when the family ties them.</summary>
    public Tensor<float> LmHead => _weights.LmHead;

    /// <summary>
    /// True (the default): the forward projects q, k and v with one GEMM over their adjacent rows and splits its columns; the
    /// backward joins their gradients and runs one GEMM per product. False: three GEMMs each way, the plain form the tests
    /// compare it with.
    /// </summary>
    internal bool FusesQkv { get; set; } = true;

    /// <summary>(V, C) the LM head's gradient view (the token embedding's gradient when tied).</summary>
    public Tensor<float> LmHeadGradient => GradientViews.LmHead;

    private TransformerWeights GradientViews => _gradientViews ??= TransformerWeights.From(Gradients, Config);

    private bool IsGpt2 => Config.ModelType == "gpt2";

    private float AttentionScale => 1f / MathF.Sqrt(Config.HeadDim);

    /// <summary>A model with fresh random weights: N(0, 0.02) matrices (output projections scaled by 1/√(2L), as GPT-2), zero biases, unit norms.</summary>
    public static TransformerModel CreateRandom(Device device, ModelConfig config, int seed)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(config);
        var model = new TransformerModel(device, config);
        try
        {
            var random = new Random(seed);
            var staging = new float[Math.Min(ParameterSet.PieceElements, model.Parameters.Count)];
            float projectionStd = 0.02f / MathF.Sqrt(2 * config.NumLayers);
            foreach (var p in model.Parameters.Layout)
            {
                if (p.Shape.Length == 1)
                {
                    float value = p.Name.EndsWith(".bias", StringComparison.Ordinal) ? 0f : 1f;
                    model.Parameters.WriteInPieces(p, staging, (piece, _) => piece.Fill(value));
                }
                else
                {
                    bool outputProjection = p.Name.EndsWith("c_proj.weight", StringComparison.Ordinal)
                        || p.Name.EndsWith("o_proj.weight", StringComparison.Ordinal)
                        || p.Name.EndsWith("down_proj.weight", StringComparison.Ordinal);
                    float std = outputProjection ? projectionStd : 0.02f;
                    // Pieces come in element order, so the draws are those of one pass over the tensor.
                    model.Parameters.WriteInPieces(p, staging, (piece, _) =>
                    {
                        for (int i = 0; i < piece.Length; i++) piece[i] = std * Gaussian(random);
                    });
                }
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    internal static TransformerModel CreateUninitialised(Device device, ModelConfig config) => new(device, config);

    private static float Gaussian(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }

    /// <summary>Plans and allocates the activations for passes of up to <paramref name="maxTokens"/> packed rows.</summary>
    public TransformerActivations CreateActivations(int maxTokens, ActivationMode mode = ActivationMode.Training)
    {
        Interlocked.Increment(ref _activationSetsCreated);
        return new(Device, Config, maxTokens, mode);
    }

    /// <summary>How many activation sets <see cref="CreateActivations"/> has made: tests hold a step to the sets it needs.</summary>
    internal int ActivationSetsCreated => Volatile.Read(ref _activationSetsCreated);

    private int _activationSetsCreated;

    /// <summary>Sets every gradient to 0 (before a new accumulation).</summary>
    public void ZeroGradients() => Gradients.Zero();

    private ParameterSet CreateGradients()
    {
        var set = new ParameterSet(Device, Parameters.Layout);
        set.Zero();
        return set;
    }

    /// <summary>
    /// The forward pass over a packed batch: embeddings, L blocks, final norm.
    /// </summary>
    /// <param name="batch">The packed sequences.</param>
    /// <param name="activations">Buffers planned for at least batch.TokenCount rows (see <see cref="CreateActivations"/>).</param>
    /// <returns>(M, C) the final hidden states: a view into <paramref name="activations"/>, valid until its next use.</returns>
    public Tensor<float> Forward(TokenBatch batch, TransformerActivations activations)
    {
        ArgumentNullException.ThrowIfNull(batch);
        CheckActivations(activations, batch.TokenCount);
        float scale = AttentionScale;
        return RunForward(batch.Ids, batch.Positions, batch.TokenCount, activations,
            (_, q, k, v, att, lse) => _ops.AttentionForward(att, lse, q, k!, v!, batch.SeqStarts, scale));
    }

    /// <summary>
    /// The backward pass of the last <see cref="Forward"/> on the same batch and activations: ACCUMULATES
    /// the gradient of every parameter into <see cref="Gradients"/> given d loss / d hidden.
    /// </summary>
    /// <param name="batch">The batch the forward saw.</param>
    /// <param name="activations">The activations the forward filled (not <see cref="ActivationMode.Inference"/>).</param>
    /// <param name="dHidden">(M, C) gradient of the loss with respect to the final hidden states.</param>
    public void Backward(TokenBatch batch, TransformerActivations activations, Tensor<float> dHidden)
    {
        ArgumentNullException.ThrowIfNull(batch);
        CheckActivations(activations, batch.TokenCount);
        if (activations.Mode == ActivationMode.Inference)
            throw new ArgumentException(
                "'activations' were created for inference and keep nothing for the backward; create them with ActivationMode.Training.",
                nameof(activations));
        Guard.Shape(dHidden, nameof(dHidden), batch.TokenCount, Config.HiddenSize);
        BackwardPass(batch, activations, dHidden);
    }

    private void CheckActivations(TransformerActivations activations, int tokens)
    {
        ArgumentNullException.ThrowIfNull(activations);
        if (activations.Device != Device)
            throw new ArgumentException($"'activations' live on {activations.Device} but the model on {Device}.", nameof(activations));
        if (tokens > activations.MaxTokens)
            throw new ArgumentException(
                $"The batch has {tokens} token rows but 'activations' were planned for {activations.MaxTokens}; create them with CreateActivations({tokens}) or split the batch into micro-batches.",
                nameof(activations));
    }

    /// <summary>Frees the parameters and gradients.</summary>
    public void Dispose()
    {
        Parameters.Dispose();
        _gradients?.Dispose();
    }
}

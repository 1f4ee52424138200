using System.Text.Json;
using System.Text.Json.Nodes;

namespace Grpo.Native.Checkpoints;

/// <summary>
/// The architecture of a Hugging Face causal language model (gpt2, llama, qwen2 or qwen3), read from its
/// <c>config.json</c>. Field names in error messages are the JSON names of that model type.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The model types this library builds.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["gpt2", "llama", "qwen2", "qwen3"];

    /// <summary><c>model_type</c>: gpt2, llama, qwen2 or qwen3.</summary>
    public required string ModelType { get; init; }
    /// <summary><c>vocab_size</c>.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Model width C: <c>n_embd</c> (gpt2) or <c>hidden_size</c>.</summary>
    public required int HiddenSize { get; init; }
    /// <summary><c>n_layer</c> (gpt2) or <c>num_hidden_layers</c>.</summary>
    public required int NumLayers { get; init; }
    /// <summary><c>n_head</c> (gpt2) or <c>num_attention_heads</c>.</summary>
    public required int NumHeads { get; init; }
    /// <summary><c>num_key_value_heads</c> (grouped-query attention); equals <see cref="NumHeads"/> for gpt2.</summary>
    public required int NumKeyValueHeads { get; init; }
    /// <summary>MLP width: <c>n_inner</c> (default 4 * n_embd) for gpt2, <c>intermediate_size</c> otherwise.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary><c>n_positions</c> (gpt2) or <c>max_position_embeddings</c>.</summary>
    public required int MaxPositions { get; init; }
    /// <summary><c>layer_norm_epsilon</c> (gpt2) or <c>rms_norm_eps</c>.</summary>
    public required double NormEpsilon { get; init; }
    /// <summary><c>rope_theta</c> (default 10000; unused by gpt2).</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary><c>rope_scaling</c>: Llama 3.x's frequency scaling, or null for plain RoPE (always null for gpt2).</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary><c>tie_word_embeddings</c>: the LM head shares the token embedding (always true for gpt2).</summary>
    public required bool TieWordEmbeddings { get; init; }

    private readonly int? _headDim;

    /// <summary>
    /// Head width D: qwen3's <c>head_dim</c> (transformers' default 128 when absent), which need not be
    /// hidden size / heads (Qwen3-0.6B: 16 heads of 128 over a width of 1024); hidden size / heads for the
    /// other families, and for a qwen3 config built in code without it. q_proj maps C to H·D, o_proj H·D to C.
    /// </summary>
    public int HeadDim
    {
        get => _headDim ?? (NumHeads > 0 ? HiddenSize / NumHeads : 0);
        init => _headDim = value;
    }

    /// <summary>
    /// qwen3's <c>attention_bias</c>: q/k/v_proj and o_proj carry biases (false by default, and in every
    /// released Qwen3). Always false for the other families: qwen2's q/k/v biases are not configurable
    /// (<see cref="HasQkvBias"/>) and llama's attention_bias true is refused.
    /// </summary>
    public bool AttentionBias { get; init; }

    /// <summary>The most parameters a model may have: they live in one buffer of at most 2^31 − 1 floats.</summary>
    public const long MaxParameters = int.MaxValue;

    /// <summary>The parameter count these sizes imply, in double so that hostile sizes cannot overflow it.</summary>
    public double ParameterCountEstimate
    {
        get
        {
            double c = HiddenSize, v = VocabSize, i = IntermediateSize, layers = NumLayers;
            double q = (double)NumHeads * HeadDim, kv = (double)NumKeyValueHeads * HeadDim;
            double perLayer = IsGpt2
                ? 4 * c + 3 * c * c + 3 * c + c * c + c + 2 * c * i + i + c
                : 2 * c + c * q + 2 * c * kv + q * c + 3 * c * i + (HasQkvBias ? q + 2 * kv : 0)
                  + (HasOutputBias ? c : 0) + (HasQkNorm ? 2.0 * HeadDim : 0);
            double embeddings = v * c + (IsGpt2 ? (double)MaxPositions * c : 0) + (TieWordEmbeddings ? 0 : v * c);
            return embeddings + layers * perLayer + (IsGpt2 ? 2 * c : c); // the final norm: LayerNorm weight and bias, or RMSNorm weight
        }
    }

    /// <summary>True when the q, k and v projections have biases (qwen2; gpt2's fused c_attn too; qwen3 with attention_bias).</summary>
    public bool HasQkvBias => ModelType is "qwen2" or "gpt2" || (IsQwen3 && AttentionBias);

    /// <summary>True when llama-style o_proj has a bias (qwen3 with attention_bias; gpt2's c_proj bias is its own tensor).</summary>
    public bool HasOutputBias => IsQwen3 && AttentionBias;

    /// <summary>True when each head's q and k vectors are RMS-normalised before RoPE (qwen3's q_norm and k_norm, each (D)).</summary>
    public bool HasQkNorm => IsQwen3;

    private bool IsQwen3 => ModelType == "qwen3";

    private bool IsGpt2 => ModelType == "gpt2";

    /// <summary>Reads and validates <c>config.json</c>; <paramref name="path"/> is the file or its model folder.</summary>
    /// <exception cref="FileNotFoundException">the file does not exist</exception>
    /// <exception cref="CheckpointFormatException">invalid JSON, an unsupported model_type, a missing or invalid field</exception>
    public static ModelConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        file = Path.GetFullPath(file);
        if (!File.Exists(file))
            throw new FileNotFoundException(
                $"Model config '{file}' does not exist; pass a Hugging Face model folder that contains config.json, or the file itself.", file);
        return Parse(File.ReadAllText(file), file);
    }

    // Which config.json fields are read, which are refused and which are ignored. Decided from
    // transformers' modeling code of each family (modeling_gpt2.py, modeling_llama.py, modeling_qwen2.py,
    // modeling_qwen3.py, modeling_rope_utils.py, activations.py): a field is refused when a value of it would change the
    // forward pass in a way this library does not implement, so that such a model fails loudly here
    // instead of training on different math.
    //
    // Read: model_type, vocab_size; gpt2: n_embd, n_layer, n_head, n_inner, n_positions, layer_norm_epsilon;
    // llama/qwen2: hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
    // intermediate_size, max_position_embeddings, rms_norm_eps, rope_theta, tie_word_embeddings, and
    // rope_scaling (transformers 5 writes it as rope_parameters, with rope_theta inside: read as well);
    // qwen3 also: head_dim (default 128, Qwen3Config's, any even width: H·D need not equal hidden_size) and
    // attention_bias (q/k/v/o_proj biases when true, as Qwen3Attention builds them).
    //
    // Refused (CheckpointFormatException naming the field and its value):
    // - rope_scaling / rope_parameters of a type other than "default" and "llama3" (linear, dynamic,
    //   ntk, yarn, longrope, ...: other frequencies or an attention factor), per-layer-type RoPE
    //   parameters, a rope_theta or original_max_position_embeddings inside them that disagrees with the
    //   top-level one (transformers 4 and 5 would then pick different values).
    // - llama/qwen2 hidden_act other than silu or swish (ACT2FN maps both to SiLU); gpt2
    //   activation_function other than the tanh-approximation GELUs we implement, 0.5x(1 + tanh(√(2/π)
    //   (x + 0.044715x³))): gelu_new (GPT-2's), gelu_pytorch_tanh, gelu_accurate, gelu_fast (whose
    //   constant 0.7978845608 is √(2/π) to 4e-12 relative, far below an fp32 ulp). Exact-erf "gelu",
    //   quick_gelu, relu, ... are refused.
    // - llama attention_bias: true (q/k/v/o_proj biases, which the llama layout does not hold) and
    //   mlp_bias: true (gate/up/down biases).
    // - llama/qwen2 head_dim other than hidden_size / num_attention_heads (implemented for qwen3 only, whose
    //   checkpoints use it; the others are checked against the double reference with the derived width).
    // - partial_rotary_factor other than 1 (RoPE on part of each head), top-level or in the rope dict.
    // - attn_logit_softcapping, final_logit_softcapping non-null (Gemma-2's tanh soft-capping).
    //   transformers' llama and qwen2 code never reads them, but a config that sets them was written for
    //   a model trained with capped logits: refused rather than silently dropped.
    // - qwen2/qwen3 sliding-window attention that can bite: use_sliding_window true with a sliding_window below
    //   max_position_embeddings on some layer (layer_types "sliding_attention", or layers at and past
    //   max_window_layers when layer_types is absent); layer_types entries other than full_attention /
    //   sliding_attention, or not one per layer.
    // - gpt2 scale_attn_weights: false (no 1/√D), scale_attn_by_inverse_layer_idx: true (scores also
    //   divided by layer + 1), add_cross_attention: true (cross-attention blocks and their weights).
    // - quantization_config non-null (packed integer weights and their dequantisation).
    // - tie_word_embeddings: false on gpt2 (checked in Validate); a llama/qwen2 tie mismatch with the
    //   weights is caught when they are loaded (a missing lm_head.weight, or one that is not expected).
    //
    // Ignored, because they leave the forward pass we compute unchanged:
    // - pretraining_tp (llama): older transformers 4.x releases split the q/k/v/o, MLP and lm_head
    //   matmuls into pretraining_tp slices and concatenated or summed the pieces: the same products
    //   summed in another order, the same math; later releases dropped that code path.
    // - reorder_and_upcast_attn (gpt2): attention in fp32 with the scale applied before the matmul: the
    //   same math, and this library computes in fp32 anyway.
    // - sliding_window, max_window_layers when no layer slides; qwen2's attention_bias and mlp_bias
    //   (Qwen2 hard-codes q/k/v biases and no others and never reads them); qwen3's mlp_bias (Qwen3MLP
    //   hard-codes no biases); llama's layer_types (unread);
    //   rope dict keys unused by its type (attention_factor, beta_fast, ... for llama3).
    // - dropout rates (attn_pdrop, resid_pdrop, embd_pdrop, attention_dropout, summary_first_dropout):
    //   this library has no dropout; its forward pass is the eval-mode one.
    // - use_cache, torch_dtype / dtype (weights of any stored dtype become fp32), bos/eos/pad_token_id
    //   (tokenizer and sampling settings), initializer_range (initialisation only), architectures,
    //   transformers_version, _name_or_path, n_ctx (gpt2's legacy copy of n_positions), summary_* and
    //   task_specific_params (GPT2DoubleHeadsModel and pipelines), and any other key.

    /// <summary>
    /// Parses and validates config.json text; <paramref name="source"/> names it in error messages. Fields
    /// that would change the model's math in a way this library does not implement (another activation,
    /// attention or MLP biases on llama, a RoPE scaling other than Llama 3.x's, sliding-window attention,
    /// soft-capping, quantisation, ...) are refused, naming the field and its value.
    /// </summary>
    /// <exception cref="CheckpointFormatException">invalid JSON, an unsupported model_type, a missing, invalid or unsupported field</exception>
    public static ModelConfig Parse(string json, string source = "config.json")
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException($"'{source}': the config is JSON {root.ValueKind}, not an object.");
            var reader = new FieldReader(root, source);
            string modelType = reader.String("model_type");
            if (!SupportedModelTypes.Contains(modelType))
                throw new CheckpointFormatException(
                    $"'{source}': model_type '{modelType}' is not supported; supported model types are {string.Join(", ", SupportedModelTypes)}.");
            ModelConfig config;
            if (modelType == "gpt2")
            {
                int embd = reader.Int("n_embd");
                int heads = reader.Int("n_head");
                config = new ModelConfig
                {
                    ModelType = modelType,
                    VocabSize = reader.Int("vocab_size"),
                    HiddenSize = embd,
                    NumLayers = reader.Int("n_layer"),
                    NumHeads = heads,
                    NumKeyValueHeads = heads,
                    IntermediateSize = reader.OptionalInt("n_inner") ?? checked(4 * embd),
                    MaxPositions = reader.Int("n_positions"),
                    NormEpsilon = reader.OptionalDouble("layer_norm_epsilon") ?? 1e-5,
                    TieWordEmbeddings = true,
                };
            }
            else
            {
                int heads = reader.Int("num_attention_heads");
                var (theta, scaling) = ReadRope(reader, source);
                bool qwen3 = modelType == "qwen3";
                config = new ModelConfig
                {
                    // Qwen3Config's default attention_bias: false.
                    AttentionBias = qwen3 && (reader.OptionalBool("attention_bias") ?? false),
                    ModelType = modelType,
                    VocabSize = reader.Int("vocab_size"),
                    HiddenSize = reader.Int("hidden_size"),
                    NumLayers = reader.Int("num_hidden_layers"),
                    NumHeads = heads,
                    NumKeyValueHeads = reader.OptionalInt("num_key_value_heads") ?? heads,
                    IntermediateSize = reader.Int("intermediate_size"),
                    MaxPositions = reader.Int("max_position_embeddings"),
                    NormEpsilon = reader.OptionalDouble("rms_norm_eps") ?? 1e-6,
                    RopeTheta = theta,
                    RopeScaling = scaling,
                    TieWordEmbeddings = reader.OptionalBool("tie_word_embeddings") ?? false,
                };
                // Qwen3Config's default head_dim is 128, not derived; the other families derive D from C / H.
                if (qwen3) config = config with { HeadDim = reader.OptionalInt("head_dim") ?? 128 };
            }
            config.Validate(source);
            RefuseUnimplemented(reader, config, source);
            return config;
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"'{source}': the config is not valid JSON: {e.Message}", e);
        }
        catch (OverflowException e)
        {
            throw new CheckpointFormatException($"'{source}': n_embd is too large for the default n_inner = 4 * n_embd.", e);
        }
    }

    /// <summary>The activation_function names whose formula is GPT-2's tanh-approximation GELU.</summary>
    private static readonly string[] TanhGelus = ["gelu_new", "gelu_pytorch_tanh", "gelu_accurate", "gelu_fast"];

    /// <summary>The hidden_act names ACT2FN maps to SiLU.</summary>
    private static readonly string[] Silus = ["silu", "swish"];

    /// <summary>
    /// rope_theta and rope_scaling as transformers reads them: version 4 from rope_theta and rope_scaling,
    /// version 5 from rope_parameters (rope_theta inside it), or from rope_scaling when that is set.
    /// </summary>
    private static (double Theta, RopeScaling? Scaling) ReadRope(FieldReader reader, string source)
    {
        double? topTheta = reader.OptionalDouble("rope_theta");
        string field = "rope_scaling";
        var dictionary = reader.OptionalObject(field);
        if (dictionary is null || !dictionary.Value.EnumerateObject().Any()) // Python's `rope_scaling or rope_parameters`
        {
            field = "rope_parameters";
            dictionary = reader.OptionalObject(field);
        }
        if (dictionary is null) return (topTheta ?? 10000, null);
        var rope = reader.Nested(dictionary.Value, field);
        foreach (string layerType in new[] { "full_attention", "sliding_attention" })
            if (rope.Has(layerType))
                throw new CheckpointFormatException(
                    $"'{source}': {field} holds RoPE parameters per layer type ({layerType}); only one set for all layers is implemented.");
        double? innerTheta = rope.OptionalDouble("rope_theta");
        if (innerTheta is not null && topTheta is not null && innerTheta != topTheta)
            throw new CheckpointFormatException(
                $"'{source}': {field}.rope_theta is {innerTheta} but rope_theta is {topTheta}; transformers 4 and 5 would use different bases, so state one.");
        double theta = innerTheta ?? topTheta ?? 10000;
        if (rope.OptionalDouble("partial_rotary_factor") is double partial && partial != 1)
            throw new CheckpointFormatException(
                $"'{source}': {field}.partial_rotary_factor is {partial}; RoPE on part of each head is not implemented (only 1).");
        string typeField = rope.Has("rope_type") ? "rope_type" : "type";
        string type = rope.OptionalString(typeField) ?? "default";
        if (type == "default") return (theta, null);
        if (type != RopeScaling.Llama3)
            throw new CheckpointFormatException(
                $"'{source}': {field}.{typeField} is '{type}'; only Llama 3.x's '{RopeScaling.Llama3}' RoPE scaling is implemented " +
                "(linear, dynamic, ntk, yarn and longrope change the frequencies or scale the attention differently).");
        var scaling = new RopeScaling
        {
            Type = type,
            Factor = rope.Double("factor"),
            LowFrequencyFactor = rope.Double("low_freq_factor"),
            HighFrequencyFactor = rope.Double("high_freq_factor"),
            OriginalMaxPositions = rope.Int("original_max_position_embeddings"),
        };
        if (reader.OptionalInt("original_max_position_embeddings") is int top && top != scaling.OriginalMaxPositions)
            throw new CheckpointFormatException(
                $"'{source}': original_max_position_embeddings is {top} but {field}.original_max_position_embeddings is " +
                $"{scaling.OriginalMaxPositions}; transformers 5 would use the first, 4 the second, so make them agree.");
        if (scaling.FindProblem() is var (bad, reason))
            throw new CheckpointFormatException($"'{source}': {field}.{bad} {reason}.");
        return (theta, scaling);
    }

    /// <summary>Throws for the fields the comment above lists as refused.</summary>
    private static void RefuseUnimplemented(FieldReader reader, ModelConfig config, string source)
    {
        if (reader.Has("quantization_config"))
            throw new CheckpointFormatException(
                $"'{source}': quantization_config is {reader.Raw("quantization_config")}; quantized weights are not implemented, load an unquantized checkpoint.");
        if (config.IsGpt2)
        {
            string activation = reader.OptionalString("activation_function") ?? "gelu_new";
            if (!TanhGelus.Contains(activation))
                throw new CheckpointFormatException(
                    $"'{source}': activation_function is '{activation}'; GPT-2 here implements the tanh-approximation GELU only " +
                    $"({string.Join(", ", TanhGelus)}).");
            if (reader.OptionalBool("scale_attn_weights") == false)
                throw new CheckpointFormatException(
                    $"'{source}': scale_attn_weights is false; attention scores are always scaled by 1/sqrt(head dim) here.");
            if (reader.OptionalBool("scale_attn_by_inverse_layer_idx") == true)
                throw new CheckpointFormatException(
                    $"'{source}': scale_attn_by_inverse_layer_idx is true; scaling the scores by 1/(layer + 1) is not implemented.");
            if (reader.OptionalBool("add_cross_attention") == true)
                throw new CheckpointFormatException(
                    $"'{source}': add_cross_attention is true; cross-attention blocks are not implemented.");
            return;
        }
        string hiddenAct = reader.OptionalString("hidden_act") ?? "silu";
        if (!Silus.Contains(hiddenAct))
            throw new CheckpointFormatException(
                $"'{source}': hidden_act is '{hiddenAct}'; {config.ModelType} here implements SwiGLU with silu only (silu or swish).");
        if (!config.IsQwen3 && reader.OptionalInt("head_dim") is int headDim && headDim != config.HeadDim)
            throw new CheckpointFormatException(
                $"'{source}': head_dim is {headDim} but hidden_size / num_attention_heads is {config.HeadDim}; " +
                $"a head width other than hidden_size / num_attention_heads is implemented for qwen3 only, not {config.ModelType}.");
        if (reader.OptionalDouble("partial_rotary_factor") is double partial && partial != 1)
            throw new CheckpointFormatException(
                $"'{source}': partial_rotary_factor is {partial}; RoPE on part of each head is not implemented (only 1).");
        foreach (string softcap in new[] { "attn_logit_softcapping", "final_logit_softcapping" })
            if (reader.Has(softcap))
                throw new CheckpointFormatException(
                    $"'{source}': {softcap} is {reader.Raw(softcap)}; logit soft-capping (Gemma-2's) is not implemented, it must be null or absent.");
        if (config.ModelType == "llama")
        {
            if (reader.OptionalBool("attention_bias") == true)
                throw new CheckpointFormatException(
                    $"'{source}': attention_bias is true; llama's q/k/v/o_proj biases are not implemented (only attention_bias false).");
            if (reader.OptionalBool("mlp_bias") == true)
                throw new CheckpointFormatException(
                    $"'{source}': mlp_bias is true; llama's gate/up/down_proj biases are not implemented (only mlp_bias false).");
        }
        else
        {
            RefuseSlidingWindow(reader, config, source);
        }
    }

    /// <summary>
    /// Qwen2's sliding-window attention, as Qwen2Config decides it: the window is sliding_window (default
    /// 4096) when use_sliding_window is true, none otherwise; it applies to the layers layer_types marks
    /// "sliding_attention", or, without layer_types, to the layers at and past max_window_layers (default 28).
    /// Refused when it applies to some layer and is shorter than max_position_embeddings, so that it can
    /// hide keys from a query.
    /// </summary>
    private static void RefuseSlidingWindow(FieldReader reader, ModelConfig config, string source)
    {
        bool anySliding;
        if (reader.OptionalArray("layer_types") is { } layerTypes)
        {
            if (layerTypes.GetArrayLength() != config.NumLayers)
                throw new CheckpointFormatException(
                    $"'{source}': layer_types has {layerTypes.GetArrayLength()} entries but num_hidden_layers is {config.NumLayers}.");
            anySliding = false;
            foreach (var entry in layerTypes.EnumerateArray())
            {
                string? kind = entry.ValueKind == JsonValueKind.String ? entry.GetString() : null;
                if (kind is not ("full_attention" or "sliding_attention"))
                    throw new CheckpointFormatException(
                        $"'{source}': layer_types holds {entry.GetRawText()}; only full_attention (and sliding_attention with no effective window) is implemented.");
                anySliding |= kind == "sliding_attention";
            }
        }
        else
        {
            anySliding = (reader.OptionalInt("max_window_layers") ?? 28) < config.NumLayers;
        }
        if (reader.OptionalBool("use_sliding_window") != true || !anySliding) return;
        int? window = reader.Present("sliding_window") ? reader.OptionalInt("sliding_window") : 4096;
        if (window is int w && w < config.MaxPositions)
            throw new CheckpointFormatException(
                $"'{source}': use_sliding_window is true with sliding_window {w}, below max_position_embeddings {config.MaxPositions}; " +
                "sliding-window attention is not implemented (it is a no-op only when the window covers the whole context).");
    }

    /// <summary>
    /// Checks positive sizes, finite positive epsilon and rope_theta, hidden size divisible by heads,
    /// heads divisible by key-value heads and a valid rope_scaling (none for gpt2); the message names the JSON field.
    /// </summary>
    /// <exception cref="CheckpointFormatException">a field is invalid</exception>
    public void Validate() => Validate("config");

    private void Validate(string source)
    {
        if (!SupportedModelTypes.Contains(ModelType))
            throw new CheckpointFormatException(
                $"'{source}': model_type '{ModelType}' is not supported; supported model types are {string.Join(", ", SupportedModelTypes)}.");
        Positive(source, "vocab_size", VocabSize);
        Positive(source, IsGpt2 ? "n_embd" : "hidden_size", HiddenSize);
        Positive(source, IsGpt2 ? "n_layer" : "num_hidden_layers", NumLayers);
        Positive(source, IsGpt2 ? "n_head" : "num_attention_heads", NumHeads);
        Positive(source, IsGpt2 ? "n_head" : "num_key_value_heads", NumKeyValueHeads);
        Positive(source, IsGpt2 ? "n_inner" : "intermediate_size", IntermediateSize);
        Positive(source, IsGpt2 ? "n_positions" : "max_position_embeddings", MaxPositions);
        string eps = IsGpt2 ? "layer_norm_epsilon" : "rms_norm_eps";
        if (!double.IsFinite(NormEpsilon) || NormEpsilon <= 0)
            throw new CheckpointFormatException($"'{source}': {eps} is {NormEpsilon}; it must be a finite positive number such as 1e-5.");
        if (!double.IsFinite(RopeTheta) || RopeTheta <= 0)
            throw new CheckpointFormatException($"'{source}': rope_theta is {RopeTheta}; it must be a finite positive number such as 10000.");
        if (IsQwen3)
        {
            if (HeadDim <= 0 || HeadDim % 2 != 0)
                throw new CheckpointFormatException(
                    $"'{source}': head_dim is {HeadDim}; it must be positive and even (RoPE rotates pairs of a head's channels), 128 for Qwen3.");
        }
        else if (HiddenSize % NumHeads != 0)
            throw new CheckpointFormatException(
                $"'{source}': {(IsGpt2 ? "n_embd" : "hidden_size")} {HiddenSize} is not divisible by {(IsGpt2 ? "n_head" : "num_attention_heads")} {NumHeads}.");
        if (IsGpt2 && NumKeyValueHeads != NumHeads)
            throw new CheckpointFormatException($"'{source}': gpt2 has no grouped-query attention; key-value heads {NumKeyValueHeads} must equal n_head {NumHeads}.");
        if (NumHeads % NumKeyValueHeads != 0)
            throw new CheckpointFormatException(
                $"'{source}': num_attention_heads {NumHeads} is not divisible by num_key_value_heads {NumKeyValueHeads}.");
        if (IsGpt2 && !TieWordEmbeddings)
            throw new CheckpointFormatException($"'{source}': tie_word_embeddings is false but gpt2 always ties the LM head to wte.");
        if (!IsGpt2 && HeadDim % 2 != 0)
            throw new CheckpointFormatException(
                $"'{source}': hidden_size / num_attention_heads is {HeadDim}, an odd head width; RoPE rotates pairs of channels, so it must be even.");
        if (!IsQwen3 && (_headDim is int explicitWidth && explicitWidth != HiddenSize / NumHeads || AttentionBias))
            throw new CheckpointFormatException(
                $"'{source}': head_dim and attention_bias are qwen3 fields; a {ModelType} model's head width is {(IsGpt2 ? "n_embd / n_head" : "hidden_size / num_attention_heads")} and its biases are fixed.");
        if (IsGpt2 && RopeScaling is not null)
            throw new CheckpointFormatException($"'{source}': gpt2 has no rotary embeddings, so rope_scaling must be null.");
        if (RopeScaling?.FindProblem() is var (field, reason))
            throw new CheckpointFormatException($"'{source}': rope_scaling.{field} {reason}.");
        // Sizes are checked before anything is built from them: a hostile config must not drive an allocation.
        double parameters = ParameterCountEstimate;
        if (parameters > MaxParameters)
            throw new CheckpointFormatException(
                $"'{source}': these sizes make a model of {parameters:G3} parameters, more than the {MaxParameters:N0} one parameter buffer holds; " +
                "check vocab_size, hidden size, layer count and intermediate size.");
    }

    private static void Positive(string source, string field, int value)
    {
        if (value <= 0) throw new CheckpointFormatException($"'{source}': {field} is {value}; it must be positive.");
    }

    /// <summary>An HF-compatible config.json for this model (so a saved folder loads in transformers).</summary>
    public string ToJson()
    {
        Validate();
        var o = new JsonObject();
        if (IsGpt2)
        {
            o["architectures"] = new JsonArray("GPT2LMHeadModel");
            o["model_type"] = "gpt2";
            o["activation_function"] = "gelu_new";
            o["vocab_size"] = VocabSize;
            o["n_embd"] = HiddenSize;
            o["n_layer"] = NumLayers;
            o["n_head"] = NumHeads;
            o["n_inner"] = IntermediateSize;
            o["n_positions"] = MaxPositions;
            o["n_ctx"] = MaxPositions;
            o["layer_norm_epsilon"] = NormEpsilon;
            o["tie_word_embeddings"] = true;
        }
        else
        {
            o["architectures"] = new JsonArray(ModelType switch
            {
                "llama" => "LlamaForCausalLM",
                "qwen2" => "Qwen2ForCausalLM",
                _ => "Qwen3ForCausalLM",
            });
            o["model_type"] = ModelType;
            o["hidden_act"] = "silu";
            o["vocab_size"] = VocabSize;
            o["hidden_size"] = HiddenSize;
            o["num_hidden_layers"] = NumLayers;
            o["num_attention_heads"] = NumHeads;
            o["num_key_value_heads"] = NumKeyValueHeads;
            if (IsQwen3) o["head_dim"] = HeadDim;
            o["intermediate_size"] = IntermediateSize;
            o["max_position_embeddings"] = MaxPositions;
            o["rms_norm_eps"] = NormEpsilon;
            o["rope_theta"] = RopeTheta;
            if (RopeScaling is { } scaling)
                o["rope_scaling"] = new JsonObject // keys sorted, as transformers writes them
                {
                    ["factor"] = scaling.Factor,
                    ["high_freq_factor"] = scaling.HighFrequencyFactor,
                    ["low_freq_factor"] = scaling.LowFrequencyFactor,
                    ["original_max_position_embeddings"] = scaling.OriginalMaxPositions,
                    ["rope_type"] = scaling.Type,
                };
            o["tie_word_embeddings"] = TieWordEmbeddings;
            if (ModelType == "llama")
            {
                o["attention_bias"] = false;
                o["mlp_bias"] = false;
            }
            else
            {
                if (IsQwen3) o["attention_bias"] = AttentionBias;
                o["use_sliding_window"] = false;
            }
        }
        o["torch_dtype"] = "float32";
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// Typed field access with messages that name the JSON field (prefixed with its parent object's name,
    /// e.g. rope_scaling.factor); JSON null counts as absent.
    /// </summary>
    private readonly struct FieldReader(JsonElement root, string source, string prefix = "")
    {
        private JsonElement? Find(string field) =>
            root.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        /// <summary>A reader of the object <paramref name="element"/>, field <paramref name="name"/> of this one.</summary>
        public FieldReader Nested(JsonElement element, string name) => new(element, source, prefix + name + ".");

        /// <summary>The field is present and not null.</summary>
        public bool Has(string field) => Find(field) is not null;

        /// <summary>The field is present, null or not.</summary>
        public bool Present(string field) => root.TryGetProperty(field, out _);

        /// <summary>The field's JSON text, shortened for a message.</summary>
        public string Raw(string field)
        {
            string text = Find(field)?.GetRawText() ?? "null";
            return text.Length <= 80 ? text : text[..77] + "...";
        }

        public string String(string field) => Find(field) is { ValueKind: JsonValueKind.String } v
            ? v.GetString()!
            : throw new CheckpointFormatException($"'{source}': {prefix}{field} is missing or not a string.");

        public string? OptionalString(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.String) return v.GetString()!;
            throw new CheckpointFormatException($"'{source}': {prefix}{field} is {v.GetRawText()}; it must be a string.");
        }

        public int Int(string field) => OptionalInt(field)
            ?? throw new CheckpointFormatException($"'{source}': {prefix}{field} is missing; it is a required integer.");

        public int? OptionalInt(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
            throw new CheckpointFormatException($"'{source}': {prefix}{field} is {v.GetRawText()}; it must be a 32-bit integer.");
        }

        public double Double(string field) => OptionalDouble(field)
            ?? throw new CheckpointFormatException($"'{source}': {prefix}{field} is missing; it is a required number.");

        public double? OptionalDouble(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d)) return d;
            throw new CheckpointFormatException($"'{source}': {prefix}{field} is {v.GetRawText()}; it must be a number.");
        }

        public bool? OptionalBool(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind is JsonValueKind.True or JsonValueKind.False) return v.GetBoolean();
            throw new CheckpointFormatException($"'{source}': {prefix}{field} is {v.GetRawText()}; it must be true or false.");
        }

        public JsonElement? OptionalObject(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.Object) return v;
            throw new CheckpointFormatException($"'{source}': {prefix}{field} is {v.GetRawText()}; it must be an object or null.");
        }

        public JsonElement? OptionalArray(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.Array) return v;
            throw new CheckpointFormatException($"'{source}': {prefix}{field} is {v.GetRawText()}; it must be an array or null.");
        }
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;

namespace Grpo.Native.Checkpoints;

/// <summary>
/// The architecture of a Hugging Face causal language model (gpt2, llama or qwen2), read from its
/// <c>config.json</c>. Field names in error messages are the JSON names of that model type.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The model types this library builds.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["gpt2", "llama", "qwen2"];

    /// <summary><c>model_type</c>: gpt2, llama or qwen2.</summary>
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
    /// <summary><c>tie_word_embeddings</c>: the LM head shares the token embedding (always true for gpt2).</summary>
    public required bool TieWordEmbeddings { get; init; }

    /// <summary>The most parameters a model may have: they live in one buffer of at most 2^31 − 1 floats.</summary>
    public const long MaxParameters = int.MaxValue;

    /// <summary>The parameter count these sizes imply, in double so that hostile sizes cannot overflow it.</summary>
    public double ParameterCountEstimate
    {
        get
        {
            double c = HiddenSize, v = VocabSize, i = IntermediateSize, layers = NumLayers;
            double kv = NumHeads == 0 ? 0 : (double)NumKeyValueHeads * (HiddenSize / Math.Max(1, NumHeads));
            double perLayer = IsGpt2
                ? 4 * c + 3 * c * c + 3 * c + c * c + c + 2 * c * i + i + c
                : 2 * c + c * c + 2 * c * kv + c * c + 3 * c * i + (HasQkvBias ? c + 2 * kv : 0);
            double embeddings = v * c + (IsGpt2 ? (double)MaxPositions * c : 0) + (TieWordEmbeddings ? 0 : v * c);
            return embeddings + layers * perLayer + 2 * c;
        }
    }

    /// <summary>Head width: hidden size / heads.</summary>
    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>True when the q, k and v projections have biases (qwen2; gpt2's fused c_attn too).</summary>
    public bool HasQkvBias => ModelType is "qwen2" or "gpt2";

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

    /// <summary>Parses and validates config.json text; <paramref name="source"/> names it in error messages.</summary>
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
                config = new ModelConfig
                {
                    ModelType = modelType,
                    VocabSize = reader.Int("vocab_size"),
                    HiddenSize = reader.Int("hidden_size"),
                    NumLayers = reader.Int("num_hidden_layers"),
                    NumHeads = heads,
                    NumKeyValueHeads = reader.OptionalInt("num_key_value_heads") ?? heads,
                    IntermediateSize = reader.Int("intermediate_size"),
                    MaxPositions = reader.Int("max_position_embeddings"),
                    NormEpsilon = reader.OptionalDouble("rms_norm_eps") ?? 1e-6,
                    RopeTheta = reader.OptionalDouble("rope_theta") ?? 10000,
                    TieWordEmbeddings = reader.OptionalBool("tie_word_embeddings") ?? false,
                };
            }
            config.Validate(source);
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

    /// <summary>
    /// Checks positive sizes, finite positive epsilon and rope_theta, hidden size divisible by heads and
    /// heads divisible by key-value heads; the message names the JSON field.
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
        if (HiddenSize % NumHeads != 0)
            throw new CheckpointFormatException(
                $"'{source}': {(IsGpt2 ? "n_embd" : "hidden_size")} {HiddenSize} is not divisible by {(IsGpt2 ? "n_head" : "num_attention_heads")} {NumHeads}.");
        if (IsGpt2 && NumKeyValueHeads != NumHeads)
            throw new CheckpointFormatException($"'{source}': gpt2 has no grouped-query attention; key-value heads {NumKeyValueHeads} must equal n_head {NumHeads}.");
        if (NumHeads % NumKeyValueHeads != 0)
            throw new CheckpointFormatException(
                $"'{source}': num_attention_heads {NumHeads} is not divisible by num_key_value_heads {NumKeyValueHeads}.");
        if (IsGpt2 && !TieWordEmbeddings)
            throw new CheckpointFormatException($"'{source}': tie_word_embeddings is false but gpt2 always ties the LM head to wte.");
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
            o["architectures"] = new JsonArray(ModelType == "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM");
            o["model_type"] = ModelType;
            o["hidden_act"] = "silu";
            o["vocab_size"] = VocabSize;
            o["hidden_size"] = HiddenSize;
            o["num_hidden_layers"] = NumLayers;
            o["num_attention_heads"] = NumHeads;
            o["num_key_value_heads"] = NumKeyValueHeads;
            o["intermediate_size"] = IntermediateSize;
            o["max_position_embeddings"] = MaxPositions;
            o["rms_norm_eps"] = NormEpsilon;
            o["rope_theta"] = RopeTheta;
            o["tie_word_embeddings"] = TieWordEmbeddings;
            if (ModelType == "llama") o["attention_bias"] = false;
        }
        o["torch_dtype"] = "float32";
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Typed field access with messages that name the JSON field; JSON null counts as absent.</summary>
    private readonly struct FieldReader(JsonElement root, string source)
    {
        private JsonElement? Find(string field) =>
            root.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        public string String(string field) => Find(field) is { ValueKind: JsonValueKind.String } v
            ? v.GetString()!
            : throw new CheckpointFormatException($"'{source}': {field} is missing or not a string.");

        public int Int(string field) => OptionalInt(field)
            ?? throw new CheckpointFormatException($"'{source}': {field} is missing; it is a required integer.");

        public int? OptionalInt(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
            throw new CheckpointFormatException($"'{source}': {field} is {v.GetRawText()}; it must be a 32-bit integer.");
        }

        public double? OptionalDouble(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d)) return d;
            throw new CheckpointFormatException($"'{source}': {field} is {v.GetRawText()}; it must be a number.");
        }

        public bool? OptionalBool(string field)
        {
            if (Find(field) is not { } v) return null;
            if (v.ValueKind is JsonValueKind.True or JsonValueKind.False) return v.GetBoolean();
            throw new CheckpointFormatException($"'{source}': {field} is {v.GetRawText()}; it must be true or false.");
        }
    }
}

using Grpo.Native.Checkpoints;
using Grpo.Native.References;

namespace Grpo.Native.Tests.Models;

/// <summary>Tiny configurations of each family and model folders written from reference parameters.</summary>
public static class TinyModels
{
    /// <summary>
    /// The families the model tests run: GPT-2, Llama with GQA (tied and untied), Qwen2 with q/k/v biases and GQA,
    /// Qwen3 with per-head q/k norms and a head width other than C / H (tied; and untied with attention_bias).
    /// </summary>
    public static readonly string[] Names = ["gpt2", "llama", "llama-untied", "qwen2", "qwen3", "qwen3-bias"];

    /// <summary><see cref="Names"/> and "llama3": Llama with Llama 3.x's RoPE scaling (rope_scaling of type llama3).</summary>
    public static readonly string[] NamesWithRopeScaling = [.. Names, "llama3"];

    public static ModelConfig Config(string name, int vocab = 23, int layers = 2) => name switch
    {
        "gpt2" => new ModelConfig
        {
            ModelType = "gpt2", VocabSize = vocab, HiddenSize = 16, NumLayers = layers, NumHeads = 4, NumKeyValueHeads = 4,
            IntermediateSize = 24, MaxPositions = 32, NormEpsilon = 1e-5, TieWordEmbeddings = true,
        },
        "llama" or "llama-untied" => new ModelConfig
        {
            ModelType = "llama", VocabSize = vocab, HiddenSize = 16, NumLayers = layers, NumHeads = 4, NumKeyValueHeads = 2,
            IntermediateSize = 24, MaxPositions = 32, NormEpsilon = 1e-6, RopeTheta = 10000,
            TieWordEmbeddings = name == "llama",
        },
        // Llama 3.x RoPE scaling at toy sizes: D = 8 and θ = 100 give inv_freq 1, 0.32, 0.1, 0.032, wavelengths
        // 6.3, 20, 63 and 199; with original_max_position_embeddings 8, high_freq_factor 1 and low_freq_factor 0.1
        // the thresholds are 8 and 80, so the first frequency is kept, the middle two are smoothed and the
        // last is divided by 4: all three regimes within 32 positions.
        "llama3" => new ModelConfig
        {
            ModelType = "llama", VocabSize = vocab, HiddenSize = 24, NumLayers = layers, NumHeads = 3, NumKeyValueHeads = 1,
            IntermediateSize = 32, MaxPositions = 32, NormEpsilon = 1e-5, RopeTheta = 100, TieWordEmbeddings = false,
            RopeScaling = new RopeScaling { Factor = 4, LowFrequencyFactor = 0.1, HighFrequencyFactor = 1, OriginalMaxPositions = 8 },
        },
        "qwen2" => new ModelConfig
        {
            ModelType = "qwen2", VocabSize = vocab, HiddenSize = 24, NumLayers = layers, NumHeads = 6, NumKeyValueHeads = 2,
            IntermediateSize = 40, MaxPositions = 32, NormEpsilon = 1e-6, RopeTheta = 1000000, TieWordEmbeddings = false,
        },
        // Qwen3's shape at toy size: H·D = 24 query channels over a width of 16 (as Qwen3-0.6B's 16 × 128 over 1024),
        // so q_proj widens and o_proj narrows; tied like Qwen3-0.6B.
        "qwen3" => new ModelConfig
        {
            ModelType = "qwen3", VocabSize = vocab, HiddenSize = 16, NumLayers = layers, NumHeads = 4, NumKeyValueHeads = 2, HeadDim = 6,
            IntermediateSize = 24, MaxPositions = 32, NormEpsilon = 1e-6, RopeTheta = 1000000, TieWordEmbeddings = true,
        },
        // attention_bias true: q/k/v_proj and o_proj biases; H·D = 16 below a width of 20; untied.
        "qwen3-bias" => new ModelConfig
        {
            ModelType = "qwen3", VocabSize = vocab, HiddenSize = 20, NumLayers = layers, NumHeads = 2, NumKeyValueHeads = 1, HeadDim = 8,
            IntermediateSize = 24, MaxPositions = 32, NormEpsilon = 1e-6, RopeTheta = 1000000, TieWordEmbeddings = false,
            AttentionBias = true,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such tiny model"),
    };

    /// <summary>
    /// Random parameters in the Hugging Face on-disk layout, rounded to fp32 (so the double reference
    /// and the fp32 model see exactly the same values).
    /// </summary>
    public static Dictionary<string, double[]> Parameters(ModelConfig config, Random random, double scale = 0.5)
    {
        var parameters = TransformerReference.RandomParameters(config, random, scale);
        foreach (var key in parameters.Keys.ToList())
            parameters[key] = Array.ConvertAll(parameters[key], v => (double)(float)v);
        return parameters;
    }

    /// <summary>Writes config.json and model.safetensors for <paramref name="parameters"/> into a new temporary folder.</summary>
    public static string WriteFolder(ModelConfig config, IReadOnlyDictionary<string, double[]> parameters)
    {
        string folder = Path.Combine(Path.GetTempPath(), "grpo-tiny-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJson());
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"),
            TransformerReference.Layout(config).Select(t =>
                (t.Name, t.Shape, (ReadOnlyMemory<float>)Array.ConvertAll(parameters[t.Name], v => (float)v))));
        return folder;
    }

    /// <summary>Sequences of the given lengths with random ids.</summary>
    public static int[][] Sequences(Random random, int vocab, params int[] lengths) =>
        lengths.Select(n => Enumerable.Range(0, n).Select(_ => random.Next(vocab)).ToArray()).ToArray();

    /// <summary>
    /// Sequences of the given lengths whose ids are all different (a random draw without replacement):
    /// every row's target then follows from its own token alone, so the batch can be fitted exactly and
    /// an overfitting test does not hinge on the draw (random ids can repeat a context with two different
    /// next tokens, which no model can fit).
    /// </summary>
    public static int[][] DistinctSequences(Random random, int vocab, params int[] lengths)
    {
        if (lengths.Sum() > vocab)
            throw new ArgumentException($"{lengths.Sum()} distinct ids do not fit a vocabulary of {vocab}.", nameof(lengths));
        int[] ids = Enumerable.Range(0, vocab).OrderBy(_ => random.Next()).ToArray();
        int offset = 0;
        return lengths.Select(n => ids[offset..(offset += n)]).ToArray();
    }
}

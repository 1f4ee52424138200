using Grpo.Native.Checkpoints;

namespace Grpo.Native.Models;

/// <summary>
/// The tensors of each model family, under their Hugging Face names, in buffer order (embeddings,
/// then layer by layer, then the final norm and an untied LM head). Every linear weight is kept in
/// nn.Linear's (out, in) layout; GPT-2's Conv1D weights, stored (in, out) on disk, are marked
/// <see cref="ParameterInfo.TransposedOnDisk"/> and transposed when loaded and saved. GPT-2's fused
/// c_attn weight, transposed, is (3C, C): its q, k and v blocks are contiguous rows, so each is a view; the other
/// families keep q_proj, k_proj and v_proj adjacent (and their biases) so that they too are one matrix.
/// </summary>
public static class TransformerLayout
{
    /// <summary>
    /// The buffer order this version writes, which trainer checkpoints record with their optimizer moments (flat, in this
    /// order). 1: each q/k/v bias right after its weight (until December 2026); 2: the q, k and v weights adjacent, then
    /// their biases, so the three projections are one matrix (<see cref="BlockWeights"/>' QkvWeight). The two differ only
    /// for layouts with q/k/v biases (Qwen2, Qwen3 with attention_bias).
    /// </summary>
    public const int Version = 2;

    /// <summary>The layout of <paramref name="config"/>'s model.</summary>
    public static IReadOnlyList<ParameterInfo> For(ModelConfig config) => For(config, Version);

    /// <summary>The layout of <paramref name="config"/>'s model in buffer order <paramref name="version"/> (1 or <see cref="Version"/>).</summary>
    public static IReadOnlyList<ParameterInfo> For(ModelConfig config, int version)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (version is < 1 or > Version)
            throw new ArgumentOutOfRangeException(nameof(version), version, $"Parameter layout versions are 1 to {Version}.");
        bool biasAfterEachWeight = version == 1;
        var list = new List<ParameterInfo>();
        long offset = 0;
        void Add(string name, bool transposedOnDisk, params int[] shape)
        {
            var info = new ParameterInfo(name, shape, offset, transposedOnDisk);
            list.Add(info);
            offset += info.Length;
        }

        int c = config.HiddenSize, v = config.VocabSize, i = config.IntermediateSize;
        int qDim = config.NumHeads * config.HeadDim, kvDim = config.NumKeyValueHeads * config.HeadDim;
        if (config.ModelType == "gpt2")
        {
            Add("wte.weight", false, v, c);
            Add("wpe.weight", false, config.MaxPositions, c);
            for (int l = 0; l < config.NumLayers; l++)
            {
                string p = $"h.{l}.";
                Add(p + "ln_1.weight", false, c);
                Add(p + "ln_1.bias", false, c);
                Add(p + "attn.c_attn.weight", true, 3 * c, c);
                Add(p + "attn.c_attn.bias", false, 3 * c);
                Add(p + "attn.c_proj.weight", true, c, c);
                Add(p + "attn.c_proj.bias", false, c);
                Add(p + "ln_2.weight", false, c);
                Add(p + "ln_2.bias", false, c);
                Add(p + "mlp.c_fc.weight", true, i, c);
                Add(p + "mlp.c_fc.bias", false, i);
                Add(p + "mlp.c_proj.weight", true, c, i);
                Add(p + "mlp.c_proj.bias", false, c);
            }
            Add("ln_f.weight", false, c);
            Add("ln_f.bias", false, c);
            return list;
        }

        Add("model.embed_tokens.weight", false, v, c);
        for (int l = 0; l < config.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", false, c);
            // Version 2: the three weights adjacent, one (qDim + 2·kvDim, C) matrix; then the biases, one vector.
            foreach (var (projection, rows) in new[] { ("q_proj", qDim), ("k_proj", kvDim), ("v_proj", kvDim) })
            {
                Add(p + $"self_attn.{projection}.weight", false, rows, c);
                if (config.HasQkvBias && biasAfterEachWeight) Add(p + $"self_attn.{projection}.bias", false, rows);
            }
            if (config.HasQkvBias && !biasAfterEachWeight)
                foreach (var (projection, rows) in new[] { ("q_proj", qDim), ("k_proj", kvDim), ("v_proj", kvDim) })
                    Add(p + $"self_attn.{projection}.bias", false, rows);
            Add(p + "self_attn.o_proj.weight", false, c, qDim);
            if (config.HasOutputBias) Add(p + "self_attn.o_proj.bias", false, c);
            if (config.HasQkNorm)
            {
                Add(p + "self_attn.q_norm.weight", false, config.HeadDim);
                Add(p + "self_attn.k_norm.weight", false, config.HeadDim);
            }
            Add(p + "post_attention_layernorm.weight", false, c);
            Add(p + "mlp.gate_proj.weight", false, i, c);
            Add(p + "mlp.up_proj.weight", false, i, c);
            Add(p + "mlp.down_proj.weight", false, c, i);
        }
        Add("model.norm.weight", false, c);
        if (!config.TieWordEmbeddings) Add("lm_head.weight", false, v, c);
        return list;
    }

    /// <summary>The name of the (V, C) matrix the LM head multiplies by: the token embedding when tied.</summary>
    public static string LmHeadName(ModelConfig config) =>
        config.ModelType == "gpt2" ? "wte.weight"
        : config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
}

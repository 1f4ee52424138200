using Grpo.Native.Checkpoints;

namespace Grpo.Native.Models;

/// <summary>
/// The tensors of each model family, under their Hugging Face names, in buffer order (embeddings,
/// then layer by layer, then the final norm and an untied LM head). Every linear weight is kept in
/// nn.Linear's (out, in) layout; GPT-2's Conv1D weights, stored (in, out) on disk, are marked
/// <see cref="ParameterInfo.TransposedOnDisk"/> and transposed when loaded and saved. GPT-2's fused
/// c_attn weight, transposed, is (3C, C): its q, k and v blocks are contiguous rows, so each is a view.
/// </summary>
public static class TransformerLayout
{
    /// <summary>The layout of <paramref name="config"/>'s model.</summary>
    public static IReadOnlyList<ParameterInfo> For(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
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
            Add(p + "self_attn.q_proj.weight", false, qDim, c);
            if (config.HasQkvBias) Add(p + "self_attn.q_proj.bias", false, qDim);
            Add(p + "self_attn.k_proj.weight", false, kvDim, c);
            if (config.HasQkvBias) Add(p + "self_attn.k_proj.bias", false, kvDim);
            Add(p + "self_attn.v_proj.weight", false, kvDim, c);
            if (config.HasQkvBias) Add(p + "self_attn.v_proj.bias", false, kvDim);
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

    /// <summary>
    /// True when a block's q, k and v weights are adjacent rows of one (H·D + 2·KVH·D, C) matrix, their biases (if any)
    /// too, so the three projections are one GEMM: GPT-2's c_attn, and the Llama-family layouts without q/k/v biases. With
    /// biases (Qwen2), each projection's bias sits between its weight and the next one's, in the order the optimizer moments
    /// of every saved checkpoint follow, so those stay three GEMMs.
    /// </summary>
    public static bool HasFusedQkv(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.ModelType == "gpt2" || !config.HasQkvBias;
    }

    /// <summary>The name of the (V, C) matrix the LM head multiplies by: the token embedding when tied.</summary>
    public static string LmHeadName(ModelConfig config) =>
        config.ModelType == "gpt2" ? "wte.weight"
        : config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
}

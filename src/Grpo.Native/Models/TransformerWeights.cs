using Grpo.Native.Checkpoints;
using Grpo.Native.Tensors;

namespace Grpo.Native.Models;

/// <summary>
/// The views one transformer block reads, taken from a <see cref="ParameterSet"/>: the parameters
/// themselves, or the gradients (same layout, same views). Optional tensors are null where the
/// family has none (RMSNorm has no bias, Llama's projections have none, GPT-2 has no gate).
/// </summary>
internal sealed record BlockWeights(
    Tensor<float> Norm1Weight,   // (C)
    Tensor<float>? Norm1Bias,    // (C) LayerNorm only
    Tensor<float> QueryWeight,   // (H·D, C)
    Tensor<float>? QueryBias,    // (H·D)
    Tensor<float> KeyWeight,     // (KVH·D, C)
    Tensor<float>? KeyBias,      // (KVH·D)
    Tensor<float> ValueWeight,   // (KVH·D, C)
    Tensor<float>? ValueBias,    // (KVH·D)
    Tensor<float>? QueryNormWeight, // (D) Qwen3's per-head q_norm only
    Tensor<float>? KeyNormWeight,   // (D) Qwen3's per-head k_norm only
    Tensor<float> OutputWeight,  // (C, H·D)
    Tensor<float>? OutputBias,   // (C) GPT-2, and Qwen3 with attention_bias
    Tensor<float> Norm2Weight,   // (C)
    Tensor<float>? Norm2Bias,    // (C) LayerNorm only
    Tensor<float>? GateWeight,   // (I, C) SwiGLU only
    Tensor<float> UpWeight,      // (I, C) GPT-2's c_fc, Llama's up_proj
    Tensor<float>? UpBias,       // (I) GPT-2 only
    Tensor<float> DownWeight,    // (C, I) GPT-2's mlp.c_proj, Llama's down_proj
    Tensor<float>? DownBias,     // (C) GPT-2 only
    Tensor<float> QkvWeight,     // (H·D + 2·KVH·D, C) the q, k and v rows as one matrix (adjacent in every layout)
    Tensor<float>? QkvBias);     // (H·D + 2·KVH·D) their biases as one vector, where the family has them

/// <summary>Every view the model's passes use, for one parameter set (weights or gradients).</summary>
internal sealed record TransformerWeights(
    Tensor<float> TokenEmbedding,     // (V, C)
    Tensor<float>? PositionEmbedding, // (P, C) GPT-2 only
    BlockWeights[] Blocks,
    Tensor<float> FinalNormWeight,    // (C)
    Tensor<float>? FinalNormBias,     // (C) LayerNorm only
    Tensor<float> LmHead)             // (V, C) the token embedding itself when tied
{
    public static TransformerWeights From(ParameterSet set, ModelConfig config)
    {
        int c = config.HiddenSize;
        var blocks = new BlockWeights[config.NumLayers];
        if (config.ModelType == "gpt2")
        {
            for (int l = 0; l < blocks.Length; l++)
            {
                string p = $"h.{l}.";
                var qkv = set[p + "attn.c_attn.weight"];   // (3C, C): q, k and v rows one after another
                var qkvBias = set[p + "attn.c_attn.bias"]; // (3C)
                blocks[l] = new BlockWeights(
                    set[p + "ln_1.weight"], set[p + "ln_1.bias"],
                    qkv.Slice(0, c, c), qkvBias.Slice(0, c),
                    qkv.Slice((long)c * c, c, c), qkvBias.Slice(c, c),
                    qkv.Slice(2L * c * c, c, c), qkvBias.Slice(2 * c, c),
                    null, null,
                    set[p + "attn.c_proj.weight"], set[p + "attn.c_proj.bias"],
                    set[p + "ln_2.weight"], set[p + "ln_2.bias"],
                    null, set[p + "mlp.c_fc.weight"], set[p + "mlp.c_fc.bias"],
                    set[p + "mlp.c_proj.weight"], set[p + "mlp.c_proj.bias"],
                    qkv, qkvBias);
            }
            return new TransformerWeights(set["wte.weight"], set["wpe.weight"], blocks,
                set["ln_f.weight"], set["ln_f.bias"], set["wte.weight"]);
        }

        for (int l = 0; l < blocks.Length; l++)
        {
            string p = $"model.layers.{l}.";
            Tensor<float>? Bias(string name) => config.HasQkvBias ? set[p + name] : null;
            Tensor<float>? QkNorm(string name) => config.HasQkNorm ? set[p + name] : null;
            blocks[l] = new BlockWeights(
                set[p + "input_layernorm.weight"], null,
                set[p + "self_attn.q_proj.weight"], Bias("self_attn.q_proj.bias"),
                set[p + "self_attn.k_proj.weight"], Bias("self_attn.k_proj.bias"),
                set[p + "self_attn.v_proj.weight"], Bias("self_attn.v_proj.bias"),
                QkNorm("self_attn.q_norm.weight"), QkNorm("self_attn.k_norm.weight"),
                set[p + "self_attn.o_proj.weight"], config.HasOutputBias ? set[p + "self_attn.o_proj.bias"] : null,
                set[p + "post_attention_layernorm.weight"], null,
                set[p + "mlp.gate_proj.weight"], set[p + "mlp.up_proj.weight"], null,
                set[p + "mlp.down_proj.weight"], null,
                Adjacent(set, p + "self_attn.", "weight")!, Adjacent(set, p + "self_attn.", config.HasQkvBias ? "bias" : null));
        }
        return new TransformerWeights(set["model.embed_tokens.weight"], null, blocks,
            set["model.norm.weight"], null, set[TransformerLayout.LmHeadName(config)]);
    }

    /// <summary>
    /// The q_proj, k_proj and v_proj <paramref name="kind"/> ("weight" or "bias") under <paramref name="prefix"/> as one view,
    /// (H·D + 2·KVH·D, C) or (H·D + 2·KVH·D): the layout keeps them adjacent. Null for a null kind.
    /// </summary>
    private static Tensor<float>? Adjacent(ParameterSet set, string prefix, string? kind)
    {
        if (kind is null) return null;
        Tensor<float> q = set[$"{prefix}q_proj.{kind}"], k = set[$"{prefix}k_proj.{kind}"], v = set[$"{prefix}v_proj.{kind}"];
        if (k.Offset != q.Offset + q.Length || v.Offset != k.Offset + k.Length)
            throw new InvalidOperationException($"{prefix}q_proj, k_proj and v_proj {kind}s are not adjacent in the parameter buffer, as TransformerLayout keeps them.");
        int rows = q.Shape[0] + k.Shape[0] + v.Shape[0];
        long offset = q.Offset - set.Buffer.Offset;
        return kind == "weight" ? set.Buffer.Slice(offset, rows, q.Shape[1]) : set.Buffer.Slice(offset, rows);
    }
}

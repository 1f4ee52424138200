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
    Tensor<float> UpWeight,      // (I, C) GPT-2's c_fc, Llama's up_proj
    Tensor<float>? UpBias,       // (I) GPT-2 only
    Tensor<float> DownWeight,    // (C, I) GPT-2's mlp.c_proj, Llama's down_proj
    Tensor<float>? DownBias,     // (C) GPT-2 only
    Tensor<float> QkvWeight,     // (H·D + 2·KVH·D, C) the q, k and v rows as one matrix (adjacent in every layout)
    Tensor<float>? QkvBias,      // (H·D + 2·KVH·D) their biases as one vector, where the family has them
    Tensor<float>? GateUpWeight); // (2I, C) SwiGLU only: the gate_proj rows, then the up_proj rows, as one matrix (adjacent in the layout)

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
                    set[p + "mlp.c_fc.weight"], set[p + "mlp.c_fc.bias"],
                    set[p + "mlp.c_proj.weight"], set[p + "mlp.c_proj.bias"],
                    qkv, qkvBias, null);
            }
            return new TransformerWeights(set["wte.weight"], set["wpe.weight"], blocks,
                set["ln_f.weight"], set["ln_f.bias"], set["wte.weight"]);
        }

        for (int l = 0; l < blocks.Length; l++)
        {
            string p = $"model.layers.{l}.";
            string a = p + "self_attn.";
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
                set[p + "mlp.up_proj.weight"], null,
                set[p + "mlp.down_proj.weight"], null,
                Adjacent(set, a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"),
                config.HasQkvBias ? Adjacent(set, a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias") : null,
                Adjacent(set, p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"));
        }
        return new TransformerWeights(set["model.embed_tokens.weight"], null, blocks,
            set["model.norm.weight"], null, set[TransformerLayout.LmHeadName(config)]);
    }

    /// <summary>
    /// The named parameters, all weights (rows_i, C) or all biases (rows_i), as one view of their rows in order,
    /// (Σ rows_i, C) or (Σ rows_i): the layout keeps q_proj, k_proj and v_proj adjacent, and gate_proj and up_proj.
    /// </summary>
    /// <exception cref="InvalidOperationException">The tensors do not follow one another in the buffer, or their columns differ.</exception>
    private static Tensor<float> Adjacent(ParameterSet set, params string[] names)
    {
        var parts = Array.ConvertAll(names, name => set[name]);
        var first = parts[0];
        int rows = first.Shape[0];
        for (int i = 1; i < parts.Length; i++)
        {
            var (previous, part) = (parts[i - 1], parts[i]);
            if (part.Offset != previous.Offset + previous.Length)
                throw new InvalidOperationException(
                    $"{string.Join(", ", names)} are not adjacent in the parameter buffer, as TransformerLayout keeps them.");
            if (part.Shape.Rank != first.Shape.Rank || (first.Shape.Rank == 2 && part.Shape[1] != first.Shape[1]))
                throw new InvalidOperationException(
                    $"{names[i]} has shape {part.Shape} but {names[0]} has {first.Shape}: they cannot form one matrix.");
            rows += part.Shape[0];
        }
        long offset = first.Offset - set.Buffer.Offset;
        return first.Shape.Rank == 2 ? set.Buffer.Slice(offset, rows, first.Shape[1]) : set.Buffer.Slice(offset, rows);
    }
}

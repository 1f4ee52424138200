using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Models;

/// <summary>
/// How one block's attention runs: packed causal attention for training and prefill, or the cached
/// keys and values while decoding. Shapes: q, output (m, H, D); k, v (m, KVH, D); lse (m, H).
/// k and v are null in a decode step: the block has written them into its <see cref="DecodeCache"/>.
/// </summary>
internal delegate void AttentionStep(int layer, Tensor<float> query, Tensor<float>? key, Tensor<float>? value,
    Tensor<float> output, Tensor<float> logSumExp);

/// <summary>
/// Where a decode step caches each layer's new keys and values: row r's at slot slots_r, at the row's own position.
/// </summary>
/// <param name="Keys">L layers × (S, capacity, KVH, D).</param>
/// <param name="Values">L layers × (S, capacity, KVH, D).</param>
/// <param name="Slots">(m) the slot of each row.</param>
/// <param name="Rows">(m) 0, 1, …, m − 1: the source rows when k and v pass through their own buffers (q, k and v from three GEMMs).</param>
internal sealed record DecodeCache(Tensor<float>[] Keys, Tensor<float>[] Values, Tensor<int> Slots, Tensor<int> Rows);

public sealed partial class TransformerModel
{
    // ----- forward ---------------------------------------------------------------------------------

    /// <summary>
    /// Embeddings, every block and the final norm over m rows; returns the (m, C) hidden states. With a
    /// <paramref name="cache"/> (a decode step), each block writes its keys and values there before its attention.
    /// </summary>
    internal Tensor<float> RunForward(Tensor<int> ids, Tensor<int> positions, int m, TransformerActivations act, AttentionStep attention,
        DecodeCache? cache = null)
    {
        var x = act.Rows(act.Residual[0], m); // (m, C)
        _ops.EmbeddingForward(x, ids, _weights.TokenEmbedding, IsGpt2 ? positions : null, _weights.PositionEmbedding);
        // The first block's norm1 runs alone; every later norm runs fused with the residual add before it.
        var first = NormBeforeBlock(0, act, m);
        NormForward(first.Output, first.Mean, first.Rstd, x, first.Weight, first.Bias);
        for (int l = 0; l < Config.NumLayers; l++)
            BlockForward(l, positions, m, act, attention, cache);
        return act.Rows(act.Hidden, m);
    }

    /// <summary>Where a norm writes and which weights it applies: the tensors of one LayerNorm or RMSNorm call.</summary>
    private readonly record struct NormTarget(Tensor<float> Output, Tensor<float>? Mean, Tensor<float> Rstd, Tensor<float> Weight, Tensor<float>? Bias);

    /// <summary>The norm that reads block <paramref name="l"/>'s input: its norm1, or the final norm after the last block (l = L).</summary>
    private NormTarget NormBeforeBlock(int l, TransformerActivations act, int m)
    {
        if (l == Config.NumLayers)
            return new(act.Rows(act.Hidden, m), Rows(act, act.FinalMean, m), act.Rows(act.FinalRstd, m), _weights.FinalNormWeight,
                _weights.FinalNormBias);
        var a = act.Blocks[l];
        var w = _weights.Blocks[l];
        return new(act.Rows(a.Norm1, m), Rows(act, a.Mean1, m), act.Rows(a.Rstd1, m), w.Norm1Weight, w.Norm1Bias);
    }

    private void BlockForward(int l, Tensor<int> positions, int m, TransformerActivations act, AttentionStep attention, DecodeCache? cache)
    {
        var w = _weights.Blocks[l];
        var a = act.Blocks[l];
        int h = Config.NumHeads, kvh = Config.NumKeyValueHeads, d = Config.HeadDim;
        var x = act.Rows(act.Residual[l], m);                  // (m, C) block input
        var xOut = act.Rows(act.Residual[l + 1], m);           // (m, C) block output
        var xa = act.Rows(a.AttentionResidual, m);             // (m, C) x + attention
        var proj = act.Rows(act.Projection, m);                // (m, C)

        // Attention half: x → norm → q, k, v → (per-head q/k norm) → (RoPE) → attention → o_proj → + x.
        QueryKeyValueForward(l, positions, m, act, cache);
        var q3 = act.Rows(a.Query, m).Reshape(m, h, d);        // (m, H, D)
        var k3 = cache is null ? act.Rows(a.Key, m).Reshape(m, kvh, d) : null;   // (m, KVH, D), or in the cache
        var v3 = cache is null ? act.Rows(a.Value, m).Reshape(m, kvh, d) : null; // (m, KVH, D), or in the cache
        var att = act.Rows(a.Attention, m);                    // (m, H·D)
        attention(l, q3, k3, v3, att.Reshape(m, h, d), act.Rows(a.LogSumExp, m));
        _ops.LinearForward(proj, att, w.OutputWeight, w.OutputBias);
        // xa = x + proj, and norm2 of it, in one pass.
        var n2 = act.Rows(a.Norm2, m);                         // (m, C)
        AddNormForward(xa, new NormTarget(n2, Rows(act, a.Mean2, m), act.Rows(a.Rstd2, m), w.Norm2Weight, w.Norm2Bias), x, proj);

        // MLP half: xa → norm → up (and gate) → GELU or SwiGLU → down → + xa.
        MlpActivationForward(w, a, n2, m, act);
        _ops.LinearForward(proj, act.Rows(a.Activation, m), w.DownWeight, w.DownBias);
        // x_{l+1} = xa + proj, and the next block's norm1 of it (the final norm after the last block), in one pass.
        AddNormForward(xOut, NormBeforeBlock(l + 1, act, m), xa, proj);
    }

    /// <summary>
    /// q, k and v of block <paramref name="l"/> from its norm1 rows: one GEMM split into the three (their biases added on the
    /// way) or three GEMMs, then Qwen3's per-head q/k norms and RoPE. Writes the (m, H, D) queries, and the (m, KVH, D) keys
    /// and values into their buffers or, in a decode step, into the <paramref name="cache"/>.
    /// </summary>
    private void QueryKeyValueForward(int l, Tensor<int> positions, int m, TransformerActivations act, DecodeCache? cache)
    {
        var w = _weights.Blocks[l];
        var a = act.Blocks[l];
        int h = Config.NumHeads, kvh = Config.NumKeyValueHeads, d = Config.HeadDim;
        var n1 = act.Rows(a.Norm1, m);                         // (m, C) norm1(x), written before this block (see RunForward)
        var q = act.Rows(a.Query, m);                          // (m, H·D)
        var k = act.Rows(a.Key, m);                            // (m, KVH·D)
        var v = act.Rows(a.Value, m);                          // (m, KVH·D)
        bool qkNorm = w.QueryNormWeight is not null;
        var qProjection = qkNorm ? act.Rows(a.QueryProjection!, m) : q; // (m, H·D)
        var kProjection = qkNorm ? act.Rows(a.KeyProjection!, m) : k;   // (m, KVH·D)
        if (FusesQkv)
        {
            // One GEMM over the adjacent q, k and v rows, then its columns split into the three, their biases added on the way:
            // fewer launches, and the input is read once. Each value is the same dot product as in three GEMMs, plus its bias.
            var qkv = act.Rows(act.QkvProjection, m);           // (m, H·D + 2·KVH·D)
            _ops.LinearForward(qkv, n1, w.QkvWeight, null);
            if (cache is not null)
            {
                // A decode step: the split, the biases, Qwen3's head norms, RoPE and the cache write in one launch; k and v
                // skip their buffers.
                HeadNorms? headNorms = qkNorm ? new HeadNorms(w.QueryNormWeight!, w.KeyNormWeight!, (float)Config.NormEpsilon) : null;
                _ops.SplitIntoKvCache(qkv, w.QkvBias, q.Reshape(m, h, d), cache.Keys[l], cache.Values[l], cache.Slots, positions,
                    IsGpt2 ? null : Rotary, headNorms);
                return;
            }
            _ops.SplitColumns(qkv, qProjection, kProjection, v, w.QkvBias);
        }
        else
        {
            _ops.LinearForward(qProjection, n1, w.QueryWeight, w.QueryBias);
            _ops.LinearForward(kProjection, n1, w.KeyWeight, w.KeyBias);
            _ops.LinearForward(v, n1, w.ValueWeight, w.ValueBias);
        }
        if (qkNorm)
        {
            // Qwen3: RMSNorm of each head's D-vector (rows of D, m·H of them), before RoPE as Qwen3Attention does.
            float eps = (float)Config.NormEpsilon;
            _ops.RmsNormForward(q.Reshape(m * h, d), act.Rows(a.QueryRstd!, m).Reshape(m * h), qProjection.Reshape(m * h, d),
                w.QueryNormWeight!, eps);
            _ops.RmsNormForward(k.Reshape(m * kvh, d), act.Rows(a.KeyRstd!, m).Reshape(m * kvh), kProjection.Reshape(m * kvh, d),
                w.KeyNormWeight!, eps);
        }
        // RoPE of q and k, one launch (GPT-2 learns position embeddings instead).
        if (!IsGpt2) _ops.Rope(q.Reshape(m, h, d), k.Reshape(m, kvh, d), positions, Rotary.Theta, inverse: false, Rotary.Scaling);
        if (cache is not null)
            _ops.KvCacheWrite(cache.Keys[l], cache.Values[l], k.Reshape(m, kvh, d), v.Reshape(m, kvh, d), cache.Rows, cache.Slots, positions);
    }

    /// <summary>RoPE's θ and scaling from the config.</summary>
    private RotaryEmbedding Rotary => new((float)Config.RopeTheta, Config.RopeScaling);

    /// <summary>
    /// up = n2·W_upᵀ + b, then activation = GELU(up); or [gate | up] = n2·[W_gate; W_up]ᵀ, one GEMM over the adjacent rows
    /// (each value the same dot product as in two GEMMs), and activation = silu(gate)·up.
    /// </summary>
    private void MlpActivationForward(BlockWeights w, BlockActivations a, Tensor<float> n2, int m, TransformerActivations act)
    {
        var activation = act.Rows(a.Activation, m);            // (m, I)
        if (IsGpt2)
        {
            var up = act.Rows(a.Up!, m);                       // (m, I)
            _ops.LinearForward(up, n2, w.UpWeight, w.UpBias);
            _ops.GeluForward(activation, up);
        }
        else
        {
            var gateUp = act.Rows(a.GateUp!, m);               // (m, 2I)
            _ops.LinearForward(gateUp, n2, w.GateUpWeight!, null);
            _ops.SwiGluForward(activation, gateUp);
        }
    }

    /// <summary>LayerNorm (GPT-2, with mean and bias) or RMSNorm (Llama, Qwen2, Qwen3).</summary>
    private void NormForward(Tensor<float> output, Tensor<float>? mean, Tensor<float> rstd, Tensor<float> input,
        Tensor<float> weight, Tensor<float>? bias)
    {
        float eps = (float)Config.NormEpsilon;
        if (IsGpt2) _ops.LayerNormForward(output, mean!, rstd, input, weight, bias!, eps);
        else _ops.RmsNormForward(output, rstd, input, weight, eps);
    }

    /// <summary>sum = input + addend (the residual add), then the family's norm of sum into <paramref name="norm"/>: one operation.</summary>
    private void AddNormForward(Tensor<float> sum, NormTarget norm, Tensor<float> input, Tensor<float> addend)
    {
        float eps = (float)Config.NormEpsilon;
        if (IsGpt2) _ops.AddLayerNormForward(sum, norm.Output, norm.Mean!, norm.Rstd, input, addend, norm.Weight, norm.Bias!, eps);
        else _ops.AddRmsNormForward(sum, norm.Output, norm.Rstd, input, addend, norm.Weight, eps);
    }

    private static Tensor<float>? Rows(TransformerActivations act, Tensor<float>? planned, int m) =>
        planned is null ? null : act.Rows(planned, m);

    // ----- backward --------------------------------------------------------------------------------

    private void BackwardPass(TokenBatch batch, TransformerActivations act, Tensor<float> dHidden)
    {
        int m = batch.TokenCount;
        var g = GradientViews;
        var dx = act.Rows(act.DResidual!, m);                 // (m, C) d loss / d residual stream
        dx.Fill(0f);
        NormBackward(dx, g.FinalNormWeight, g.FinalNormBias, dHidden, act.Rows(act.Residual[^1], m),
            _weights.FinalNormWeight, Rows(act, act.FinalMean, m), act.Rows(act.FinalRstd, m));
        for (int l = Config.NumLayers - 1; l >= 0; l--)
            BlockBackward(l, batch, act, dx);
        _ops.EmbeddingBackward(g.TokenEmbedding, g.PositionEmbedding, dx, batch.Ids, IsGpt2 ? batch.Positions : null);
    }

    /// <summary>On entry dx = d loss / d x_{l+1}; on exit dx = d loss / d x_l. Parameter gradients accumulate.</summary>
    private void BlockBackward(int l, TokenBatch batch, TransformerActivations act, Tensor<float> dx)
    {
        int m = batch.TokenCount, h = Config.NumHeads, kvh = Config.NumKeyValueHeads, d = Config.HeadDim;
        var w = _weights.Blocks[l];
        var gw = GradientViews.Blocks[l];
        var a = act.Blocks[l];
        var x = act.Rows(act.Residual[l], m);                 // (m, C)
        var xa = act.Rows(a.AttentionResidual, m);            // (m, C)
        var n1 = act.Rows(a.Norm1, m);                        // (m, C)
        var n2 = act.Rows(a.Norm2, m);                        // (m, C)
        var dNorm = act.Rows(act.DNorm!, m);                  // (m, C)

        if (act.Recompute)
        {
            // The cheap activations were overwritten by later layers: rebuild this layer's from what was saved.
            NormForward(n1, Rows(act, a.Mean1, m), act.Rows(a.Rstd1, m), x, w.Norm1Weight, w.Norm1Bias);
            NormForward(n2, Rows(act, a.Mean2, m), act.Rows(a.Rstd2, m), xa, w.Norm2Weight, w.Norm2Bias);
            var activation = act.Rows(a.Activation, m);
            if (IsGpt2) _ops.GeluForward(activation, act.Rows(a.Up!, m));
            else _ops.SwiGluForward(activation, act.Rows(a.GateUp!, m));
        }

        // MLP half: x_{l+1} = xa + down(act(up(norm2(xa)))). dx is d x_{l+1} = d down-output.
        var dAct = act.Rows(act.DActivation!, m);             // (m, I)
        dAct.Fill(0f);
        _ops.LinearBackward(dAct, gw.DownWeight, gw.DownBias, dx, act.Rows(a.Activation, m), w.DownWeight);
        dNorm.Fill(0f);
        if (IsGpt2)
        {
            var dUp = act.Rows(act.DUp!, m);                  // (m, I)
            dUp.Fill(0f);
            _ops.GeluBackward(dUp, dAct, act.Rows(a.Up!, m));
            _ops.LinearBackward(dNorm, gw.UpWeight, gw.UpBias, dUp, n2, w.UpWeight);
        }
        else
        {
            // The fused gate|up projection's backward: one GEMM for d n2 over both (K = 2I), one for the adjacent weight gradients.
            var dGateUp = act.Rows(act.DGateUp!, m);          // (m, 2I)
            dGateUp.Fill(0f);
            _ops.SwiGluBackward(dGateUp, dAct, act.Rows(a.GateUp!, m));
            _ops.LinearBackward(dNorm, gw.GateUpWeight!, null, dGateUp, n2, w.GateUpWeight!);
        }
        // The residual passes dx through unchanged; the norm's branch adds to it: dx becomes d xa.
        NormBackward(dx, gw.Norm2Weight, gw.Norm2Bias, dNorm, xa, w.Norm2Weight, Rows(act, a.Mean2, m), act.Rows(a.Rstd2, m));

        // Attention half: xa = x + o_proj(attention(q, k, v)). dx is d xa = d o_proj output.
        var dAtt = act.Rows(act.DAttention!, m);              // (m, H·D)
        dAtt.Fill(0f);
        _ops.LinearBackward(dAtt, gw.OutputWeight, gw.OutputBias, dx, act.Rows(a.Attention, m), w.OutputWeight);
        var dq = act.Rows(act.DQuery!, m);                    // (m, H·D)
        var dk = act.Rows(act.DKey!, m);                      // (m, KVH·D)
        var dv = act.Rows(act.DValue!, m);                    // (m, KVH·D)
        dq.Fill(0f);
        dk.Fill(0f);
        dv.Fill(0f);
        _ops.AttentionBackward(dq.Reshape(m, h, d), dk.Reshape(m, kvh, d), dv.Reshape(m, kvh, d), dAtt.Reshape(m, h, d),
            act.Rows(a.Query, m).Reshape(m, h, d), act.Rows(a.Key, m).Reshape(m, kvh, d), act.Rows(a.Value, m).Reshape(m, kvh, d),
            act.Rows(a.Attention, m).Reshape(m, h, d), act.Rows(a.LogSumExp, m), batch.SeqStarts, AttentionScale);
        if (!IsGpt2)
        {
            // RoPE is a rotation: the gradient before it is the inverse rotation of the gradient after it.
            _ops.Rope(dq.Reshape(m, h, d), dk.Reshape(m, kvh, d), batch.Positions, (float)Config.RopeTheta, inverse: true, Config.RopeScaling);
        }
        if (w.QueryNormWeight is not null)
        {
            // Qwen3's per-head q/k norm: dq and dk become the gradients of the projections before it.
            var dqProjection = act.Rows(act.DQueryProjection!, m); // (m, H·D)
            var dkProjection = act.Rows(act.DKeyProjection!, m);   // (m, KVH·D)
            dqProjection.Fill(0f);
            dkProjection.Fill(0f);
            _ops.RmsNormBackward(dqProjection.Reshape(m * h, d), gw.QueryNormWeight!, dq.Reshape(m * h, d),
                act.Rows(a.QueryProjection!, m).Reshape(m * h, d), w.QueryNormWeight, act.Rows(a.QueryRstd!, m).Reshape(m * h));
            _ops.RmsNormBackward(dkProjection.Reshape(m * kvh, d), gw.KeyNormWeight!, dk.Reshape(m * kvh, d),
                act.Rows(a.KeyProjection!, m).Reshape(m * kvh, d), w.KeyNormWeight!, act.Rows(a.KeyRstd!, m).Reshape(m * kvh));
            dq = dqProjection;
            dk = dkProjection;
        }
        dNorm.Fill(0f);
        if (FusesQkv)
        {
            // The fused projection's backward: dq, dk and dv joined into its output gradient (the forward's scratch, free now),
            // then one GEMM for d n1 over all three (K = H·D + 2·KVH·D), one for the adjacent q/k/v weight gradients, one bias sum.
            var dQkv = act.Rows(act.QkvProjection, m);       // (m, H·D + 2·KVH·D)
            _ops.JoinColumns(dQkv, dq, dk, dv);
            _ops.LinearBackward(dNorm, gw.QkvWeight, gw.QkvBias, dQkv, n1, w.QkvWeight);
        }
        else
        {
            _ops.LinearBackward(dNorm, gw.QueryWeight, gw.QueryBias, dq, n1, w.QueryWeight);
            _ops.LinearBackward(dNorm, gw.KeyWeight, gw.KeyBias, dk, n1, w.KeyWeight);
            _ops.LinearBackward(dNorm, gw.ValueWeight, gw.ValueBias, dv, n1, w.ValueWeight);
        }
        NormBackward(dx, gw.Norm1Weight, gw.Norm1Bias, dNorm, x, w.Norm1Weight, Rows(act, a.Mean1, m), act.Rows(a.Rstd1, m));
    }

    private void NormBackward(Tensor<float> dInput, Tensor<float> dWeight, Tensor<float>? dBias, Tensor<float> dOutput,
        Tensor<float> input, Tensor<float> weight, Tensor<float>? mean, Tensor<float> rstd)
    {
        if (IsGpt2) _ops.LayerNormBackward(dInput, dWeight, dBias!, dOutput, input, weight, mean!, rstd);
        else _ops.RmsNormBackward(dInput, dWeight, dOutput, input, weight, rstd);
    }
}

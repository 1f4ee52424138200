using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// Causal self-attention over packed variable-length sequences with grouped-query attention.
    /// Sequence b occupies token rows [seqStarts[b], seqStarts[b+1]); per query head h and token i,
    /// out_i = Σ_{j ≤ i, j in i's sequence} softmax_j(scale · q_i·k_j) v_j, where query head h reads
    /// kv head h / (H / KVH) (H = KVH is plain multi-head attention). Only each token's own causal
    /// prefix is scored: no (M, M) matrix, no work on other sequences' tokens.
    /// Outputs are overwritten.
    /// </summary>
    /// <param name="output">(M, H, D) output: the attention-weighted values per token and query head.</param>
    /// <param name="logSumExp">(M, H) output: log Σ_j exp(scale · q_i·k_j) over the causal prefix, kept for the backward.</param>
    /// <param name="query">(M, H, D) queries.</param>
    /// <param name="key">(M, KVH, D) keys; H must be a multiple of KVH.</param>
    /// <param name="value">(M, KVH, D) values.</param>
    /// <param name="seqStarts">(B+1) cumulative token offsets: 0, non-decreasing, ending at M (a repeated value is an empty sequence).</param>
    /// <param name="scale">Score scale, positive and finite; usually 1/sqrt(D).</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or lives on another device.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The scale is not positive and finite, or seqStarts is not a valid offset list.</exception>
    void AttentionForward(Tensor<float> output, Tensor<float> logSumExp,
        Tensor<float> query, Tensor<float> key, Tensor<float> value, Tensor<int> seqStarts, float scale);

    /// <summary>
    /// Backward of <see cref="AttentionForward"/> (FlashAttention-2 math, scores recomputed from the
    /// saved log-sum-exp): with D_i = dO_i·O_i and, for j ≤ i in the same sequence,
    /// p_ij = exp(scale · q_i·k_j − lse_i), dS_ij = p_ij (dO_i·v_j − D_i), it ACCUMULATES
    /// dQ_i += scale Σ_j dS_ij k_j, dK_j += scale Σ_i dS_ij q_i and dV_j += Σ_i p_ij dO_i; a kv head's
    /// dK and dV sum over the query heads that share it. Callers zero the gradients first (llm.c convention).
    /// </summary>
    /// <param name="dQuery">(M, H, D) gradient accumulated (+=) with respect to the queries.</param>
    /// <param name="dKey">(M, KVH, D) gradient accumulated (+=) with respect to the keys.</param>
    /// <param name="dValue">(M, KVH, D) gradient accumulated (+=) with respect to the values.</param>
    /// <param name="dOutput">(M, H, D) gradient of the loss with respect to the forward's output.</param>
    /// <param name="query">(M, H, D) the queries the forward saw.</param>
    /// <param name="key">(M, KVH, D) the keys the forward saw.</param>
    /// <param name="value">(M, KVH, D) the values the forward saw.</param>
    /// <param name="output">(M, H, D) the forward's output.</param>
    /// <param name="logSumExp">(M, H) the forward's log-sum-exp.</param>
    /// <param name="seqStarts">(B+1) the forward's sequence offsets.</param>
    /// <param name="scale">The forward's score scale.</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or lives on another device.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The scale is not positive and finite, or seqStarts is not a valid offset list.</exception>
    void AttentionBackward(Tensor<float> dQuery, Tensor<float> dKey, Tensor<float> dValue,
        Tensor<float> dOutput, Tensor<float> query, Tensor<float> key, Tensor<float> value,
        Tensor<float> output, Tensor<float> logSumExp, Tensor<int> seqStarts, float scale);
}

/// <summary>The sizes of one attention call.</summary>
/// <param name="M">Packed token rows.</param>
/// <param name="H">Query heads.</param>
/// <param name="KVH">Key/value heads (H is a multiple of it).</param>
/// <param name="D">Head dimension.</param>
/// <param name="B">Sequences.</param>
internal readonly record struct AttentionShape(int M, int H, int KVH, int D, int B);

/// <summary>Argument checks both backends run before attention, so they reject the same inputs with the same messages.</summary>
internal static class AttentionValidation
{
    /// <summary>Checks shapes and the scale of the forward.</summary>
    public static AttentionShape Forward(Tensor<float> output, Tensor<float> logSumExp,
        Tensor<float> query, Tensor<float> key, Tensor<float> value, Tensor<int> seqStarts, float scale)
    {
        var shape = Common(query, key, value, seqStarts, scale);
        Guard.Shape(output, nameof(output), shape.M, shape.H, shape.D);
        Guard.Shape(logSumExp, nameof(logSumExp), shape.M, shape.H);
        return shape;
    }

    /// <summary>Checks shapes and the scale of the backward.</summary>
    public static AttentionShape Backward(Tensor<float> dQuery, Tensor<float> dKey, Tensor<float> dValue,
        Tensor<float> dOutput, Tensor<float> query, Tensor<float> key, Tensor<float> value,
        Tensor<float> output, Tensor<float> logSumExp, Tensor<int> seqStarts, float scale)
    {
        var shape = Common(query, key, value, seqStarts, scale);
        Guard.Shape(output, nameof(output), shape.M, shape.H, shape.D);
        Guard.Shape(logSumExp, nameof(logSumExp), shape.M, shape.H);
        Guard.Shape(dOutput, nameof(dOutput), shape.M, shape.H, shape.D);
        Guard.Shape(dQuery, nameof(dQuery), shape.M, shape.H, shape.D);
        Guard.Shape(dKey, nameof(dKey), shape.M, shape.KVH, shape.D);
        Guard.Shape(dValue, nameof(dValue), shape.M, shape.KVH, shape.D);
        return shape;
    }

    /// <summary>
    /// Throws unless the downloaded offsets start at 0, never decrease and end at M, naming the first
    /// bad index and its value. Returns the longest sequence (the backends' per-row scratch length).
    /// </summary>
    public static int SeqStarts(ReadOnlySpan<int> starts, int m)
    {
        const string name = "seqStarts";
        if (starts[0] != 0)
            throw new ArgumentOutOfRangeException(name, starts[0],
                $"'{name}'[0] is {starts[0]} but the offsets must start at 0: sequence 0 begins at the first token row.");
        int longest = 0;
        for (int b = 1; b < starts.Length; b++)
        {
            if (starts[b] < starts[b - 1])
                throw new ArgumentOutOfRangeException(name, starts[b],
                    $"'{name}'[{b}] is {starts[b]} but '{name}'[{b - 1}] is {starts[b - 1]}; the offsets are cumulative " +
                    "token counts and must never decrease (pass the running sum of the sequence lengths).");
            longest = Math.Max(longest, starts[b] - starts[b - 1]);
        }
        int last = starts.Length - 1;
        if (starts[last] != m)
            throw new ArgumentOutOfRangeException(name, starts[last],
                $"'{name}'[{last}] is {starts[last]} but the packed tensors hold {m} token rows; the last offset must be the total token count.");
        return longest;
    }

    private static AttentionShape Common(Tensor<float> query, Tensor<float> key, Tensor<float> value, Tensor<int> seqStarts, float scale)
    {
        Guard.Rank(query, nameof(query), 3, "(tokens, heads, head dimension)");
        Guard.Rank(key, nameof(key), 3, "(tokens, kv heads, head dimension)");
        int m = query.Shape[0], h = query.Shape[1], d = query.Shape[2];
        int kvh = key.Shape[1];
        if (key.Shape[0] != m || key.Shape[2] != d)
            throw new ArgumentException(
                $"'key' has shape {key.Shape} but 'query' has shape {query.Shape}; keys must be ({m}, kv heads, {d}): " +
                "one row per token and the queries' head dimension.", nameof(key));
        if (h % kvh != 0)
            throw new ArgumentException(
                $"'key' has {kvh} kv heads but 'query' has {h} heads; the query heads must be a multiple of the kv heads " +
                "(each kv head serves H / KVH query heads).", nameof(key));
        Guard.Shape(value, nameof(value), m, kvh, d);
        Guard.Rank(seqStarts, nameof(seqStarts), 1, "(sequences + 1) of cumulative token offsets");
        if (seqStarts.Shape[0] < 2)
            throw new ArgumentException(
                $"'seqStarts' has shape {seqStarts.Shape} but needs B + 1 ≥ 2 offsets: 0 and the end of each sequence.", nameof(seqStarts));
        if (!(scale > 0) || !float.IsFinite(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), scale,
                $"'scale' must be positive and finite but was {scale}; use 1 / sqrt(head dimension) = {1 / MathF.Sqrt(d)}.");
        return new AttentionShape(m, h, kvh, d, seqStarts.Shape[0] - 1);
    }
}

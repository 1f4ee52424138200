using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// Writes key/value rows into a layer's cache: for each write w,
    /// keyCache[slots_w, positions_w] = key[sourceRows_w] and the same for values. Repeating a source
    /// row fans one prompt's keys out to the G slots of its group; after a decode step each slot
    /// writes its one new row. Writes must not target the same (slot, position) twice.
    /// </summary>
    /// <param name="keyCache">(S, L, KVH, D) keys: S sequence slots of capacity L.</param>
    /// <param name="valueCache">(S, L, KVH, D) values.</param>
    /// <param name="key">(M, KVH, D) new key rows.</param>
    /// <param name="value">(M, KVH, D) new value rows.</param>
    /// <param name="sourceRows">(W) row of key/value each write copies, in [0, M).</param>
    /// <param name="slots">(W) destination slot, in [0, S).</param>
    /// <param name="positions">(W) destination position, in [0, L).</param>
    void KvCacheWrite(Tensor<float> keyCache, Tensor<float> valueCache, Tensor<float> key, Tensor<float> value,
        Tensor<int> sourceRows, Tensor<int> slots, Tensor<int> positions);

    /// <summary>
    /// Attention of one new query row per decoding sequence against its cache (grouped-query, as
    /// <see cref="AttentionForward"/>): out_r = Σ_{j &lt; lengths_r} softmax_j(scale · q_r·K[slots_r, j]) V[slots_r, j].
    /// The row's own key and value must already be written (lengths_r counts them).
    /// Output is overwritten.
    /// </summary>
    /// <param name="output">(R, H, D) attention output per row and query head.</param>
    /// <param name="query">(R, H, D) the new queries.</param>
    /// <param name="keyCache">(S, L, KVH, D) keys.</param>
    /// <param name="valueCache">(S, L, KVH, D) values.</param>
    /// <param name="slots">(R) the cache slot each row reads, in [0, S).</param>
    /// <param name="lengths">(R) how many cached positions each row attends to, in [1, L].</param>
    /// <param name="scale">Score scale, positive and finite; usually 1/sqrt(D).</param>
    void AttentionDecode(Tensor<float> output, Tensor<float> query, Tensor<float> keyCache, Tensor<float> valueCache,
        Tensor<int> slots, Tensor<int> lengths, float scale);
}

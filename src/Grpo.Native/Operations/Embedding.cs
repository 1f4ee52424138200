using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// Looks up rows: output_m = table[ids_m] (+ positionTable[positions_m] when a position table is
    /// given: GPT-2's learned positions). Also serves as a row gather (the last hidden row of each
    /// prompt, say) with the hidden states as the table. Output is overwritten.
    /// </summary>
    /// <param name="output">(M, C) output rows.</param>
    /// <param name="ids">(M) row of <paramref name="table"/> to read per output row, in [0, V).</param>
    /// <param name="table">(V, C) the table (token embeddings).</param>
    /// <param name="positions">(M) position per row, in [0, P); required exactly when <paramref name="positionTable"/> is given.</param>
    /// <param name="positionTable">(P, C) optional learned position embeddings.</param>
    /// <exception cref="ArgumentOutOfRangeException">An id or position is outside its table; the message names the first bad row and its value.</exception>
    void EmbeddingForward(Tensor<float> output, Tensor<int> ids, Tensor<float> table,
        Tensor<int>? positions, Tensor<float>? positionTable);

    /// <summary>
    /// Backward of <see cref="EmbeddingForward"/>; ACCUMULATES: dTable[ids_m] += dOutput_m and
    /// dPositionTable[positions_m] += dOutput_m. Rows that share an id are added in increasing m,
    /// so the result is deterministic (no float atomics) on every backend.
    /// </summary>
    /// <param name="dTable">(V, C) gradient of the table.</param>
    /// <param name="dPositionTable">(P, C) gradient of the position table, or null.</param>
    /// <param name="dOutput">(M, C) gradient of the loss with respect to the output.</param>
    /// <param name="ids">(M) the ids the forward saw.</param>
    /// <param name="positions">(M) the positions the forward saw; required exactly when <paramref name="dPositionTable"/> is given.</param>
    void EmbeddingBackward(Tensor<float> dTable, Tensor<float>? dPositionTable, Tensor<float> dOutput,
        Tensor<int> ids, Tensor<int>? positions);
}

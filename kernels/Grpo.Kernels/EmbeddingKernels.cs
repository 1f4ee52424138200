using ILGPU;

namespace Grpo.Kernels;

/// <summary>
/// Embedding lookup and its backward. The forward is element-wise over (row, channel). The backward
/// runs one group per distinct id over a host-built list of that id's rows in increasing order
/// (CSR): every table row is written by one group, whose threads own channels and add the rows in
/// order, so no atomics are needed and the result is deterministic.
/// </summary>
public static class EmbeddingKernels
{
    /// <summary>output[m, c] = table[ids[m], c] (+ positionTable[positions[m], c] when <paramref name="learned"/> is 1).</summary>
    /// <param name="index">X: channel c, Y: row m.</param>
    /// <param name="output">(M, C) output rows.</param>
    /// <param name="ids">(M) table row per output row, validated on the host.</param>
    /// <param name="table">(V, C) table.</param>
    /// <param name="positions">(M) position per row (any (M) int view when unused).</param>
    /// <param name="positionTable">(P, C) position table (any view when unused).</param>
    /// <param name="channels">C.</param>
    /// <param name="learned">1 to add the position rows, 0 to leave them out.</param>
    public static void Forward(Index2D index, ArrayView<float> output, ArrayView<int> ids, ArrayView<float> table,
        ArrayView<int> positions, ArrayView<float> positionTable, int channels, int learned)
    {
        int c = index.X, m = index.Y;
        float value = table[(long)ids[m] * channels + c];
        if (learned != 0) value += positionTable[(long)positions[m] * channels + c];
        output[(long)m * channels + c] = value;
    }

    /// <summary>
    /// Group g: dTable[ids[g], c] += Σ_{r in [offsets[g], offsets[g+1]), increasing} dOutput[rows[r], c],
    /// summed into a register first, one thread per channel (strided by the group size).
    /// </summary>
    /// <param name="dTable">(V, C) table gradient, accumulated.</param>
    /// <param name="dOutput">(M, C) output gradient.</param>
    /// <param name="ids">(D) distinct ids, one per group.</param>
    /// <param name="offsets">(D + 1) start of each id's rows in <paramref name="rows"/>.</param>
    /// <param name="rows">(M) row indices grouped by id, increasing within each id.</param>
    /// <param name="channels">C.</param>
    public static void Backward(ArrayView<float> dTable, ArrayView<float> dOutput, ArrayView<int> ids,
        ArrayView<int> offsets, ArrayView<int> rows, int channels)
    {
        int g = Grid.IdxX, first = offsets[g], end = offsets[g + 1];
        long target = (long)ids[g] * channels;
        for (int c = Group.IdxX; c < channels; c += Group.DimX)
        {
            float sum = 0;
            for (int r = first; r < end; r++) sum += dOutput[(long)rows[r] * channels + c];
            dTable[target + c] += sum;
        }
    }
}

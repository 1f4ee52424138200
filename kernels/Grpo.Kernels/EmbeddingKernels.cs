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
    /// <param name="index">Thread i of <paramref name="threads"/>: elements i, i + threads, … of the flat (M·C) output
    /// (one flat dimension: CUDA's grid Y stops at 65,535, fewer rows than a packed batch can hold).</param>
    /// <param name="output">(M, C) output rows.</param>
    /// <param name="ids">(M) table row per output row, validated on the host.</param>
    /// <param name="table">(V, C) table.</param>
    /// <param name="positions">(M) position per row (any (M) int view when unused).</param>
    /// <param name="positionTable">(P, C) position table (any view when unused).</param>
    /// <param name="channels">C.</param>
    /// <param name="learned">1 to add the position rows, 0 to leave them out.</param>
    /// <param name="elements">M·C.</param>
    /// <param name="threads">Threads launched; each strides by it.</param>
    public static void Forward(Index1D index, ArrayView<float> output, ArrayView<int> ids, ArrayView<float> table,
        ArrayView<int> positions, ArrayView<float> positionTable, int channels, int learned, long elements, int threads)
    {
        for (long i = index; i < elements; i += threads)
        {
            int m = (int)(i / channels), c = (int)(i % channels);
            float value = table[(long)ids[m] * channels + c];
            if (learned != 0) value += positionTable[(long)positions[m] * channels + c];
            output[i] = value;
        }
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

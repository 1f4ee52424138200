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

/// <summary>The sizes of one embedding call.</summary>
/// <param name="M">Output rows.</param>
/// <param name="C">Channels.</param>
/// <param name="V">Rows of the table.</param>
/// <param name="P">Rows of the position table, 0 when there is none.</param>
internal readonly record struct EmbeddingShape(int M, int C, int V, int P);

/// <summary>Argument checks both backends run before an embedding lookup, so they reject the same inputs with the same messages.</summary>
internal static class EmbeddingValidation
{
    /// <summary>Checks the shapes of the forward (not the id values: see <see cref="Indices"/>).</summary>
    public static EmbeddingShape Forward(Tensor<float> output, Tensor<int> ids, Tensor<float> table,
        Tensor<int>? positions, Tensor<float>? positionTable)
    {
        var shape = Common(ids, table, nameof(table), positions, positionTable, nameof(positionTable));
        Guard.Shape(output, nameof(output), shape.M, shape.C);
        Aliasing.NoOverlap(output, nameof(output), table, nameof(table));
        Aliasing.NoOverlap(output, nameof(output), positionTable, nameof(positionTable));
        return shape;
    }

    /// <summary>Checks the shapes of the backward (not the id values: see <see cref="Indices"/>).</summary>
    public static EmbeddingShape Backward(Tensor<float> dTable, Tensor<float>? dPositionTable, Tensor<float> dOutput,
        Tensor<int> ids, Tensor<int>? positions)
    {
        var shape = Common(ids, dTable, nameof(dTable), positions, dPositionTable, nameof(dPositionTable));
        Guard.Shape(dOutput, nameof(dOutput), shape.M, shape.C);
        Aliasing.NoOverlap(dTable, nameof(dTable), dOutput, nameof(dOutput));
        Aliasing.NoOverlap(dPositionTable, nameof(dPositionTable), dOutput, nameof(dOutput));
        Aliasing.NoOverlap(dTable, nameof(dTable), dPositionTable, nameof(dPositionTable));
        return shape;
    }

    /// <summary>
    /// Throws unless every index lies in [0, <paramref name="rows"/>), naming the first bad row and its value.
    /// <paramref name="name"/> is "ids" or "positions"; <paramref name="tableName"/> the table they index.
    /// </summary>
    public static void Indices(ReadOnlySpan<int> indices, int rows, string name, string tableName)
    {
        for (int m = 0; m < indices.Length; m++)
        {
            int index = indices[m];
            if ((uint)index < (uint)rows) continue;
            string fix = name == "positions"
                ? "positions count from 0 within each sequence; truncate sequences to the model's context length"
                : "check the tokenizer's vocabulary (or the gathered row index) against the table";
            throw new ArgumentOutOfRangeException(name, index,
                $"'{name}'[{m}] is {index} but '{tableName}' has {rows} rows; every value must lie in [0, {rows}): {fix}.");
        }
    }

    private static EmbeddingShape Common(Tensor<int> ids, Tensor<float> table, string tableName,
        Tensor<int>? positions, Tensor<float>? positionTable, string positionTableName)
    {
        Guard.Rank(ids, nameof(ids), 1, "(rows) of table indices; flatten (B, T) ids to (B·T)");
        Guard.Rank(table, tableName, 2, "(rows, channels)");
        int m = ids.Shape[0], v = table.Shape[0], c = table.Shape[1];
        if (positionTable is null)
        {
            if (positions is not null)
                throw new ArgumentException(
                    $"'positions' was given but '{positionTableName}' is null; pass both (learned positions, GPT-2) or neither (rotary models).",
                    nameof(positions));
            return new EmbeddingShape(m, c, v, 0);
        }
        if (positions is null)
            throw new ArgumentException(
                $"'{positionTableName}' was given but 'positions' is null; pass the (M) position of every row, or neither.",
                nameof(positions));
        Guard.Rank(positionTable, positionTableName, 2, "(positions, channels)");
        if (positionTable.Shape[1] != c)
            throw new ArgumentException(
                $"'{positionTableName}' has shape {positionTable.Shape} but '{tableName}' has {c} channels; it must be ({positionTable.Shape[0]}, {c}).",
                positionTableName);
        Guard.Shape(positions, nameof(positions), m);
        return new EmbeddingShape(m, c, v, positionTable.Shape[0]);
    }
}

/// <summary>
/// The rows of every distinct index, in increasing row order (CSR): the rows that read table row
/// <c>Ids[g]</c> are <c>Rows[Offsets[g] .. Offsets[g + 1])</c>. Both backends' embedding backward
/// sum each table row's gradients in this order, so they are deterministic without atomics.
/// </summary>
internal sealed class EmbeddingRowLists
{
    private EmbeddingRowLists(int[] ids, int[] offsets, int[] rows)
    {
        Ids = ids;
        Offsets = offsets;
        Rows = rows;
    }

    /// <summary>(D) the distinct indices, increasing.</summary>
    public int[] Ids { get; }

    /// <summary>(D + 1) start of each index's rows in <see cref="Rows"/>.</summary>
    public int[] Offsets { get; }

    /// <summary>(M) the rows, grouped by index, increasing within each group.</summary>
    public int[] Rows { get; }

    /// <summary>Groups the rows of <paramref name="indices"/> (already validated) by index.</summary>
    public static EmbeddingRowLists Build(ReadOnlySpan<int> indices)
    {
        // Sorting (index, row) pairs gives the groups and, within each, the rows in increasing order.
        var keys = new long[indices.Length];
        for (int m = 0; m < indices.Length; m++) keys[m] = ((long)indices[m] << 32) | (uint)m;
        Array.Sort(keys);
        var ids = new List<int>();
        var offsets = new List<int>();
        var rows = new int[keys.Length];
        for (int r = 0; r < keys.Length; r++)
        {
            int index = (int)(keys[r] >> 32);
            if (r == 0 || index != ids[^1])
            {
                ids.Add(index);
                offsets.Add(r);
            }
            rows[r] = (int)(uint)keys[r];
        }
        offsets.Add(keys.Length);
        return new EmbeddingRowLists(ids.ToArray(), offsets.ToArray(), rows);
    }
}

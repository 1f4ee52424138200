using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>About this many output elements per work item of the forward: whole rows, enough of them to amortise the scheduling.</summary>
    private const int EmbeddingItemElements = 16 * 1024;

    public void EmbeddingForward(Tensor<float> output, Tensor<int> ids, Tensor<float> table,
        Tensor<int>? positions, Tensor<float>? positionTable)
    {
        var (m, c, v, p) = EmbeddingValidation.Forward(output, ids, table, positions, positionTable);
        CpuBuffer<float> y = Data(output, nameof(output)); // (M, C)
        CpuBuffer<int> id = Data(ids, nameof(ids));        // (M)
        CpuBuffer<float> wte = Data(table, nameof(table)); // (V, C)
        EmbeddingValidation.Indices(id, v, nameof(ids), nameof(table));
        bool learned = positionTable is not null;
        CpuBuffer<int> pos = learned ? Data(positions!, nameof(positions)) : default;              // (M)
        CpuBuffer<float> wpe = learned ? Data(positionTable!, nameof(positionTable)) : default;   // (P, C)
        if (learned) EmbeddingValidation.Indices(pos, p, nameof(positions), nameof(positionTable));

        int rowsPerItem = Math.Max(1, EmbeddingItemElements / c);
        Parallel.For(0, (m + rowsPerItem - 1) / rowsPerItem, Device.Parallelism, item =>
        {
            for (int r = item * rowsPerItem; r < Math.Min(m, (item + 1) * rowsPerItem); r++)
            {
                var row = y.AsSpan(r * c, c);           // (C)
                var token = wte.AsSpan(id[r] * c, c);   // (C)
                if (learned) TensorPrimitives.Add(token, wpe.AsSpan(pos[r] * c, c), row);
                else token.CopyTo(row);
            }
        });
    }

    public void EmbeddingBackward(Tensor<float> dTable, Tensor<float>? dPositionTable, Tensor<float> dOutput,
        Tensor<int> ids, Tensor<int>? positions)
    {
        var (_, c, v, p) = EmbeddingValidation.Backward(dTable, dPositionTable, dOutput, ids, positions);
        CpuBuffer<float> dO = Data(dOutput, nameof(dOutput)); // (M, C)
        CpuBuffer<int> id = Data(ids, nameof(ids));           // (M)
        EmbeddingValidation.Indices(id, v, nameof(ids), nameof(dTable));
        ScatterRows(Data(dTable, nameof(dTable)), dO, EmbeddingRowLists.Build(id), c);
        if (dPositionTable is not null)
        {
            CpuBuffer<int> pos = Data(positions!, nameof(positions)); // (M)
            EmbeddingValidation.Indices(pos, p, nameof(positions), nameof(dPositionTable));
            ScatterRows(Data(dPositionTable, nameof(dPositionTable)), dO, EmbeddingRowLists.Build(pos), c);
        }
    }

    /// <summary>
    /// dTable[id] += Σ dO rows of that id, one distinct id per work item: the rows are summed in
    /// increasing order into a scratch row, then added, so no two threads touch one table row and the
    /// order never depends on the thread count (it is the ILGPU kernel's order too).
    /// </summary>
    private void ScatterRows(CpuBuffer<float> dTable, CpuBuffer<float> dO, EmbeddingRowLists lists, int c)
    {
        Parallel.For(0, lists.Ids.Length, Device.Parallelism, () => new float[c], (g, _, sum) =>
        {
            Array.Clear(sum); // (C) Σ of this id's rows
            for (int r = lists.Offsets[g]; r < lists.Offsets[g + 1]; r++)
                TensorPrimitives.Add(sum, dO.AsSpan(lists.Rows[r] * c, c), sum);
            var target = dTable.AsSpan(lists.Ids[g] * c, c); // (C)
            TensorPrimitives.Add(target, sum, target);
            return sum;
        }, _ => { });
    }
}

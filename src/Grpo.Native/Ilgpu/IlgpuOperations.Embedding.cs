using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _embeddingGate = new();

    /// <summary>The uploaded row lists of the backward (ints in a float buffer), allocated on first use and grown when needed.</summary>
    private ReusableDeviceBuffer? _embeddingLists;

    public void EmbeddingForward(Tensor<float> output, Tensor<int> ids, Tensor<float> table,
        Tensor<int>? positions, Tensor<float>? positionTable)
    {
        var (m, c, v, p) = EmbeddingValidation.Forward(output, ids, table, positions, positionTable);
        var y = View(output, nameof(output)).BaseView;   // (M, C)
        var id = View(ids, nameof(ids)).BaseView;        // (M)
        var wte = View(table, nameof(table)).BaseView;   // (V, C)
        CheckIndexRange(ids, nameof(ids), values => EmbeddingValidation.Indices(values, v, nameof(ids), nameof(table)));
        bool learned = positionTable is not null;
        // Without a position table the kernel gets the token views and a flag telling it not to read them.
        var pos = learned ? View(positions!, nameof(positions)).BaseView : id;                 // (M)
        var wpe = learned ? View(positionTable!, nameof(positionTable)).BaseView : wte;        // (P, C)
        if (learned)
            CheckIndexRange(positions!, nameof(positions), values => EmbeddingValidation.Indices(values, p, nameof(positions), nameof(positionTable)));
        var forward = Device.Kernel(typeof(EmbeddingKernels), nameof(EmbeddingKernels.Forward), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>,
                ArrayView<int>, ArrayView<float>, int, int, long, int>(EmbeddingKernels.Forward));
        long elements = (long)m * c;
        int threads = FlatThreads(elements);
        if (threads > 0) forward(threads, y, id, wte, pos, wpe, c, learned ? 1 : 0, elements, threads);
    }

    public void EmbeddingBackward(Tensor<float> dTable, Tensor<float>? dPositionTable, Tensor<float> dOutput,
        Tensor<int> ids, Tensor<int>? positions)
    {
        var (m, c, v, p) = EmbeddingValidation.Backward(dTable, dPositionTable, dOutput, ids, positions);
        var dWte = View(dTable, nameof(dTable)).BaseView;  // (V, C)
        var dO = View(dOutput, nameof(dOutput)).BaseView;  // (M, C)
        var idHost = HostIndices(ids, nameof(ids));       // (M) what the host uploaded
        EmbeddingValidation.Indices(idHost, v, nameof(ids), nameof(dTable));
        var tokenLists = EmbeddingRowLists.Build(idHost);
        EmbeddingRowLists? positionLists = null;
        if (dPositionTable is not null)
        {
            var posHost = HostIndices(positions!, nameof(positions)); // (M)
            EmbeddingValidation.Indices(posHost, p, nameof(positions), nameof(dPositionTable));
            positionLists = EmbeddingRowLists.Build(posHost);
        }
        var backward = Device.Kernel(typeof(EmbeddingKernels), nameof(EmbeddingKernels.Backward), accelerator =>
            accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, int>(
                EmbeddingKernels.Backward));

        lock (_embeddingGate)
        {
            // One upload: [ids (D), offsets (D+1), rows (M)] for the tokens, then the same for the positions.
            int[] packed = Pack(tokenLists, positionLists);
            // Sized for the most distinct ids M rows can hold (D <= min(M, V)), not for this batch's D: the buffer then
            // depends on the shape alone, so a later step with more distinct tokens does not reallocate it (and sync).
            long bound = 2L * Math.Min(m, v) + 1 + m + (positionLists is null ? 0 : 2L * Math.Min(m, p) + 1 + m);
            var lists = EmbeddingLists(bound).Cast<int>(); // the same stream orders the copy after earlier kernels
            Device.Upload(lists.SubView(0, packed.Length), packed);
            long at = Launch(dWte, tokenLists, 0);
            if (positionLists is not null) Launch(View(dPositionTable!, nameof(dPositionTable)).BaseView, positionLists, at);

            long Launch(ArrayView<float> target, EmbeddingRowLists l, long start)
            {
                int d = l.Ids.Length;
                var distinct = lists.SubView(start, d);
                var offsets = lists.SubView(start + d, d + 1);
                var rows = lists.SubView(start + 2L * d + 1, m);
                backward(new KernelConfig(d, Device.RowGroupSize), target, dO, distinct, offsets, rows, c);
                return start + 2L * d + 1 + m;
            }
        }
    }

    private static int[] Pack(EmbeddingRowLists tokens, EmbeddingRowLists? positions)
    {
        var parts = positions is null
            ? new[] { tokens.Ids, tokens.Offsets, tokens.Rows }
            : new[] { tokens.Ids, tokens.Offsets, tokens.Rows, positions.Ids, positions.Offsets, positions.Rows };
        return parts.SelectMany(a => a).ToArray();
    }

    private ArrayView<float> EmbeddingLists(long length) => (_embeddingLists ??= new ReusableDeviceBuffer(Device)).Get(length);
}

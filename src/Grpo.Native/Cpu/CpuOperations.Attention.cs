using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>
    /// Rows per attention work item: the query rows of one score block (forward, dQ) or the key rows
    /// of one (dK/dV). A multiple of <see cref="CpuGemm.MR"/>; small enough that the causal triangle
    /// wastes little on the diagonal blocks and balances over threads.
    /// </summary>
    private const int AttentionBlockRows = 48;

    /// <summary>
    /// Sequences shorter than this are scored one dot product per (query, key) pair: for them the
    /// fixed cost of packing small matrix products outweighs what the products save. Depends on the
    /// sizes only, so the choice never changes with the thread count.
    /// </summary>
    private const int AttentionGemmMinLength = 16;

    /// <summary>
    /// The backward gives each long (sequence, kv head) pair to one work item when there are at least
    /// this many pairs (enough to keep the cores of a large machine busy); fewer, longer sequences
    /// are split into row blocks over two passes instead.
    /// </summary>
    private const int AttentionFusedMinItems = 32;

    /// <summary>The matrix products inside one work item run on the work item's own thread.</summary>
    private static readonly ParallelOptions AttentionSerial = new() { MaxDegreeOfParallelism = 1 };

    /// <summary>
    /// One work item: rows [First, End) of the sequence [SeqStart, SeqEnd) for one head (a query head
    /// for the forward and dQ, a kv head for dK/dV).
    /// </summary>
    private readonly record struct AttentionBlock(int SeqStart, int SeqEnd, int Head, int First, int End)
    {
        /// <summary>Whether this block's sequence is long enough for the blocked matrix-product path.</summary>
        public bool Blocked(int d) => d > 0 && SeqEnd - SeqStart >= AttentionGemmMinLength;
    }

    /// <summary>
    /// Per-thread scratch, rented for the life of one Parallel.For worker: two score blocks of
    /// <see cref="AttentionBlockRows"/> x the longest sequence (scores, then P; dP, then dS) and
    /// three D-length accumulators for the short-sequence path.
    /// </summary>
    private sealed class AttentionScratch
    {
        public readonly float[] Scores; // (AttentionBlockRows, longest) scores, then probabilities
        public readonly float[] Grads;  // (AttentionBlockRows, longest) dP, then dS (backward only)
        public readonly float[] A;      // (D)
        public readonly float[] B;      // (D)
        public readonly float[] Rows = new float[AttentionBlockRows]; // per-row 1/Σ exp of the forward

        public AttentionScratch(int longest, int d, bool backward)
        {
            int block = AttentionBlockRows * Math.Max(longest, 1);
            Scores = ArrayPool<float>.Shared.Rent(block);
            Grads = backward ? ArrayPool<float>.Shared.Rent(block) : [];
            A = ArrayPool<float>.Shared.Rent(Math.Max(d, 1));
            B = ArrayPool<float>.Shared.Rent(Math.Max(d, 1));
        }

        public void Return()
        {
            ArrayPool<float>.Shared.Return(Scores);
            if (Grads.Length > 0) ArrayPool<float>.Shared.Return(Grads);
            ArrayPool<float>.Shared.Return(A);
            ArrayPool<float>.Shared.Return(B);
        }
    }

    /// <summary>The buffers and sizes of one attention call, shared by its work items.</summary>
    private readonly record struct AttentionArgs(int H, int Kvh, int D, float Scale,
        CpuBuffer<float> Q, CpuBuffer<float> K, CpuBuffer<float> V, CpuBuffer<float> O, CpuBuffer<float> Lse,
        CpuBuffer<float> DO, CpuBuffer<float> DQ, CpuBuffer<float> DK, CpuBuffer<float> DV, float[] Delta)
    {
        public int Group => H / Kvh;

        /// <summary>Rows [first, first + rows) of query-layout tensor x (M, H, D) for one head: leading dimension H·D.</summary>
        public Span<float> QRows(CpuBuffer<float> x, int first, int rows, int head) =>
            x.AsSpan((first * H + head) * D, (rows - 1) * H * D + D);

        /// <summary>Rows [first, first + rows) of kv-layout tensor x (M, KVH, D) for one kv head: leading dimension KVH·D.</summary>
        public Span<float> KvRows(CpuBuffer<float> x, int first, int rows, int kvHead) =>
            x.AsSpan((first * Kvh + kvHead) * D, (rows - 1) * Kvh * D + D);
    }

    public void AttentionForward(Tensor<float> output, Tensor<float> logSumExp,
        Tensor<float> query, Tensor<float> key, Tensor<float> value, Tensor<int> seqStarts, float scale)
    {
        var (m, h, kvh, d, _) = AttentionValidation.Forward(output, logSumExp, query, key, value, seqStarts, scale);
        var x = new AttentionArgs(h, kvh, d, scale,
            Q: Data(query, nameof(query)),          // (M, H, D)
            K: Data(key, nameof(key)),              // (M, KVH, D)
            V: Data(value, nameof(value)),          // (M, KVH, D)
            O: Data(output, nameof(output)),        // (M, H, D)
            Lse: Data(logSumExp, nameof(logSumExp)), // (M, H)
            default, default, default, default, []);
        CpuBuffer<int> starts = Data(seqStarts, nameof(seqStarts)); // (B+1)
        int longest = AttentionValidation.SeqStarts(starts, m);

        var blocks = AttentionBlocks(starts, h);
        // Every (row, head) is computed by one thread in a fixed order: the result does not depend on the thread count.
        Parallel.For(0, blocks.Length, Device.Parallelism, () => new AttentionScratch(longest, d, backward: false), (n, _, scratch) =>
        {
            if (blocks[n].Blocked(d)) ForwardBlock(x, blocks[n], scratch);
            else ForwardRows(x, blocks[n], scratch);
            return scratch;
        }, scratch => scratch.Return());
    }

    /// <summary>
    /// Forward of one block of query rows as two small products: S = Q_blk·K_prefixᵀ over the causal
    /// prefix of the block's last row, a masked softmax per row, then O_blk = P·V_prefix / Σ.
    /// </summary>
    private static void ForwardBlock(in AttentionArgs x, AttentionBlock block, AttentionScratch scratch)
    {
        int head = block.Head, kvHead = head / x.Group, d = x.D;
        int rows = block.End - block.First, keys = block.End - block.SeqStart;
        var scores = scratch.Scores.AsSpan(0, rows * keys); // (rows, keys)
        CpuGemm.MultiplyTransposedB(AttentionSerial, rows, keys, d,
            x.QRows(x.Q, block.First, rows, head), x.H * d, x.KvRows(x.K, block.SeqStart, keys, kvHead), x.Kvh * d,
            scores, keys, accumulate: false);
        for (int r = 0; r < rows; r++)
        {
            int i = block.First + r, live = i - block.SeqStart + 1; // row i sees keys [SeqStart, i]
            var row = scores.Slice(r * keys, keys);
            var p = row[..live];
            float max = x.Scale * MaxOf(p); // scale > 0, so this is the largest scaled score exactly
            float sum = ExpScaled(p, x.Scale, max);
            row[live..].Clear(); // the causal mask
            x.Lse[i * x.H + head] = max + MathF.Log(sum);
            scratch.Rows[r] = 1f / sum;
        }
        var o = x.QRows(x.O, block.First, rows, head); // (rows, D) at leading dimension H·D
        CpuGemm.Multiply(AttentionSerial, rows, d, keys, scores, keys, x.KvRows(x.V, block.SeqStart, keys, kvHead), x.Kvh * d,
            o, x.H * d, accumulate: false);
        for (int r = 0; r < rows; r++)
        {
            var oi = o.Slice(r * x.H * d, d);
            TensorPrimitives.Multiply(oi, scratch.Rows[r], oi);
        }
    }

    /// <summary>Forward of one block of query rows, one dot product per (query, key) pair (short sequences).</summary>
    private static void ForwardRows(in AttentionArgs x, AttentionBlock block, AttentionScratch scratch)
    {
        int h = x.H, kvh = x.Kvh, d = x.D, head = block.Head, kvHead = head / x.Group;
        for (int i = block.First; i < block.End; i++)
        {
            int keys = i - block.SeqStart + 1;
            var scores = scratch.Scores.AsSpan(0, keys); // (keys) over the causal prefix of row i
            var qi = x.Q.AsSpan((i * h + head) * d, d);   // (D)
            for (int t = 0; t < keys; t++)
                scores[t] = TensorPrimitives.Dot(qi, x.K.AsSpan(((block.SeqStart + t) * kvh + kvHead) * d, d));
            TensorPrimitives.Multiply(scores, x.Scale, scores);
            float max = TensorPrimitives.Max(scores);
            TensorPrimitives.Subtract(scores, max, scores);
            TensorPrimitives.Exp(scores, scores);
            float sum = TensorPrimitives.Sum(scores);

            var oi = x.O.AsSpan((i * h + head) * d, d); // (D)
            oi.Clear();
            for (int t = 0; t < keys; t++)
                TensorPrimitives.MultiplyAdd(x.V.AsSpan(((block.SeqStart + t) * kvh + kvHead) * d, d), scores[t], oi, oi);
            TensorPrimitives.Multiply(oi, 1f / sum, oi);
            x.Lse[i * h + head] = max + MathF.Log(sum);
        }
    }

    public void AttentionBackward(Tensor<float> dQuery, Tensor<float> dKey, Tensor<float> dValue,
        Tensor<float> dOutput, Tensor<float> query, Tensor<float> key, Tensor<float> value,
        Tensor<float> output, Tensor<float> logSumExp, Tensor<int> seqStarts, float scale)
    {
        var (m, h, kvh, d, _) = AttentionValidation.Backward(dQuery, dKey, dValue, dOutput, query, key, value,
            output, logSumExp, seqStarts, scale);
        var x = new AttentionArgs(h, kvh, d, scale,
            Q: Data(query, nameof(query)),           // (M, H, D)
            K: Data(key, nameof(key)),               // (M, KVH, D)
            V: Data(value, nameof(value)),           // (M, KVH, D)
            O: Data(output, nameof(output)),         // (M, H, D)
            Lse: Data(logSumExp, nameof(logSumExp)), // (M, H)
            DO: Data(dOutput, nameof(dOutput)),      // (M, H, D)
            DQ: Data(dQuery, nameof(dQuery)),        // (M, H, D)
            DK: Data(dKey, nameof(dKey)),            // (M, KVH, D)
            DV: Data(dValue, nameof(dValue)),        // (M, KVH, D)
            Delta: new float[m * h]);                // (M, H) D_i = dO_i·O_i, needed by every key row of the prefix
        CpuBuffer<int> starts = Data(seqStarts, nameof(seqStarts)); // (B+1)
        int longest = AttentionValidation.SeqStarts(starts, m);

        // Long sequences with enough (sequence, kv head) pairs to share out: one work item per pair owns
        // that pair's dQ, dK and dV rows, so it computes all five products of a block once (no
        // recomputation) and still sums in a fixed order. Otherwise, and for short sequences, two
        // passes that split the rows finer. The choice depends on the sizes only.
        var fusedItems = new List<AttentionBlock>();
        for (int b = 0; b + 1 < starts.Length; b++)
            for (int kvHead = 0; kvHead < kvh; kvHead++)
                fusedItems.Add(new AttentionBlock(starts[b], starts[b + 1], kvHead, starts[b], starts[b + 1]));
        fusedItems.RemoveAll(item => !item.Blocked(d));
        bool fused = fusedItems.Count >= AttentionFusedMinItems;
        if (fused)
            Parallel.For(0, fusedItems.Count, Device.Parallelism, () => new AttentionScratch(longest, d, backward: true), (n, _, scratch) =>
            {
                var item = fusedItems[n];
                for (int head = item.Head * x.Group; head < (item.Head + 1) * x.Group; head++)
                    for (int first = item.SeqStart; first < item.SeqEnd; first += AttentionBlockRows)
                        QueryGradBlock(x, new AttentionBlock(item.SeqStart, item.SeqEnd, head, first,
                            Math.Min(item.SeqEnd, first + AttentionBlockRows)), scratch, keysAndValuesToo: true);
                return scratch;
            }, scratch => scratch.Return());

        // Pass 1, per query row (parallel over sequence, query head, row block): D_i and dQ_i += scale Σ_j dS_ij k_j.
        var queryBlocks = AttentionBlocks(starts, h);
        Parallel.For(0, queryBlocks.Length, Device.Parallelism, () => new AttentionScratch(longest, d, backward: true), (n, _, scratch) =>
        {
            var block = queryBlocks[n];
            if (!block.Blocked(d)) QueryGradRows(x, block, scratch);
            else if (!fused) QueryGradBlock(x, block, scratch, keysAndValuesToo: false);
            return scratch;
        }, scratch => scratch.Return());

        // Pass 2, per key row j (parallel over sequence, kv head, row block): the query heads of the
        // group and the rows i ≥ j in a fixed order, so dK/dV never depend on the thread count.
        var keyBlocks = AttentionBlocks(starts, kvh);
        Parallel.For(0, keyBlocks.Length, Device.Parallelism, () => new AttentionScratch(longest, d, backward: true), (n, _, scratch) =>
        {
            var block = keyBlocks[n];
            if (!block.Blocked(d)) KeyValueGradRows(x, block, scratch);
            else if (!fused) KeyValueGradBlock(x, block, scratch);
            return scratch;
        }, scratch => scratch.Return());
    }

    /// <summary>
    /// D_i and dQ of one block of query rows as small products over the causal prefix: P from
    /// S = Q_blk·Kᵀ and the saved lse, dP = dO_blk·Vᵀ, dS = P∘(dP − D), dQ_blk += (scale·dS)·K;
    /// and, when this work item owns the prefix's key rows, dK_prefix += (scale·dS)ᵀ·Q_blk and
    /// dV_prefix += Pᵀ·dO_blk.
    /// </summary>
    private static void QueryGradBlock(in AttentionArgs x, AttentionBlock block, AttentionScratch scratch, bool keysAndValuesToo)
    {
        int h = x.H, d = x.D, head = block.Head, kvHead = head / x.Group;
        int rows = block.End - block.First, keys = block.End - block.SeqStart;
        var qRows = x.QRows(x.Q, block.First, rows, head);   // (rows, D) at leading dimension H·D
        var dORows = x.QRows(x.DO, block.First, rows, head); // (rows, D)
        var kPrefix = x.KvRows(x.K, block.SeqStart, keys, kvHead); // (keys, D) at leading dimension KVH·D
        var p = scratch.Scores.AsSpan(0, rows * keys);  // (rows, keys)
        var ds = scratch.Grads.AsSpan(0, rows * keys);  // (rows, keys) dP, then scale·dS
        CpuGemm.MultiplyTransposedB(AttentionSerial, rows, keys, d, qRows, h * d, kPrefix, x.Kvh * d, p, keys, accumulate: false);
        CpuGemm.MultiplyTransposedB(AttentionSerial, rows, keys, d, dORows, h * d,
            x.KvRows(x.V, block.SeqStart, keys, kvHead), x.Kvh * d, ds, keys, accumulate: false);
        for (int r = 0; r < rows; r++)
        {
            int i = block.First + r, live = i - block.SeqStart + 1, row = (i * h + head) * d;
            float di = TensorPrimitives.Dot(x.DO.AsSpan(row, d), x.O.AsSpan(row, d));
            x.Delta[i * h + head] = di;
            ProbabilitiesAndScoreGrads(p.Slice(r * keys, live), ds.Slice(r * keys, live), x.Scale, x.Lse[i * h + head], di);
            ds.Slice(r * keys + live, keys - live).Clear(); // the causal mask
            if (keysAndValuesToo) p.Slice(r * keys + live, keys - live).Clear();
        }
        CpuGemm.Multiply(AttentionSerial, rows, d, keys, ds, keys, kPrefix, x.Kvh * d,
            x.QRows(x.DQ, block.First, rows, head), h * d, accumulate: true);
        if (!keysAndValuesToo) return;
        CpuGemm.MultiplyTransposedA(AttentionSerial, keys, d, rows, p, keys, dORows, h * d,
            x.KvRows(x.DV, block.SeqStart, keys, kvHead), x.Kvh * d, accumulate: true);
        CpuGemm.MultiplyTransposedA(AttentionSerial, keys, d, rows, ds, keys, qRows, h * d,
            x.KvRows(x.DK, block.SeqStart, keys, kvHead), x.Kvh * d, accumulate: true);
    }

    /// <summary>D_i and dQ of one block of query rows, one dot product per pair (short sequences).</summary>
    private static void QueryGradRows(in AttentionArgs x, AttentionBlock block, AttentionScratch scratch)
    {
        int h = x.H, kvh = x.Kvh, d = x.D, head = block.Head, kvHead = head / x.Group;
        for (int i = block.First; i < block.End; i++)
        {
            int keys = i - block.SeqStart + 1, row = (i * h + head) * d;
            var qi = x.Q.AsSpan(row, d);   // (D)
            var dOi = x.DO.AsSpan(row, d); // (D)
            float di = TensorPrimitives.Dot(dOi, x.O.AsSpan(row, d));
            x.Delta[i * h + head] = di;
            var ds = scratch.Scores.AsSpan(0, keys); // (keys) scores, then p, then dS
            for (int t = 0; t < keys; t++)
                ds[t] = TensorPrimitives.Dot(qi, x.K.AsSpan(((block.SeqStart + t) * kvh + kvHead) * d, d));
            TensorPrimitives.Multiply(ds, x.Scale, ds);
            TensorPrimitives.Subtract(ds, x.Lse[i * h + head], ds);
            TensorPrimitives.Exp(ds, ds);
            var acc = scratch.A.AsSpan(0, d); // (D) Σ_j dS_ij k_j
            acc.Clear();
            for (int t = 0; t < keys; t++)
            {
                int kv = ((block.SeqStart + t) * kvh + kvHead) * d;
                float dsij = ds[t] * (TensorPrimitives.Dot(dOi, x.V.AsSpan(kv, d)) - di);
                TensorPrimitives.MultiplyAdd(x.K.AsSpan(kv, d), dsij, acc, acc);
            }
            var dqi = x.DQ.AsSpan(row, d); // (D)
            TensorPrimitives.MultiplyAdd(acc, x.Scale, dqi, dqi);
        }
    }

    /// <summary>
    /// dK and dV of one block of key rows j ∈ [First, End) as small products over the query rows
    /// i ∈ [First, SeqEnd) that can see them, for each query head of the group in order:
    /// P from S = Q·K_blkᵀ, dP = dO·V_blkᵀ, dV_blk += Pᵀ·dO, dK_blk += (scale·dS)ᵀ·Q.
    /// </summary>
    private static void KeyValueGradBlock(in AttentionArgs x, AttentionBlock block, AttentionScratch scratch)
    {
        int h = x.H, d = x.D, kvHead = block.Head;
        int keys = block.End - block.First, rows = block.SeqEnd - block.First;
        var kBlock = x.KvRows(x.K, block.First, keys, kvHead);  // (keys, D) at leading dimension KVH·D
        var vBlock = x.KvRows(x.V, block.First, keys, kvHead);  // (keys, D)
        var dkBlock = x.KvRows(x.DK, block.First, keys, kvHead); // (keys, D)
        var dvBlock = x.KvRows(x.DV, block.First, keys, kvHead); // (keys, D)
        var p = scratch.Scores.AsSpan(0, rows * keys); // (rows, keys)
        var ds = scratch.Grads.AsSpan(0, rows * keys); // (rows, keys) dP, then scale·dS
        for (int head = kvHead * x.Group; head < (kvHead + 1) * x.Group; head++)
        {
            var qRows = x.QRows(x.Q, block.First, rows, head);   // (rows, D) at leading dimension H·D
            var dORows = x.QRows(x.DO, block.First, rows, head); // (rows, D)
            CpuGemm.MultiplyTransposedB(AttentionSerial, rows, keys, d, qRows, h * d, kBlock, x.Kvh * d, p, keys, accumulate: false);
            CpuGemm.MultiplyTransposedB(AttentionSerial, rows, keys, d, dORows, h * d, vBlock, x.Kvh * d, ds, keys, accumulate: false);
            for (int r = 0; r < rows; r++)
            {
                int i = block.First + r, live = Math.Min(keys, r + 1); // row i sees keys j ≤ i
                ProbabilitiesAndScoreGrads(p.Slice(r * keys, live), ds.Slice(r * keys, live), x.Scale,
                    x.Lse[i * h + head], x.Delta[i * h + head]);
                p.Slice(r * keys + live, keys - live).Clear(); // the causal mask
                ds.Slice(r * keys + live, keys - live).Clear();
            }
            CpuGemm.MultiplyTransposedA(AttentionSerial, keys, d, rows, p, keys, dORows, h * d, dvBlock, x.Kvh * d, accumulate: true);
            CpuGemm.MultiplyTransposedA(AttentionSerial, keys, d, rows, ds, keys, qRows, h * d, dkBlock, x.Kvh * d, accumulate: true);
        }
    }

    /// <summary>dK and dV of one block of key rows, one dot product per pair (short sequences).</summary>
    private static void KeyValueGradRows(in AttentionArgs x, AttentionBlock block, AttentionScratch scratch)
    {
        int h = x.H, kvh = x.Kvh, d = x.D, group = x.Group, kvHead = block.Head;
        var dkAcc = scratch.A.AsSpan(0, d); // (D) Σ_i dS_ij q_i
        var dvAcc = scratch.B.AsSpan(0, d); // (D) Σ_i p_ij dO_i
        for (int j = block.First; j < block.End; j++)
        {
            int kv = (j * kvh + kvHead) * d;
            var kj = x.K.AsSpan(kv, d); // (D)
            var vj = x.V.AsSpan(kv, d); // (D)
            dkAcc.Clear();
            dvAcc.Clear();
            for (int head = kvHead * group; head < (kvHead + 1) * group; head++)
            {
                for (int i = j; i < block.SeqEnd; i++)
                {
                    int row = (i * h + head) * d;
                    var qi = x.Q.AsSpan(row, d);   // (D)
                    var dOi = x.DO.AsSpan(row, d); // (D)
                    float p = MathF.Exp(x.Scale * TensorPrimitives.Dot(qi, kj) - x.Lse[i * h + head]);
                    float dsij = p * (TensorPrimitives.Dot(dOi, vj) - x.Delta[i * h + head]);
                    TensorPrimitives.MultiplyAdd(dOi, p, dvAcc, dvAcc);
                    TensorPrimitives.MultiplyAdd(qi, dsij, dkAcc, dkAcc);
                }
            }
            var dkj = x.DK.AsSpan(kv, d); // (D)
            var dvj = x.DV.AsSpan(kv, d); // (D)
            TensorPrimitives.MultiplyAdd(dkAcc, x.Scale, dkj, dkj);
            TensorPrimitives.Add(dvAcc, dvj, dvj);
        }
    }

    // Row kernels of the blocked path, fused into one Vector256 pass each: the rows are short (a
    // block's causal prefix), so separate TensorPrimitives calls per step cost more in call overhead
    // than in arithmetic. Vector lanes, then the tail, in a fixed order: deterministic.

    /// <summary>The largest element of a non-empty row.</summary>
    private static float MaxOf(ReadOnlySpan<float> row)
    {
        ref float r = ref MemoryMarshal.GetReference(row);
        int n = row.Length, t = 0;
        float max = float.NegativeInfinity;
        if (n >= 8)
        {
            var m = Vector256.LoadUnsafe(ref r);
            for (t = 8; t <= n - 8; t += 8) m = Vector256.Max(m, Vector256.LoadUnsafe(ref r, (nuint)t));
            for (int lane = 0; lane < 8; lane++) max = MathF.Max(max, m[lane]);
        }
        for (; t < n; t++) max = MathF.Max(max, Unsafe.Add(ref r, t));
        return max;
    }

    /// <summary>row ← exp(scale·row − shift) in place; returns the row's sum.</summary>
    private static float ExpScaled(Span<float> row, float scale, float shift)
    {
        ref float r = ref MemoryMarshal.GetReference(row);
        int n = row.Length, t = 0;
        var vScale = Vector256.Create(scale);
        var vShift = Vector256.Create(shift);
        var acc = Vector256<float>.Zero;
        for (; t <= n - 8; t += 8)
        {
            var p = Vector256.Exp(Vector256.LoadUnsafe(ref r, (nuint)t) * vScale - vShift);
            p.StoreUnsafe(ref r, (nuint)t);
            acc += p;
        }
        float sum = Vector256.Sum(acc);
        for (; t < n; t++)
        {
            float p = MathF.Exp(Unsafe.Add(ref r, t) * scale - shift);
            Unsafe.Add(ref r, t) = p;
            sum += p;
        }
        return sum;
    }

    /// <summary>
    /// From a row of scores and of dP = dO·v: p ← exp(scale·s − lse) and dS ← scale·p·(dP − delta),
    /// the latter pre-scaled so the products that use it need no extra pass.
    /// </summary>
    private static void ProbabilitiesAndScoreGrads(Span<float> scores, Span<float> dp, float scale, float lse, float delta)
    {
        ref float s = ref MemoryMarshal.GetReference(scores);
        ref float g = ref MemoryMarshal.GetReference(dp);
        int n = scores.Length, t = 0;
        var vScale = Vector256.Create(scale);
        var vLse = Vector256.Create(lse);
        var vDelta = Vector256.Create(delta);
        for (; t <= n - 8; t += 8)
        {
            var p = Vector256.Exp(Vector256.LoadUnsafe(ref s, (nuint)t) * vScale - vLse);
            p.StoreUnsafe(ref s, (nuint)t);
            ((Vector256.LoadUnsafe(ref g, (nuint)t) - vDelta) * p * vScale).StoreUnsafe(ref g, (nuint)t);
        }
        for (; t < n; t++)
        {
            float p = MathF.Exp(Unsafe.Add(ref s, t) * scale - lse);
            Unsafe.Add(ref s, t) = p;
            Unsafe.Add(ref g, t) = (Unsafe.Add(ref g, t) - delta) * p * scale;
        }
    }

    /// <summary>
    /// Work items over (sequence, head, block of rows); empty sequences give none, and no item ever
    /// spans two sequences.
    /// </summary>
    private static AttentionBlock[] AttentionBlocks(ReadOnlySpan<int> starts, int heads)
    {
        var blocks = new List<AttentionBlock>();
        for (int b = 0; b + 1 < starts.Length; b++)
        {
            int start = starts[b], end = starts[b + 1];
            for (int head = 0; head < heads; head++)
                for (int first = start; first < end; first += AttentionBlockRows)
                    blocks.Add(new AttentionBlock(start, end, head, first, Math.Min(end, first + AttentionBlockRows)));
        }
        return blocks.ToArray();
    }
}

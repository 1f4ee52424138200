using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// KV-cache writes and decode attention on every backend: against the double reference, against the
/// existing packed <c>AttentionForward</c> (a decoded row must equal the last token of the same
/// sequence), over a whole rollout (prefill fan-out to G slots, then decode steps), and validation.
/// </summary>
public sealed class KvCacheTests
{
    // Σ_j p_j v_j adds values of both signs, so an output near zero keeps the ~1e-7 absolute error of its O(1) terms: each
    // output is judged against Σ_j p_j |v_j| (the reference run on |v|; p does not depend on v), with AttentionTests'
    // derivation for S ≤ 40 keys and D ≤ 33: (264 + 40 + 10)·2^-24 = 1.9e-5 < 5e-5. Two fp32 results (decode against
    // AttentionForward) are each within that of the exact output, so within twice it of each other. (Element-relative
    // against a measured 2e-4, a decode of 8 outputs read 0.66 of it in a stress run.)
    private const double ScaledOutputTolerance = 5e-5;

    // Decode shapes: the length each row attends to, capacity L, H, KVH, D. The cache has R + 2 slots, so
    // at least two are never read (and left NaN), and the rows read their slots in a shuffled order.
    private static readonly (int[] Lengths, int L, int H, int Kvh, int D)[] DecodeShapes =
    [
        ([1], 1, 1, 1, 8),
        ([1, 9, 4, 9, 2], 9, 4, 2, 33),
        ([7, 1, 12], 12, 6, 1, 16),
        ([17, 3, 16, 1], 20, 4, 4, 8),
        ([40, 23], 40, 4, 2, 33),
    ];

    public static IEnumerable<TestCaseData> DecodeCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in DecodeShapes
        select new TestCaseData(kind, s.Lengths, s.L, s.H, s.Kvh, s.D));

    // Write shapes: source rows M, writes W, slots S, capacity L, KVH, D (W > M: rows fan out to several cells).
    private static readonly (int M, int W, int S, int L, int Kvh, int D)[] WriteShapes =
    [
        (1, 1, 1, 1, 1, 8),
        (3, 12, 4, 5, 2, 33),
        (7, 7, 3, 9, 1, 16),
        (5, 40, 6, 7, 4, 3),
    ];

    public static IEnumerable<TestCaseData> WriteCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in WriteShapes
        select new TestCaseData(kind, s.M, s.W, s.S, s.L, s.Kvh, s.D));

    // Sequence lengths of a packed batch, H, KVH, D.
    private static readonly (int[] Lengths, int H, int Kvh, int D)[] PackedShapes =
    [
        ([1, 5, 9], 4, 2, 33),
        ([7, 1, 3], 6, 1, 16),
        ([17], 1, 1, 8),
        ([2, 20], 4, 4, 5),
    ];

    public static IEnumerable<TestCaseData> PackedCases() =>
        from kind in TestDevices.Kinds()
        from s in PackedShapes
        select new TestCaseData(kind, s.Lengths, s.H, s.Kvh, s.D);

    private static int[] Shuffled(Random random, int count)
    {
        int[] order = Enumerable.Range(0, count).ToArray();
        random.Shuffle(order);
        return order;
    }

    private static int CacheIndex(int slot, int position, int l, int kvh, int d) => (slot * l + position) * kvh * d;

    /// <summary>One decode call's host inputs: caches NaN beyond every slot's longest length and in unread slots.</summary>
    private sealed record DecodeInputs(int S, int L, int H, int Kvh, int D, float Scale, int[] Slots, int[] Lengths,
        float[] Q, float[] KeyCache, float[] ValueCache)
    {
        public int R => Slots.Length;

        public double[] Reference() => KvCacheReference.Decode(TestRandom.ToDouble(Q), TestRandom.ToDouble(KeyCache),
            TestRandom.ToDouble(ValueCache), Slots, Lengths, H, Kvh, D, L, Scale);

        /// <summary>Σ_j p_j |v_j| (R, H, D): the output's scale, the reference decode of |v| (p does not depend on v).</summary>
        public double[] OutputScale() => KvCacheReference.Decode(TestRandom.ToDouble(Q), TestRandom.ToDouble(KeyCache),
            Array.ConvertAll(TestRandom.ToDouble(ValueCache), Math.Abs), Slots, Lengths, H, Kvh, D, L, Scale);
    }

    private static DecodeInputs DrawDecode(Random random, int[] lengths, int l, int h, int kvh, int d)
    {
        int r = lengths.Length, s = r + 2, row = kvh * d;
        int[] slots = Shuffled(random, s)[..r];
        var kc = new float[s * l * row];
        var vc = new float[s * l * row];
        // NaN everywhere a row must not read: 0 · NaN is NaN, so one stray read poisons the output.
        Array.Fill(kc, float.NaN);
        Array.Fill(vc, float.NaN);
        for (int i = 0; i < r; i++)
        {
            int at = CacheIndex(slots[i], 0, l, kvh, d);
            TestRandom.Normal(random, lengths[i] * row).CopyTo(kc, at);
            TestRandom.Normal(random, lengths[i] * row).CopyTo(vc, at);
        }
        return new DecodeInputs(s, l, h, kvh, d, 1f / MathF.Sqrt(d), slots, lengths, TestRandom.Normal(random, r * h * d), kc, vc);
    }

    /// <summary>Runs AttentionDecode on the device and returns its output (poisoned first).</summary>
    private static float[] Decode(Device device, DecodeInputs x)
    {
        using var q = device.FromArray<float>(x.Q, x.R, x.H, x.D);
        using var kc = device.FromArray<float>(x.KeyCache, x.S, x.L, x.Kvh, x.D);
        using var vc = device.FromArray<float>(x.ValueCache, x.S, x.L, x.Kvh, x.D);
        using var slots = device.FromArray<int>(x.Slots, x.R);
        using var lengths = device.FromArray<int>(x.Lengths, x.R);
        using var output = Poison.Fill(device.Allocate<float>(x.R, x.H, x.D));
        device.Operations.AttentionDecode(output, q, kc, vc, slots, lengths, x.Scale);
        device.Synchronize();
        return output.ToArray();
    }

    [TestCaseSource(nameof(DecodeCases))]
    public void DecodeMatchesReference(DeviceKind kind, int[] lengths, int l, int h, int kvh, int d)
    {
        var device = TestDevices.Get(kind);
        var x = DrawDecode(TestRandom.Create(), lengths, l, h, kvh, d);
        Assert.That(x.KeyCache.Count(float.IsNaN), Is.GreaterThan(0), "the unread cache cells are poisoned");
        Compare.WorstScaledError("output", x.Reference(), x.OutputScale(), Decode(device, x), ScaledOutputTolerance);
    }

    /// <summary>One write call's host inputs: caches of known values, distinct cells in shuffled order, repeated source rows.</summary>
    private sealed record WriteInputs(int M, int S, int L, int Kvh, int D, float[] Key, float[] Value,
        int[] SourceRows, int[] Slots, int[] Positions, float[] KeyCache, float[] ValueCache);

    private static WriteInputs DrawWrite(Random random, int m, int w, int s, int l, int kvh, int d)
    {
        int[] cells = Shuffled(random, s * l)[..w];
        // Every source row at least once (where W ≥ M), then random ones: W > M fans rows out.
        int[] rows = Enumerable.Range(0, w).Select(i => i < m ? i : random.Next(m)).ToArray();
        random.Shuffle(rows);
        int cache = s * l * kvh * d;
        return new WriteInputs(m, s, l, kvh, d, TestRandom.Normal(random, m * kvh * d), TestRandom.Normal(random, m * kvh * d),
            rows, cells.Select(c => c / l).ToArray(), cells.Select(c => c % l).ToArray(),
            TestRandom.Normal(random, cache), TestRandom.Normal(random, cache));
    }

    [TestCaseSource(nameof(WriteCases))]
    public void WriteMatchesReference(DeviceKind kind, int m, int w, int s, int l, int kvh, int d)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = DrawWrite(random, m, w, s, l, kvh, d);
        int cache = s * l * kvh * d;
        // Both caches are slices of one buffer (as a model keeps its layers' caches), with elements around
        // them that no write may touch.
        const int before = 3, gap = 2, after = 5;
        float[] all = TestRandom.Normal(random, before + cache + gap + cache + after);
        x.KeyCache.CopyTo(all, before);
        x.ValueCache.CopyTo(all, before + cache + gap);
        using var buffer = device.FromArray<float>(all, all.Length);
        var kc = buffer.Slice(before, s, l, kvh, d);
        var vc = buffer.Slice(before + cache + gap, s, l, kvh, d);
        using var key = device.FromArray<float>(x.Key, m, kvh, d);
        using var value = device.FromArray<float>(x.Value, m, kvh, d);
        using var rows = device.FromArray<int>(x.SourceRows, w);
        using var slots = device.FromArray<int>(x.Slots, w);
        using var positions = device.FromArray<int>(x.Positions, w);
        device.Operations.KvCacheWrite(kc, vc, key, value, rows, slots, positions);
        device.Synchronize();

        var (ek, ev) = KvCacheReference.Write(TestRandom.ToDouble(x.KeyCache), TestRandom.ToDouble(x.ValueCache),
            TestRandom.ToDouble(x.Key), TestRandom.ToDouble(x.Value), x.SourceRows, x.Slots, x.Positions, l, kvh, d);
        var expected = (float[])all.Clone();
        Array.ConvertAll(ek, v => (float)v).CopyTo(expected, before);
        Array.ConvertAll(ev, v => (float)v).CopyTo(expected, before + cache + gap);
        // A copy is exact: every element, written or not, inside the caches or around them, must match bit for bit.
        Assert.That(buffer.ToArray(), Is.EqualTo(expected));
    }

    /// <summary>Row offsets of packed sequences: 0, l0, l0 + l1, ...</summary>
    private static int[] Starts(int[] lengths)
    {
        var starts = new int[lengths.Length + 1];
        for (int b = 0; b < lengths.Length; b++) starts[b + 1] = starts[b] + lengths[b];
        return starts;
    }

    /// <summary>The rows [first, first + count) of a (rows, width) host array.</summary>
    private static float[] Rows(float[] data, int width, int first, int count) => data.AsSpan(first * width, count * width).ToArray();

    [TestCaseSource(nameof(PackedCases))]
    public void DecodeOfTheLastTokenEqualsAttentionForward(DeviceKind kind, int[] lengths, int h, int kvh, int d)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        int[] starts = Starts(lengths);
        int m = starts[^1], b = lengths.Length, l = lengths.Max(), s = b + 1;
        float scale = 1f / MathF.Sqrt(d);
        float[] q = TestRandom.Normal(random, m * h * d), k = TestRandom.Normal(random, m * kvh * d), v = TestRandom.Normal(random, m * kvh * d);

        // The existing packed causal attention.
        using var query = device.FromArray<float>(q, m, h, d);
        using var key = device.FromArray<float>(k, m, kvh, d);
        using var value = device.FromArray<float>(v, m, kvh, d);
        using var seqStarts = device.FromArray<int>(starts, b + 1);
        using var forward = Poison.Fill(device.Allocate<float>(m, h, d));
        using var lse = device.Allocate<float>(m, h);
        device.Operations.AttentionForward(forward, lse, query, key, value, seqStarts, scale);

        // Sequence i's rows into a shuffled slot of a NaN-poisoned cache, position = index in the sequence.
        int[] slotOf = Shuffled(random, s)[..b];
        int[] seqOf = Enumerable.Range(0, b).SelectMany(i => Enumerable.Repeat(i, lengths[i])).ToArray();
        using var keyCache = Poison.Fill(device.Allocate<float>(s, l, kvh, d));
        using var valueCache = Poison.Fill(device.Allocate<float>(s, l, kvh, d));
        using var sourceRows = device.FromArray<int>(Enumerable.Range(0, m).ToArray(), m);
        using var writeSlots = device.FromArray<int>(seqOf.Select(i => slotOf[i]).ToArray(), m);
        using var positions = device.FromArray<int>(Enumerable.Range(0, m).Select(j => j - starts[seqOf[j]]).ToArray(), m);
        device.Operations.KvCacheWrite(keyCache, valueCache, key, value, sourceRows, writeSlots, positions);

        // Decode the last token of every sequence: its query, its slot, the whole sequence as length.
        float[] lastQ = Enumerable.Range(0, b).SelectMany(i => Rows(q, h * d, starts[i + 1] - 1, 1)).ToArray();
        using var decodeQuery = device.FromArray<float>(lastQ, b, h, d);
        using var slots = device.FromArray<int>(slotOf, b);
        using var decodeLengths = device.FromArray<int>(lengths, b);
        using var output = Poison.Fill(device.Allocate<float>(b, h, d));
        device.Operations.AttentionDecode(output, decodeQuery, keyCache, valueCache, slots, decodeLengths, scale);
        device.Synchronize();

        float[] all = forward.ToArray();
        double[] expected = Enumerable.Range(0, b).SelectMany(i => Rows(all, h * d, starts[i + 1] - 1, 1)).Select(x => (double)x).ToArray();
        double[] outputScale = AttentionReference.Forward(TestRandom.ToDouble(q), TestRandom.ToDouble(k),
            Array.ConvertAll(TestRandom.ToDouble(v), Math.Abs), starts, m, h, kvh, d, scale).Output; // (M, H, D) Σ p|v|
        double[] lastScale = Enumerable.Range(0, b).SelectMany(i => outputScale.AsSpan((starts[i + 1] - 1) * h * d, h * d).ToArray()).ToArray();
        Compare.WorstScaledError("decode vs AttentionForward's last tokens", expected, lastScale, output.ToArray(), 2 * ScaledOutputTolerance);
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ARolloutDecodesWhatAttentionForwardComputesOverTheFinishedSequences(DeviceKind kind)
    {
        // B prompts of different lengths, G slots each (shuffled; one spare slot never used), T decode steps.
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        int[] promptLengths = [3, 5];
        const int g = 3, steps = 4, h = 6, kvh = 2, d = 9;
        int b = promptLengths.Length, r = b * g, s = r + 1, l = promptLengths.Max() + steps;
        float scale = 1f / MathF.Sqrt(d);
        int[] promptStarts = Starts(promptLengths);
        int mp = promptStarts[^1], kvRow = kvh * d, qRow = h * d;
        int[] slotOf = Shuffled(random, s)[..r]; // completion r = prompt r / G, member r % G
        float[] pk = TestRandom.Normal(random, mp * kvRow), pv = TestRandom.Normal(random, mp * kvRow);

        using var keyCache = Poison.Fill(device.Allocate<float>(s, l, kvh, d));
        using var valueCache = Poison.Fill(device.Allocate<float>(s, l, kvh, d));
        // Prefill fan-out: every prompt row to the G slots of its group, at its position in the prompt.
        var fan = (from c in Enumerable.Range(0, r) from j in Enumerable.Range(0, promptLengths[c / g])
                   select (Row: promptStarts[c / g] + j, Slot: slotOf[c], Position: j)).ToArray();
        using (var pkT = device.FromArray<float>(pk, mp, kvh, d))
        using (var pvT = device.FromArray<float>(pv, mp, kvh, d))
        using (var rows = device.FromArray<int>(fan.Select(f => f.Row).ToArray(), fan.Length))
        using (var slots = device.FromArray<int>(fan.Select(f => f.Slot).ToArray(), fan.Length))
        using (var positions = device.FromArray<int>(fan.Select(f => f.Position).ToArray(), fan.Length))
            device.Operations.KvCacheWrite(keyCache, valueCache, pkT, pvT, rows, slots, positions);

        // Decode steps: one new q/k/v row per completion, written at the next position, then attended.
        var stepQ = new float[steps][];
        var stepK = new float[steps][];
        var stepV = new float[steps][];
        var decoded = new float[steps][];
        using var q = device.Allocate<float>(r, h, d);
        using var k = device.Allocate<float>(r, kvh, d);
        using var v = device.Allocate<float>(r, kvh, d);
        using var output = device.Allocate<float>(r, h, d);
        using var identity = device.FromArray<int>(Enumerable.Range(0, r).ToArray(), r);
        using var decodeSlots = device.FromArray<int>(slotOf, r);
        using var stepPositions = device.Allocate<int>(r);
        using var stepLengths = device.Allocate<int>(r);
        for (int t = 0; t < steps; t++)
        {
            (stepQ[t], stepK[t], stepV[t]) = (TestRandom.Normal(random, r * qRow), TestRandom.Normal(random, r * kvRow), TestRandom.Normal(random, r * kvRow));
            q.CopyFrom(stepQ[t]);
            k.CopyFrom(stepK[t]);
            v.CopyFrom(stepV[t]);
            int[] position = Enumerable.Range(0, r).Select(c => promptLengths[c / g] + t).ToArray();
            stepPositions.CopyFrom(position);
            stepLengths.CopyFrom(position.Select(p => p + 1).ToArray());
            device.Operations.KvCacheWrite(keyCache, valueCache, k, v, identity, decodeSlots, stepPositions);
            Poison.Fill(output);
            device.Operations.AttentionDecode(output, q, keyCache, valueCache, decodeSlots, stepLengths, scale);
            decoded[t] = output.ToArray();
        }

        // The finished completions as packed sequences (prompt rows, then the decoded rows), through AttentionForward.
        int[] lengths = Enumerable.Range(0, r).Select(c => promptLengths[c / g] + steps).ToArray();
        int[] starts = Starts(lengths);
        int m = starts[^1];
        var packedQ = new List<float>(m * qRow);
        var packedK = new List<float>(m * kvRow);
        var packedV = new List<float>(m * kvRow);
        for (int c = 0; c < r; c++)
        {
            int p = c / g;
            packedQ.AddRange(TestRandom.Normal(random, promptLengths[p] * qRow)); // prompt queries: not compared
            packedK.AddRange(Rows(pk, kvRow, promptStarts[p], promptLengths[p]));
            packedV.AddRange(Rows(pv, kvRow, promptStarts[p], promptLengths[p]));
            for (int t = 0; t < steps; t++)
            {
                packedQ.AddRange(Rows(stepQ[t], qRow, c, 1));
                packedK.AddRange(Rows(stepK[t], kvRow, c, 1));
                packedV.AddRange(Rows(stepV[t], kvRow, c, 1));
            }
        }
        using var fq = device.FromArray<float>(packedQ.ToArray(), m, h, d);
        using var fk = device.FromArray<float>(packedK.ToArray(), m, kvh, d);
        using var fv = device.FromArray<float>(packedV.ToArray(), m, kvh, d);
        using var seqStarts = device.FromArray<int>(starts, r + 1);
        using var forward = device.Allocate<float>(m, h, d);
        using var lse = device.Allocate<float>(m, h);
        device.Operations.AttentionForward(forward, lse, fq, fk, fv, seqStarts, scale);
        float[] all = forward.ToArray();
        double[] outputScale = AttentionReference.Forward(TestRandom.ToDouble(packedQ.ToArray()), TestRandom.ToDouble(packedK.ToArray()),
            Array.ConvertAll(TestRandom.ToDouble(packedV.ToArray()), Math.Abs), starts, m, h, kvh, d, scale).Output; // (M, H, D) Σ p|v|
        for (int t = 0; t < steps; t++)
        {
            int[] rowsOfStep = Enumerable.Range(0, r).Select(c => starts[c] + promptLengths[c / g] + t).ToArray();
            double[] expected = rowsOfStep.SelectMany(row => Rows(all, qRow, row, 1)).Select(x => (double)x).ToArray();
            double[] stepScale = rowsOfStep.SelectMany(row => outputScale.AsSpan(row * qRow, qRow).ToArray()).ToArray();
            Compare.WorstScaledError($"step {t}: decode vs AttentionForward", expected, stepScale, decoded[t], 2 * ScaledOutputTolerance);
        }
    }

    [Test]
    public void CpuResultsDoNotDependOnTheThreadCount()
    {
        var random = TestRandom.Create();
        // H = 6 splits into uneven head blocks; several rows of different lengths.
        var x = DrawDecode(random, [1, 33, 17, 40, 2, 25], 40, 6, 2, 33);
        var w = DrawWrite(random, 5, 30, 4, 9, 2, 33);
        (float[] Decoded, float[] Keys, float[] Values) RunOn(int threads)
        {
            using var device = new CpuDevice(threads);
            float[] decoded = Decode(device, x);
            using var kc = device.FromArray<float>(w.KeyCache, w.S, w.L, w.Kvh, w.D);
            using var vc = device.FromArray<float>(w.ValueCache, w.S, w.L, w.Kvh, w.D);
            using var key = device.FromArray<float>(w.Key, w.M, w.Kvh, w.D);
            using var value = device.FromArray<float>(w.Value, w.M, w.Kvh, w.D);
            using var rows = device.FromArray<int>(w.SourceRows, w.SourceRows.Length);
            using var slots = device.FromArray<int>(w.Slots, w.Slots.Length);
            using var positions = device.FromArray<int>(w.Positions, w.Positions.Length);
            device.Operations.KvCacheWrite(kc, vc, key, value, rows, slots, positions);
            return (decoded, kc.ToArray(), vc.ToArray());
        }
        var one = RunOn(1);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var many = RunOn(threads);
            Assert.That(many.Decoded, Is.EqualTo(one.Decoded), $"decode output with {threads} threads");
            Assert.That(many.Keys, Is.EqualTo(one.Keys), $"key cache with {threads} threads");
            Assert.That(many.Values, Is.EqualTo(one.Values), $"value cache with {threads} threads");
        }
    }

    /// <summary>
    /// Small valid tensors for the validation tests: caches (S = 3, L = 4, KVH = 2, D = 3), M = 2 key/value
    /// rows, W = 3 writes, R = 2 decode rows of H = 4 heads.
    /// </summary>
    private sealed class Small : IDisposable
    {
        public const int S = 3, L = 4, Kvh = 2, D = 3, M = 2, W = 3, R = 2, H = 4;

        public Small(Device device)
        {
            KeyCache = device.Allocate<float>(S, L, Kvh, D);
            ValueCache = device.Allocate<float>(S, L, Kvh, D);
            KeyCache.Fill(1);
            ValueCache.Fill(2);
            Key = device.Allocate<float>(M, Kvh, D);
            Value = device.Allocate<float>(M, Kvh, D);
            Key.Fill(3);
            Value.Fill(4);
            SourceRows = device.FromArray<int>([0, 1, 1], W);
            WriteSlots = device.FromArray<int>([2, 0, 1], W);
            Positions = device.FromArray<int>([0, 3, 3], W);
            Query = device.Allocate<float>(R, H, D);
            Output = device.Allocate<float>(R, H, D);
            Slots = device.FromArray<int>([2, 0], R);
            Lengths = device.FromArray<int>([1, L], R);
        }

        public readonly Tensor<float> KeyCache, ValueCache, Key, Value, Query, Output;
        public readonly Tensor<int> SourceRows, WriteSlots, Positions, Slots, Lengths;

        public void Dispose()
        {
            foreach (var t in new[] { KeyCache, ValueCache, Key, Value, Query, Output }) t.Dispose();
            foreach (var t in new[] { SourceRows, WriteSlots, Positions, Slots, Lengths }) t.Dispose();
        }
    }

    private static void ExpectOutOfRange(TestDelegate call, string name, string fragment)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(call)!;
        Assert.That(ex.ParamName, Is.EqualTo(name), ex.Message);
        Assert.That(ex.Message, Does.Contain(fragment));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsOutOfRangeWriteIndices(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var x = new Small(device);
        var ops = device.Operations;
        // (which list, the index made bad, its value)
        var cases = new (string Name, int Index, int Value)[]
        {
            ("sourceRows", 1, Small.M), ("sourceRows", 2, -1),
            ("slots", 0, Small.S), ("slots", 2, -1),
            ("positions", 1, Small.L), ("positions", 0, -3),
        };
        foreach (var (name, index, bad) in cases)
        {
            int[] rows = [0, 1, 1], slots = [2, 0, 1], positions = [0, 3, 3];
            var list = name switch { "sourceRows" => rows, "slots" => slots, _ => positions };
            list[index] = bad;
            using var r = device.FromArray<int>(rows, Small.W);
            using var s = device.FromArray<int>(slots, Small.W);
            using var p = device.FromArray<int>(positions, Small.W);
            ExpectOutOfRange(() => ops.KvCacheWrite(x.KeyCache, x.ValueCache, x.Key, x.Value, r, s, p), name, $"'{name}'[{index}] is {bad}");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsCollidingWritesBeforeWritingAnything(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var x = new Small(device);
        using var slots = device.FromArray<int>([1, 0, 1], Small.W);
        using var positions = device.FromArray<int>([2, 2, 2], Small.W);
        var ex = Assert.Throws<ArgumentException>(() =>
            device.Operations.KvCacheWrite(x.KeyCache, x.ValueCache, x.Key, x.Value, x.SourceRows, slots, positions))!;
        Assert.That(ex.ParamName, Is.EqualTo("positions"), ex.Message);
        Assert.That(ex.Message, Does.Contain("Writes 0 and 2 both target slot 1, position 2"));
        device.Synchronize();
        Assert.That(x.KeyCache.ToArray(), Is.All.EqualTo(1f), "key cache untouched");
        Assert.That(x.ValueCache.ToArray(), Is.All.EqualTo(2f), "value cache untouched");
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsOutOfRangeDecodeIndices(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var x = new Small(device);
        var ops = device.Operations;
        foreach (var (slots, lengths, name, fragment) in new (int[], int[], string, string)[]
                 {
                     ([2, Small.S], [1, 1], "slots", $"'slots'[1] is {Small.S}"),
                     ([-1, 0], [1, 1], "slots", "'slots'[0] is -1"),
                     ([0, 1], [0, 1], "lengths", "'lengths'[0] is 0"),
                     ([0, 1], [2, Small.L + 1], "lengths", $"'lengths'[1] is {Small.L + 1}"),
                 })
        {
            using var s = device.FromArray<int>(slots, Small.R);
            using var l = device.FromArray<int>(lengths, Small.R);
            ExpectOutOfRange(() => ops.AttentionDecode(x.Output, x.Query, x.KeyCache, x.ValueCache, s, l, 0.5f), name, fragment);
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsABadScale(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var x = new Small(device);
        foreach (float scale in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
            ExpectOutOfRange(() => device.Operations.AttentionDecode(x.Output, x.Query, x.KeyCache, x.ValueCache, x.Slots, x.Lengths, scale),
                "scale", "positive and finite");
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsWrongShapes(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var x = new Small(device); // S = 3, L = 4, KVH = 2, D = 3, M = 2, W = 3, R = 2, H = 4
        using var rank3Cache = device.Allocate<float>(Small.S * Small.L, Small.Kvh, Small.D);
        using var otherCache = device.Allocate<float>(Small.S, Small.L + 1, Small.Kvh, Small.D);
        using var threeKvHeads = device.Allocate<float>(Small.M, 3, Small.D);
        using var otherM = device.Allocate<float>(Small.M + 1, Small.Kvh, Small.D);
        using var twoDRows = device.FromArray<int>([0, 1, 1], 1, Small.W);
        using var twoInts = device.FromArray<int>([0, 1], 2);
        using var threeInts = device.FromArray<int>([0, 1, 2], 3);
        using var wrongD = device.Allocate<float>(Small.R, Small.H, Small.D + 1);
        using var threeHeads = device.Allocate<float>(Small.R, 3, Small.D);
        using var otherR = device.Allocate<float>(Small.R + 1, Small.H, Small.D);
        var ops = device.Operations;

        void Expect(string name, TestDelegate call)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), call)!;
            Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain($"'{name}'"));
        }

        Expect("keyCache", () => ops.KvCacheWrite(rank3Cache, x.ValueCache, x.Key, x.Value, x.SourceRows, x.WriteSlots, x.Positions));
        Expect("valueCache", () => ops.KvCacheWrite(x.KeyCache, otherCache, x.Key, x.Value, x.SourceRows, x.WriteSlots, x.Positions));
        Expect("key", () => ops.KvCacheWrite(x.KeyCache, x.ValueCache, threeKvHeads, x.Value, x.SourceRows, x.WriteSlots, x.Positions));
        Expect("value", () => ops.KvCacheWrite(x.KeyCache, x.ValueCache, x.Key, otherM, x.SourceRows, x.WriteSlots, x.Positions));
        Expect("sourceRows", () => ops.KvCacheWrite(x.KeyCache, x.ValueCache, x.Key, x.Value, twoDRows, x.WriteSlots, x.Positions));
        Expect("slots", () => ops.KvCacheWrite(x.KeyCache, x.ValueCache, x.Key, x.Value, x.SourceRows, twoInts, x.Positions));
        Expect("positions", () => ops.KvCacheWrite(x.KeyCache, x.ValueCache, x.Key, x.Value, x.SourceRows, x.WriteSlots, twoInts));

        Expect("keyCache", () => ops.AttentionDecode(x.Output, x.Query, rank3Cache, x.ValueCache, x.Slots, x.Lengths, 0.5f));
        Expect("valueCache", () => ops.AttentionDecode(x.Output, x.Query, x.KeyCache, otherCache, x.Slots, x.Lengths, 0.5f));
        Expect("query", () => ops.AttentionDecode(x.Output, wrongD, x.KeyCache, x.ValueCache, x.Slots, x.Lengths, 0.5f));
        Expect("query", () => ops.AttentionDecode(threeHeads, threeHeads, x.KeyCache, x.ValueCache, x.Slots, x.Lengths, 0.5f));
        Expect("output", () => ops.AttentionDecode(otherR, x.Query, x.KeyCache, x.ValueCache, x.Slots, x.Lengths, 0.5f));
        Expect("slots", () => ops.AttentionDecode(x.Output, x.Query, x.KeyCache, x.ValueCache, threeInts, x.Lengths, 0.5f));
        Expect("lengths", () => ops.AttentionDecode(x.Output, x.Query, x.KeyCache, x.ValueCache, x.Slots, threeInts, 0.5f));
    }
}

using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>Embedding lookup (with and without learned positions) and its backward on every backend against the double reference.</summary>
public sealed class EmbeddingTests
{
    // (M, C, V, P): odd sizes; V = 3 and V = 1 give many rows per id (the backward's duplicate path).
    private static readonly (int M, int C, int V, int P)[] Shapes =
    [
        (1, 3, 5, 2),
        (7, 33, 11, 7),
        (37, 65, 3, 5),
        (37, 5, 1, 1),
        (70, 17, 200, 70),
    ];

    public static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in Shapes
        from learned in new[] { true, false }
        select new TestCaseData(kind, s.M, s.C, s.V, s.P, learned));

    private sealed record Inputs(int M, int C, int V, int P, int[] Ids, int[] Positions, float[] Table, float[] PositionTable)
    {
        public double[] TableD => TestRandom.ToDouble(Table);
        public double[] PositionTableD => TestRandom.ToDouble(PositionTable);
    }

    private static Inputs Draw(Random random, int m, int c, int v, int p) =>
        new(m, c, v, p,
            Enumerable.Range(0, m).Select(_ => random.Next(v)).ToArray(),
            Enumerable.Range(0, m).Select(_ => random.Next(p)).ToArray(),
            TestRandom.Normal(random, v * c), TestRandom.Normal(random, p * c, 0.1));

    /// <summary>The device tensors of one embedding call; the output is poisoned, the gradients zero.</summary>
    private sealed class Set : IDisposable
    {
        public Set(Device device, Inputs x)
        {
            Ids = device.FromArray<int>(x.Ids, x.M);
            Positions = device.FromArray<int>(x.Positions, x.M);
            Table = device.FromArray<float>(x.Table, x.V, x.C);
            PositionTable = device.FromArray<float>(x.PositionTable, x.P, x.C);
            Output = Poison.Fill(device.Allocate<float>(x.M, x.C));
            DOutput = device.Allocate<float>(x.M, x.C);
            DTable = device.Allocate<float>(x.V, x.C);
            DPositionTable = device.Allocate<float>(x.P, x.C);
            DTable.Fill(0);
            DPositionTable.Fill(0);
        }

        public readonly Tensor<int> Ids, Positions;
        public readonly Tensor<float> Table, PositionTable, Output, DOutput, DTable, DPositionTable;

        public void Dispose()
        {
            Ids.Dispose();
            Positions.Dispose();
            foreach (var t in new[] { Table, PositionTable, Output, DOutput, DTable, DPositionTable }) t.Dispose();
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void ForwardMatchesReference(DeviceKind kind, int m, int c, int v, int p, bool learned)
    {
        var device = TestDevices.Get(kind);
        var x = Draw(TestRandom.Create(), m, c, v, p);
        using var s = new Set(device, x);
        device.Operations.EmbeddingForward(s.Output, s.Ids, s.Table, learned ? s.Positions : null, learned ? s.PositionTable : null);
        device.Synchronize();
        var expected = EmbeddingReference.Forward(x.Ids, x.TableD, learned ? x.Positions : null, learned ? x.PositionTableD : null, c);
        Compare.WorstRelativeError("output", expected, s.Output.ToArray());
    }

    [TestCaseSource(nameof(Cases))]
    public void BackwardAccumulatesTheReferenceGradient(DeviceKind kind, int m, int c, int v, int p, bool learned)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = Draw(random, m, c, v, p);
        // Mean 1: a zero-mean dO would let the sum of the ~37 rows of one id cancel to near zero, where
        // fp32 rounding reads as ~3e-5 against Compare's floor; mean-1 sums keep a wide margin under 1e-4.
        float[] dO = Array.ConvertAll(TestRandom.Normal(random, m * c), g => g + 1f);
        // Known starting values: the op must add to them, not overwrite them.
        float[] tableStart = TestRandom.Normal(random, v * c, 0.1);
        float[] positionStart = TestRandom.Normal(random, p * c, 0.1);
        using var s = new Set(device, x);
        s.DOutput.CopyFrom(dO);
        s.DTable.CopyFrom(tableStart);
        s.DPositionTable.CopyFrom(positionStart);
        device.Operations.EmbeddingBackward(s.DTable, learned ? s.DPositionTable : null, s.DOutput, s.Ids, learned ? s.Positions : null);
        device.Synchronize();

        double[] dOd = TestRandom.ToDouble(dO);
        Compare.WorstRelativeError("dTable", Add(EmbeddingReference.Backward(x.Ids, dOd, v, c), tableStart), s.DTable.ToArray());
        if (learned)
            Compare.WorstRelativeError("dPositionTable", Add(EmbeddingReference.Backward(x.Positions, dOd, p, c), positionStart),
                s.DPositionTable.ToArray());
        else Assert.That(s.DPositionTable.ToArray(), Is.EqualTo(positionStart), "no position table was passed, so nothing may write there");
    }

    private static double[] Add(double[] gradient, float[] start)
    {
        var sum = new double[gradient.Length];
        for (int i = 0; i < sum.Length; i++) sum[i] = gradient[i] + start[i];
        return sum;
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void GradientMatchesFiniteDifferences(DeviceKind kind)
    {
        const int m = 9, c = 3, v = 4, p = 5;
        var random = TestRandom.Create();
        var x = Draw(random, m, c, v, p);
        double[] table = x.TableD, positionTable = x.PositionTableD;
        double[] weights = TestRandom.ToDouble(TestRandom.Normal(random, m * c));
        double Loss() => EmbeddingReference.WeightedLoss(x.Ids, table, x.Positions, positionTable, c, weights);

        double[] Numeric(double[] t) => FiniteDifferences.Central(Loss, t);
        double[] dTable = EmbeddingReference.Backward(x.Ids, weights, v, c);
        double[] dPositions = EmbeddingReference.Backward(x.Positions, weights, p, c);
        Compare.WorstRelativeError("reference dTable vs finite differences", Numeric(table), dTable, 1e-6);
        Compare.WorstRelativeError("reference dPositionTable vs finite differences", Numeric(positionTable), dPositions, 1e-6);

        var device = TestDevices.Get(kind);
        using var s = new Set(device, x);
        s.DOutput.CopyFrom(Array.ConvertAll(weights, w => (float)w));
        device.Operations.EmbeddingBackward(s.DTable, s.DPositionTable, s.DOutput, s.Ids, s.Positions);
        device.Synchronize();
        Compare.WorstRelativeError("fp32 dTable vs reference", dTable, s.DTable.ToArray());
        Compare.WorstRelativeError("fp32 dPositionTable vs reference", dPositions, s.DPositionTable.ToArray());
    }

    /// <summary>Backward of one call from zero gradients: (dTable, dPositionTable).</summary>
    private static float[][] Backward(Device device, Inputs x, float[] dO)
    {
        using var s = new Set(device, x);
        s.DOutput.CopyFrom(dO);
        device.Operations.EmbeddingBackward(s.DTable, s.DPositionTable, s.DOutput, s.Ids, s.Positions);
        return [s.DTable.ToArray(), s.DPositionTable.ToArray()];
    }

    [Test]
    public void CpuResultsDoNotDependOnTheThreadCount()
    {
        // 500 rows over 7 ids and 3 positions: every table row sums ~70-170 rows, where the order shows in the bits.
        var random = TestRandom.Create();
        var x = Draw(random, 500, 40, 7, 3);
        float[] dO = TestRandom.Normal(random, 500 * 40);
        float[][] RunOn(int threads)
        {
            using var device = new CpuDevice(threads);
            return Backward(device, x, dO);
        }
        var one = RunOn(1);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var many = RunOn(threads);
            Assert.That(many[0], Is.EqualTo(one[0]), $"dTable with {threads} threads");
            Assert.That(many[1], Is.EqualTo(one[1]), $"dPositionTable with {threads} threads");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void BackwardIsBitIdenticalRunToRunAndAcrossBackends(DeviceKind kind)
    {
        // Every backend adds an id's rows in increasing order into a zero accumulator, then adds that
        // to the gradient: the same operations in the same order, so the same bits as the managed CPU.
        var random = TestRandom.Create();
        var x = Draw(random, 67, 19, 4, 3);
        float[] dO = TestRandom.Normal(random, 67 * 19);
        var device = TestDevices.Get(kind);
        var first = Backward(device, x, dO);
        var second = Backward(device, x, dO);
        var cpu = Backward(TestDevices.Get(DeviceKind.Cpu), x, dO);
        for (int o = 0; o < 2; o++)
        {
            Assert.That(second[o], Is.EqualTo(first[o]), $"output {o} run to run");
            Assert.That(first[o], Is.EqualTo(cpu[o]), $"output {o} against the managed CPU backend");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void GathersRowsOfASlicedTable(DeviceKind kind)
    {
        // The row-gather use: the last hidden row of each prompt, from hidden states that are a view at an offset.
        const int rows = 9, c = 6;
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] hidden = TestRandom.Normal(random, rows * c + 4);
        int[] last = [2, 8, 5];
        using var buffer = device.FromArray<float>(hidden, hidden.Length);
        using var ids = device.FromArray<int>(last, last.Length);
        using var output = Poison.Fill(device.Allocate<float>(last.Length, c));
        device.Operations.EmbeddingForward(output, ids, buffer.Slice(4, rows, c), null, null);
        device.Synchronize();
        var expected = EmbeddingReference.Forward(last, TestRandom.ToDouble(hidden[4..]), null, null, c);
        Compare.WorstRelativeError("gathered rows", expected, output.ToArray());
    }

    /// <summary>M = 4 rows, C = 3, V = 5, P = 4, all ids and positions valid.</summary>
    private static Set Small(Device device, int[]? ids = null, int[]? positions = null) =>
        new(device, new Inputs(4, 3, 5, 4, ids ?? [0, 4, 2, 1], positions ?? [0, 1, 2, 3], new float[15], new float[12]));

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsOutOfRangeIdsAndPositions(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        foreach (var (ids, row, value) in new[] { (new[] { 0, 4, 5, 1 }, 2, 5), (new[] { -1, 0, 0, 9 }, 0, -1) })
        {
            using var s = Small(device, ids: ids);
            Check("ids", row, value, "'table' has 5 rows", () => ops.EmbeddingForward(s.Output, s.Ids, s.Table, s.Positions, s.PositionTable));
            Check("ids", row, value, "'table' has 5 rows", () => ops.EmbeddingForward(s.Output, s.Ids, s.Table, null, null));
            Check("ids", row, value, "'dTable' has 5 rows", () => ops.EmbeddingBackward(s.DTable, s.DPositionTable, s.DOutput, s.Ids, s.Positions));
        }
        using (var s = Small(device, positions: [0, 1, 4, 3]))
        {
            Check("positions", 2, 4, "'positionTable' has 4 rows", () => ops.EmbeddingForward(s.Output, s.Ids, s.Table, s.Positions, s.PositionTable));
            Check("positions", 2, 4, "'dPositionTable' has 4 rows", () => ops.EmbeddingBackward(s.DTable, s.DPositionTable, s.DOutput, s.Ids, s.Positions));
        }

        static void Check(string name, int row, int value, string table, TestDelegate call)
        {
            var ex = Assert.Throws<ArgumentOutOfRangeException>(call)!;
            Assert.That(ex.ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain($"'{name}'[{row}] is {value}").And.Contain(table));
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsWrongShapesAndHalfAPositionPair(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var s = Small(device);
        using var ids2D = device.FromArray<int>([0, 1, 2, 3], 2, 2);
        using var ids3 = device.FromArray<int>([0, 1, 2], 3);
        using var flatTable = device.Allocate<float>(15);
        using var wideTable = device.Allocate<float>(4, 4);
        using var output43 = device.Allocate<float>(4, 4);
        using var output33 = device.Allocate<float>(3, 3);
        var ops = device.Operations;

        void Expect(string name, TestDelegate call)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), call)!;
            Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain($"'{name}'"));
        }

        Expect("ids", () => ops.EmbeddingForward(s.Output, ids2D, s.Table, null, null));
        Expect("table", () => ops.EmbeddingForward(s.Output, s.Ids, flatTable, null, null));
        Expect("output", () => ops.EmbeddingForward(output43, s.Ids, s.Table, null, null));
        Expect("output", () => ops.EmbeddingForward(output33, s.Ids, s.Table, null, null));
        Expect("positions", () => ops.EmbeddingForward(s.Output, s.Ids, s.Table, s.Positions, null));
        Expect("positions", () => ops.EmbeddingForward(s.Output, s.Ids, s.Table, null, s.PositionTable));
        Expect("positions", () => ops.EmbeddingForward(s.Output, s.Ids, s.Table, ids3, s.PositionTable));
        Expect("positionTable", () => ops.EmbeddingForward(s.Output, s.Ids, s.Table, s.Positions, wideTable));
        Expect("positionTable", () => ops.EmbeddingForward(s.Output, s.Ids, s.Table, s.Positions, flatTable));

        Expect("ids", () => ops.EmbeddingBackward(s.DTable, s.DPositionTable, s.DOutput, ids2D, s.Positions));
        Expect("dTable", () => ops.EmbeddingBackward(flatTable, s.DPositionTable, s.DOutput, s.Ids, s.Positions));
        Expect("dOutput", () => ops.EmbeddingBackward(s.DTable, s.DPositionTable, output43, s.Ids, s.Positions));
        Expect("positions", () => ops.EmbeddingBackward(s.DTable, null, s.DOutput, s.Ids, s.Positions));
        Expect("positions", () => ops.EmbeddingBackward(s.DTable, s.DPositionTable, s.DOutput, s.Ids, null));
        Expect("dPositionTable", () => ops.EmbeddingBackward(s.DTable, wideTable, s.DOutput, s.Ids, s.Positions));
    }
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsAnOutputThatOverlapsWhatTheCallReads(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var s = Small(device); // M = 4, C = 3, V = 5, P = 4
        using var buffer = device.Allocate<float>(64);
        buffer.Fill(0);
        var ops = device.Operations;

        void Expect(string name, string other, TestDelegate call)
        {
            var ex = Assert.Throws<ArgumentException>(call)!;
            Assert.That(ex.ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain($"'{name}' shares memory with '{other}'"));
        }

        Expect("output", "table", () => ops.EmbeddingForward(buffer.Slice(0, 4, 3), s.Ids, buffer.Slice(6, 5, 3), null, null));
        Expect("output", "positionTable", () => ops.EmbeddingForward(buffer.Slice(0, 4, 3), s.Ids, s.Table, s.Positions, buffer.Slice(11, 4, 3)));
        Expect("dTable", "dOutput", () => ops.EmbeddingBackward(buffer.Slice(0, 5, 3), null, buffer.Slice(14, 4, 3), s.Ids, null));
        Expect("dTable", "dPositionTable", () => ops.EmbeddingBackward(buffer.Slice(0, 5, 3), buffer.Slice(3, 4, 3), s.DOutput, s.Ids, s.Positions));
        // Neighbouring slices of one buffer are fine.
        ops.EmbeddingBackward(buffer.Slice(0, 5, 3), buffer.Slice(15, 4, 3), s.DOutput, s.Ids, s.Positions);
        device.Synchronize();
    }

    /// <summary>More rows than CUDA's grid Y allows (65,535): the lookup launches over one flat dimension. A lookup copies, so equality is the bound.</summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.KindsBesidesTheSimulator))]
    public void ForwardReachesEveryRowPastCudasGridYLimit(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int m = 65_600, c = 2, v = 5;
        var random = TestRandom.Create();
        float[] table = TestRandom.Normal(random, v * c);
        int[] ids = Enumerable.Range(0, m).Select(_ => random.Next(v)).ToArray();
        using var tableTensor = device.FromArray<float>(table, v, c);
        using var idTensor = device.FromArray<int>(ids, m);
        using var output = device.Allocate<float>(m, c);
        output.Fill(float.NaN);
        device.Operations.EmbeddingForward(output, idTensor, tableTensor, null, null);
        float[] y = output.ToArray();
        for (int row = 0; row < m; row++)
            for (int j = 0; j < c; j++)
                if (y[row * c + j] != table[ids[row] * c + j]) Assert.Fail($"output[{row}, {j}] is {y[row * c + j]}, not table[{ids[row]}, {j}]");
    }

    /// <summary>The same on the ILGPU simulator: a minute there (131,200 simulated threads), so run on request.</summary>
    [Test, Explicit("about a minute on the ILGPU CPU simulator")]
    public void ForwardReachesEveryRowPastCudasGridYLimitOnTheSimulator() => ForwardReachesEveryRowPastCudasGridYLimit(DeviceKind.IlgpuCpu);
}

using Grpo.Kernels;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// The update gate (whether an optimizer update applies and its clip factor, decided on the device) and AdamW obeying it.
/// The gate's contract is to equal, bit for bit, what the host computes from the values it would otherwise read back
/// (<see cref="IGrpoOperations.SumOfSquares"/> and each call's loss), so it is held to exact equality with that host
/// computation; the sum of squares itself is held to the double reference in <see cref="OptimizerTests"/>, and here once more.
/// </summary>
public sealed class UpdateGateTests
{
    private static readonly int[] Sizes = [1, 1000, 4099];

    private static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from size in Sizes
        select new TestCaseData(kind, size).SetArgDisplayNames(kind.ToString(), $"P={size}"));

    /// <summary>Three objective calls; the middle one did not run (share 0), and its row holds poison that must not be read.</summary>
    private static readonly float[] Shares = [0.3f, 0f, 0.7f];

    [TestCaseSource(nameof(Cases))]
    public void TheGateEqualsTheHostsDecisionBitForBit(DeviceKind kind, int size)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        var random = TestRandom.Create();
        float[] g = TestRandom.Normal(random, size, 2);
        float[] rows = GoodRows(random);
        using var gradients = device.FromArray<float>(g, size);                                       // (P)
        using var objectives = device.FromArray<float>(rows, Shares.Length, ObjectiveScalars.Count);  // (M, S)
        using var shares = device.FromArray<float>(Shares, Shares.Length);                            // (M)
        double squared = ops.SumOfSquares(gradients);
        Compare.WorstRelativeError("sum of squares", [OptimizerReference.SumOfSquares(TestRandom.ToDouble(g))], [squared], 1e-5);
        float norm = (float)Math.Sqrt(squared);
        float loss = 0;
        for (int k = 0; k < Shares.Length; k++)
            if (Shares[k] != 0) loss += Shares[k] * rows[k * ObjectiveScalars.Count + ObjectiveKernels.ResultLoss];

        // No clipping, a limit above the norm, and one below it (then the factor is maxNorm / (norm + 1e-6) as PyTorch's).
        foreach (float maxNorm in new[] { float.PositiveInfinity, 2 * norm, 0.5f * norm })
        {
            using var gate = Poison.Fill(device.Allocate<float>(UpdateGateSlots.Count));
            ops.UpdateGate(gradients, objectives, shares, maxNorm, null, gate);
            float[] got = gate.ToArray();
            float scale = norm > maxNorm ? (float)(maxNorm / ((double)norm + 1e-6)) : 1f;
            TestContext.Out.WriteLine($"max norm {maxNorm}: gate [{string.Join(", ", got)}], host norm {norm}, loss {loss}, scale {scale}");
            Assert.That(got[UpdateGateSlots.Norm], Is.EqualTo(norm), "norm");
            Assert.That(got[UpdateGateSlots.Loss], Is.EqualTo(loss), "loss");
            Assert.That(got[UpdateGateSlots.Scale], Is.EqualTo(scale), "clip factor");
            Assert.That(got[UpdateGateSlots.Apply], Is.EqualTo(1f), "apply");
        }
    }

    private static IEnumerable<TestCaseData> Refusals()
    {
        foreach (var kind in TestDevices.Kinds())
        {
            yield return Refusal(kind, "nothing wrong", 1f, _ => { });
            yield return Refusal(kind, "a NaN loss", 0f, r => r[Slot(0, ObjectiveKernels.ResultLoss)] = float.NaN);
            yield return Refusal(kind, "an infinite loss", 0f, r => r[Slot(2, ObjectiveKernels.ResultLoss)] = float.NegativeInfinity);
            yield return Refusal(kind, "a refused advantage", 0f, r => r[Slot(2, ObjectiveKernels.FirstBadAdvantageRow)] = 3);
            yield return Refusal(kind, "a refused old log-prob", 0f, r => r[Slot(0, ObjectiveKernels.TotalBadOld)] = 1);
            yield return Refusal(kind, "a refused mask", 0f, r => r[Slot(2, ObjectiveKernels.TotalBadMask)] = 2);
            yield return Refusal(kind, "everything wrong in a call that did not run", 1f, r =>
            {
                r[Slot(1, ObjectiveKernels.ResultLoss)] = float.NaN;
                r[Slot(1, ObjectiveKernels.FirstBadAdvantageRow)] = 0;
                r[Slot(1, ObjectiveKernels.TotalBadOld)] = 1;
                r[Slot(1, ObjectiveKernels.TotalBadMask)] = 1;
            });
            yield return Refusal(kind, "an infinite gradient", 0f, _ => { }, infiniteGradient: true);
            yield return Refusal(kind, "a refused previous update", 0f, _ => { }, previousApplied: false);
            yield return Refusal(kind, "an applied previous update", 1f, _ => { }, previousApplied: true);
        }
    }

    private static TestCaseData Refusal(DeviceKind kind, string what, float apply, Action<float[]> spoil,
        bool infiniteGradient = false, bool? previousApplied = null) =>
        new TestCaseData(kind, apply, spoil, infiniteGradient, previousApplied).SetArgDisplayNames(kind.ToString(), what);

    private static int Slot(int call, int column) => call * ObjectiveScalars.Count + column;

    [TestCaseSource(nameof(Refusals))]
    public void AnUpdateIsRefusedExactlyWhenTheHostWouldRefuseIt(DeviceKind kind, float apply, Action<float[]> spoil,
        bool infiniteGradient, bool? previousApplied)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] g = TestRandom.Normal(random, 100);
        if (infiniteGradient) g[17] = float.PositiveInfinity;
        float[] rows = GoodRows(random);
        spoil(rows);
        using var gradients = device.FromArray<float>(g, g.Length);                                   // (P)
        using var objectives = device.FromArray<float>(rows, Shares.Length, ObjectiveScalars.Count);  // (M, S)
        using var shares = device.FromArray<float>(Shares, Shares.Length);                            // (M)
        using var previous = previousApplied is { } applied
            ? device.FromArray<float>([1f, applied ? 1f : 0f, 1f, 0f], UpdateGateSlots.Count) : null;
        using var gate = Poison.Fill(device.Allocate<float>(UpdateGateSlots.Count));
        device.Operations.UpdateGate(gradients, objectives, shares, float.PositiveInfinity, previous, gate);
        Assert.That(gate.ToArray()[UpdateGateSlots.Apply], Is.EqualTo(apply));
    }

    [TestCaseSource(nameof(Cases))]
    public void AGatedAdamWStepIsTheStepOnClippedGradientsOrNoStepAtAll(DeviceKind kind, int size)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        var random = TestRandom.Create();
        var options = new AdamWOptions { WeightDecay = 0.1f };
        float[] p0 = TestRandom.Normal(random, size), g = TestRandom.Normal(random, size, 0.5);
        float[] m0 = TestRandom.Normal(random, size, 0.1), v0 = Array.ConvertAll(TestRandom.Normal(random, size, 0.1), x => x * x);
        foreach (float scale in new[] { 1f, 0.37f })
        {
            // Ungated, on gradients clipped in place: what the trainer did before the gate.
            using var p = device.FromArray<float>(p0, size);
            using var m = device.FromArray<float>(m0, size);
            using var v = device.FromArray<float>(v0, size);
            using var clipped = device.FromArray<float>(g, size);
            if (scale != 1f) ops.Scale(clipped, scale);
            ops.AdamWStep(p, clipped, m, v, 3, 1e-2f, options);

            using var gatedP = device.FromArray<float>(p0, size);
            using var gatedM = device.FromArray<float>(m0, size);
            using var gatedV = device.FromArray<float>(v0, size);
            using var gradients = device.FromArray<float>(g, size);
            using var gate = device.FromArray<float>([scale, 1f, 0f, 0f], UpdateGateSlots.Count);
            ops.AdamWStep(gatedP, gradients, gatedM, gatedV, 3, 1e-2f, options, gate);
            Assert.That(gatedP.ToArray(), Is.EqualTo(p.ToArray()), $"parameters, factor {scale}");
            Assert.That(gatedM.ToArray(), Is.EqualTo(m.ToArray()), $"first moment, factor {scale}");
            Assert.That(gatedV.ToArray(), Is.EqualTo(v.ToArray()), $"second moment, factor {scale}");
            Assert.That(gradients.ToArray(), Is.EqualTo(g), "the gradients are read only");

            // Refused: not one bit changes.
            using var refused = device.FromArray<float>([scale, 0f, 0f, 0f], UpdateGateSlots.Count);
            ops.AdamWStep(gatedP, gradients, gatedM, gatedV, 4, 1e-2f, options, refused);
            Assert.That(gatedP.ToArray(), Is.EqualTo(p.ToArray()), "a refused update changed the parameters");
            Assert.That(gatedM.ToArray(), Is.EqualTo(m.ToArray()), "a refused update changed the first moment");
            Assert.That(gatedV.ToArray(), Is.EqualTo(v.ToArray()), "a refused update changed the second moment");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void BadArgumentsAreNamed(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        using var g = device.Allocate<float>(10);
        using var objectives = device.Allocate<float>(3, ObjectiveScalars.Count);
        using var narrow = device.Allocate<float>(3, ObjectiveScalars.Count - 1);
        using var shares = device.Allocate<float>(3);
        using var twoShares = device.Allocate<float>(2);
        using var gate = device.Allocate<float>(UpdateGateSlots.Count);
        using var shortGate = device.Allocate<float>(UpdateGateSlots.Count - 1);
        void Expect(string name, TestDelegate call) =>
            Assert.That(Assert.Throws(Is.InstanceOf<ArgumentException>(), call)!.Message, Does.Contain(name));
        Expect("objectiveScalars", () => ops.UpdateGate(g, narrow, shares, 1f, null, gate));
        Expect("objectiveScalars", () => ops.UpdateGate(g, objectives, twoShares, 1f, null, gate));
        Expect("gate", () => ops.UpdateGate(g, objectives, shares, 1f, null, shortGate));
        Expect("previousGate", () => ops.UpdateGate(g, objectives, shares, 1f, shortGate, gate));
        Expect("maxNorm", () => ops.UpdateGate(g, objectives, shares, 0f, null, gate));
        Expect("maxNorm", () => ops.UpdateGate(g, objectives, shares, float.NaN, null, gate));
        Expect("gate", () => ops.AdamWStep(g, g, g, g, 1, 1e-3f, new AdamWOptions(), shortGate));
    }

    /// <summary>(M, S) rows that report no bad input, with losses of either sign; the row of the call that did not run is poison.</summary>
    private static float[] GoodRows(Random random)
    {
        var rows = new float[Shares.Length * ObjectiveScalars.Count];
        for (int k = 0; k < Shares.Length; k++)
        {
            var row = rows.AsSpan(k * ObjectiveScalars.Count, ObjectiveScalars.Count);
            row.Fill(float.NaN); // the totals are the kernels' scratch; the gate reads only the loss and the checks
            row[ObjectiveKernels.ResultLoss] = (float)(random.NextDouble() * 4 - 2);
            row[ObjectiveKernels.TotalBadMask] = 0;
            row[ObjectiveKernels.TotalBadOld] = 0;
            row[ObjectiveKernels.FirstBadAdvantageRow] = float.PositiveInfinity;
        }
        rows.AsSpan(ObjectiveScalars.Count, ObjectiveScalars.Count).Fill(float.NaN);
        return rows;
    }
}

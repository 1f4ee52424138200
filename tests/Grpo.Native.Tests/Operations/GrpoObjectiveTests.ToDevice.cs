using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// GrpoObjectiveToDevice, the objective whose scalars stay on the device for a training step to read once: its row, read
/// back and decoded, is the result GrpoObjective returns, bit for bit, and a bad input it reports raises the error
/// GrpoObjective raises.
/// </summary>
public sealed partial class GrpoObjectiveTests
{
    private static IEnumerable<TestCaseData> ToDeviceCases() =>
        from kind in TestDevices.Kinds()
        from level in Levels
        select new TestCaseData(kind, level).SetArgDisplayNames(kind.ToString(), level.ToString());

    [TestCaseSource(nameof(ToDeviceCases))]
    public void ToDeviceLeavesTheResultThatGrpoObjectiveReturns(DeviceKind kind, ImportanceSamplingLevel level)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        var x = RandomInputs(random, 5, 37);
        float[] entropies = Array.ConvertAll(TestRandom.Normal(random, x.N * x.T), v => 1 + Math.Abs(v));
        var options = new GrpoObjectiveOptions
        {
            Beta = 0.04f, EpsilonHigh = 0.28f, ImportanceSamplingLevel = level, EntropyCoefficient = 0.01f,
        };
        using var logp = device.FromArray<float>(x.Logp, x.N, x.T);          // (N, T)
        using var old = device.FromArray<float>(x.Old, x.N, x.T);            // (N, T)
        using var reference = device.FromArray<float>(x.Ref, x.N, x.T);      // (N, T)
        using var advantages = device.FromArray<float>(x.Advantages, x.N);   // (N)
        using var mask = device.FromArray<float>(x.Mask, x.N, x.T);          // (N, T)
        using var entropy = device.FromArray<float>(entropies, x.N, x.T);    // (N, T)
        using var dLogp = Poison.Fill(device.Allocate<float>(x.N, x.T));     // (N, T)
        using var dEntropy = Poison.Fill(device.Allocate<float>(x.N, x.T));  // (N, T)
        var expected = device.Operations.GrpoObjective(logp, old, reference, advantages, mask, options, dLogp, entropy, dEntropy);
        float[] expectedGradient = dLogp.ToArray(), expectedEntropyGradient = dEntropy.ToArray();

        using var scalars = Poison.Fill(device.Allocate<float>(ObjectiveScalars.Count));                            // (S)
        Poison.Fill(dLogp);
        Poison.Fill(dEntropy);
        device.Operations.GrpoObjectiveToDevice(logp, old, reference, advantages, mask, options, dLogp, entropy, dEntropy, scalars);
        float[] row = scalars.ToArray();
        ObjectiveScalars.ThrowOnBadInputs(row, advantages, old, x.T); // nothing to report
        var decoded = ObjectiveScalars.Decode(row);
        TestContext.Out.WriteLine($"read back: {expected}\nleft on the device: {decoded}");
        Assert.That(decoded, Is.EqualTo(expected));
        Assert.That(float.IsNaN(decoded.MeanEntropy), Is.False, "the entropy metric");
        Assert.That(dLogp.ToArray(), Is.EqualTo(expectedGradient));
        Assert.That(dEntropy.ToArray(), Is.EqualTo(expectedEntropyGradient));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ToDeviceReportsABadInputWithGrpoObjectivesError(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var x = RandomInputs(TestRandom.Create(), 4, 5, withEmptyRow: false);
        var old = (float[])x.Old.Clone();
        var mask = (float[])x.Mask.Clone();
        mask[2 * 5 + 3] = 1;
        old[2 * 5 + 3] = float.NaN;
        var advantages = (float[])x.Advantages.Clone();
        advantages[1] = float.PositiveInfinity;
        var badMask = (float[])x.Mask.Clone();
        badMask[3 * 5 + 1] = 0.5f;
        foreach (var (what, bad) in new[]
                 {
                     ("old log-prob", x with { Old = old, Mask = mask }),
                     ("advantage", x with { Advantages = advantages }),
                     ("mask", x with { Mask = badMask }),
                 })
        {
            var expected = Assert.Throws<ArgumentException>(() => Run(device, bad, true, false, new GrpoObjectiveOptions()))!;
            var reported = Assert.Throws<ArgumentException>(() =>
            {
                using var logp = device.FromArray<float>(bad.Logp, bad.N, bad.T);
                using var oldTensor = device.FromArray<float>(bad.Old, bad.N, bad.T);
                using var advantageTensor = device.FromArray<float>(bad.Advantages, bad.N);
                using var maskTensor = device.FromArray<float>(bad.Mask, bad.N, bad.T);
                using var dLogp = device.Allocate<float>(bad.N, bad.T);
                using var scalars = Poison.Fill(device.Allocate<float>(ObjectiveScalars.Count));
                // The managed backend raises it here; the ILGPU backend leaves it in the scalars.
                device.Operations.GrpoObjectiveToDevice(logp, oldTensor, null, advantageTensor, maskTensor, new GrpoObjectiveOptions(),
                    dLogp, null, null, scalars);
                ObjectiveScalars.ThrowOnBadInputs(scalars.ToArray(), advantageTensor, oldTensor, bad.T);
            })!;
            TestContext.Out.WriteLine($"{what}: {reported.Message}");
            Assert.That(reported.Message, Is.EqualTo(expected.Message), what);
            Assert.That(reported.ParamName, Is.EqualTo(expected.ParamName), what);
        }
    }
}

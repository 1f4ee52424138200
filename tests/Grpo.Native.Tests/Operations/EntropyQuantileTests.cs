using Grpo.Kernels;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// TRL's entropy-mask threshold as the ILGPU backend finds it on the device (EntropyQuantileKernels, read back here from the
/// objective's scalars) against the managed backend's host computation (bit for bit) and against the double reference: the
/// threshold must be the smallest float at or above torch.quantile's value, so that a float entropy keeps its policy term
/// exactly when it reaches the exact quantile. Ties, a single token, no loss token and inputs longer than many group strides.
/// </summary>
public sealed class EntropyQuantileTests
{
    /// <summary>The ILGPU backends: the managed one computes the threshold on the host (EntropyQuantile), leaving no slot to read.</summary>
    private static IEnumerable<DeviceKind> IlgpuKinds() => TestDevices.Kinds().Where(k => k != DeviceKind.Cpu);

    private static readonly float[] AllTops = [0f, 0.2f, 0.5f, 0.8f, 0.999f];

    private static IEnumerable<TestCaseData> Cases() =>
        (from kind in IlgpuKinds()
         from shape in new[] { (N: 1, T: 1), (N: 3, T: 5), (N: 7, T: 40), (N: 16, T: 300) }
         from ties in new[] { false, true }
         select new TestCaseData(kind, shape.N, shape.T, ties, AllTops))
        // CUDA's 256-thread group over more entropies than threads, with ties; two quantiles, as the simulator runs
        // 256 threads slowly (34 passes of group reductions per threshold).
        .Append(new TestCaseData(DeviceKind.IlgpuCpuCudaShapes, 3, 100, true, new[] { 0.2f, 0.5f }));

    [TestCaseSource(nameof(Cases))]
    public void TheDeviceThresholdIsTheHostsAndTheSmallestFloatAtOrAboveTheQuantile(DeviceKind kind, int n, int t, bool ties, float[] tops)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        foreach (float top in tops)
        {
            // About half the tokens are loss tokens (at least one); ties draw from four values, +0 among them.
            float[] mask = Enumerable.Range(0, n * t).Select(k => k == 0 || random.NextDouble() < 0.5 ? 1f : 0f).ToArray();
            float[] entropy = Enumerable.Range(0, n * t).Select(_ => ties ? random.Next(4) * 0.5f : (float)(3 * random.NextDouble())).ToArray();
            float actual = DeviceThreshold(device, entropy, mask, n, t, top);

            float host = EntropyQuantile.Threshold(entropy, mask, t, 1.0 - top);
            double exact = GrpoObjectiveReference.EntropyThreshold(TestRandom.ToDouble(entropy), TestRandom.ToDouble(mask), top);
            TestContext.Out.WriteLine($"N={n} T={t} top={top}: threshold {actual:R} (host {host:R}, exact {exact:R})");
            Assert.That(actual, Is.EqualTo(host), $"top {top}: the device's threshold is the host's");
            Assert.That(actual, Is.GreaterThanOrEqualTo(exact), $"top {top}: at or above the exact quantile");
            Assert.That((double)MathF.BitDecrement(actual), Is.LessThan(exact), $"top {top}: the smallest such float");
        }
    }

    [TestCaseSource(nameof(IlgpuKinds))]
    public void WithNoLossTokenTheThresholdKeepsNothing(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        Assert.That(DeviceThreshold(device, [1f, 2f, 3f], [0f, 0f, 0f], 1, 3, 0.2f), Is.EqualTo(float.PositiveInfinity));
    }

    /// <summary>A NaN entropy at a loss token is refused on every backend with the same message (the ILGPU backend finds it on the device).</summary>
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void ANonFiniteEntropyAtALossTokenIsNamed(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int n = 2, t = 3;
        using var logp = device.FromArray<float>(new float[n * t], n, t);                           // (N, T)
        using var advantages = device.FromArray<float>(new float[] { 1f, -1f }, n);                 // (N)
        using var mask = device.FromArray<float>(new float[] { 1, 1, 0, 1, 1, 1 }, n, t);           // (N, T)
        using var entropy = device.FromArray<float>(new[] { 0.5f, 1f, float.NaN, 2f, float.NaN, 1f }, n, t); // padding NaN is not read
        using var dLogp = device.Allocate<float>(n, t);                                            // (N, T)
        var error = Assert.Throws<ArgumentException>(() => device.Operations.GrpoObjective(logp, null, null, advantages, mask,
            new GrpoObjectiveOptions { TopEntropyQuantile = 0.5f }, dLogp, entropy))!;
        Assert.That(error.Message, Does.Contain("'entropy'[1, 1] is NaN at a completion token"));
        Assert.That(error.ParamName, Is.EqualTo("entropy"));
    }

    /// <summary>The threshold the ILGPU backend leaves in the objective's scalars (the slot its kernels read).</summary>
    private static float DeviceThreshold(Device device, float[] entropyValues, float[] maskValues, int n, int t, float top)
    {
        using var logp = device.FromArray<float>(new float[n * t], n, t);       // (N, T)
        using var advantages = device.FromArray<float>(new float[n], n);        // (N)
        using var mask = device.FromArray<float>(maskValues, n, t);             // (N, T)
        using var entropy = device.FromArray<float>(entropyValues, n, t);       // (N, T)
        using var dLogp = device.Allocate<float>(n, t);                         // (N, T)
        using var scalars = Poison.Fill(device.Allocate<float>(ObjectiveScalars.Count)); // (Count)
        device.Operations.GrpoObjectiveToDevice(logp, null, null, advantages, mask, new GrpoObjectiveOptions { TopEntropyQuantile = top },
            dLogp, entropy, null, scalars);
        float[] row = scalars.ToArray();
        Assert.That(ObjectiveScalars.ReportsBadInput(row), Is.False, "finite entropies are accepted");
        return row[ObjectiveKernels.EntropyThreshold];
    }
}

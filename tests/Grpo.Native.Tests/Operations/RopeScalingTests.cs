using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>Llama 3.x RoPE scaling (rope_type "llama3"): the inverse frequencies bit for bit, and the RoPE op against the reference.</summary>
public sealed class RopeScalingTests
{
    private static RopeScaling Scaling(double factor, double low, double high, int original) =>
        new() { Factor = factor, LowFrequencyFactor = low, HighFrequencyFactor = high, OriginalMaxPositions = original };

    /// <summary>
    /// float32 bits of the inverse frequencies transformers' <c>_compute_llama3_parameters</c> expressions give on
    /// torch 1.13.1's CPU backend (Debian's python3-torch): inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2,
    /// dtype=torch.int64).float() / dim)), then the wavelength test, the division and the smoothing as written
    /// there. Cases: the "llama3" tiny model; Llama 3.2 1B (θ = 500000, D = 64, factor 32); and a factor of 3,
    /// which is not a power of two, so that the division's rounding is checked too.
    /// </summary>
    private static IEnumerable<TestCaseData> TorchFrequencies()
    {
        yield return new TestCaseData(100f, 8, Scaling(4, 0.1, 1, 8),
            new uint[] { 0x3f800000, 0x3e229e8c, 0x3cdf7402, 0x3c0186e3 }).SetName("TorchBits_TinyLlama3");
        yield return new TestCaseData(500000f, 64, Scaling(32, 1, 4, 8192), new uint[]
        {
            0x3f800000, 0x3f29e1c6, 0x3ee177bc, 0x3e959ee3, 0x3e4693b0, 0x3e03c6a0, 0x3daee4ad, 0x3d681e67,
            0x3d1a08c8, 0x3ccc6f49, 0x3c87a9c3, 0x3c340d6d, 0x3beef74f, 0x3b9e9402, 0x3b527720, 0x3aa9279b,
            0x39e13620, 0x38cb98f7, 0x37a3418d, 0x3758ac81, 0x370fc8f8, 0x36bed4f4, 0x367d45c3, 0x3628126b,
            0x35df10c4, 0x359406cb, 0x35447610, 0x35025f34, 0x34ad07a7, 0x3465a54d, 0x341864a7, 0x33ca41b0,
        }).SetName("TorchBits_Llama32");
        yield return new TestCaseData(10000f, 16, Scaling(3, 0.3, 2.5, 40), new uint[]
        {
            0x3f800000, 0x3e8a05ea, 0x3d3250a4, 0x3c2cb3d9, 0x3b5a740d, 0x3a8a297b, 0x39aec33f, 0x38dd0f2b,
        }).SetName("TorchBits_FactorThree");
    }

    [TestCaseSource(nameof(TorchFrequencies))]
    public void InverseFrequenciesEqualTorchsBitForBit(float theta, int d, RopeScaling scaling, uint[] torchBits)
    {
        uint[] library = RopeTable.InverseFrequencies(theta, d, scaling).Select(BitConverter.SingleToUInt32Bits).ToArray();
        uint[] reference = TransformerReference.RopeFrequencies(d, theta, scaling)
            .Select(r => BitConverter.SingleToUInt32Bits((float)r.InverseFrequency)).ToArray();
        var regimes = TransformerReference.RopeFrequencies(d, theta, scaling).Select(r => r.Regime).ToArray();
        TestContext.Out.WriteLine($"θ={theta} D={d}: {regimes.Count(r => r == TransformerReference.RopeRegime.Unchanged)} unchanged, " +
            $"{regimes.Count(r => r == TransformerReference.RopeRegime.Smoothed)} smoothed, {regimes.Count(r => r == TransformerReference.RopeRegime.Divided)} divided");
        Assert.That(library, Is.EqualTo(torchBits), "RopeTable");
        Assert.That(reference, Is.EqualTo(torchBits), "TransformerReference");
        Assert.That(regimes, Does.Contain(TransformerReference.RopeRegime.Smoothed).And.Contain(TransformerReference.RopeRegime.Divided)
            .And.Contain(TransformerReference.RopeRegime.Unchanged));
    }

    [Test]
    public void WithoutScalingTheFrequenciesAreTheUnscaledOnes()
    {
        var unscaled = RopeTable.InverseFrequencies(10000f, 16);
        Assert.That(RopeTable.InverseFrequencies(10000f, 16, null), Is.EqualTo(unscaled));
        Assert.That(TransformerReference.RopeFrequencies(16, 10000, null).Select(r => (float)r.InverseFrequency), Is.EqualTo(unscaled));
    }

    // Each rotated element is x·c − y·s (or y·c + x·s) with the same fp32 angle in both: the backend rounds
    // cos (or sin) to fp32 (u = 2⁻²⁴), each product and the sum: ≤ 3u of |x·c| + |y·s| to first order,
    // 4u with room for the second-order terms.
    private static readonly double RotationBound = 4 * Math.Pow(2, -24);

    public static IEnumerable<TestCaseData> OpCases() =>
        from kind in TestDevices.Kinds()
        from inverse in new[] { false, true }
        select new TestCaseData(kind, inverse);

    [TestCaseSource(nameof(OpCases))]
    public void RopeWithLlama3ScalingMatchesTheReference(DeviceKind kind, bool inverse)
    {
        var device = TestDevices.Get(kind);
        const int heads = 3, d = 16;
        const float theta = 10000f;
        var scaling = Scaling(3, 0.3, 2.5, 40);
        int[] positions = [0, 1, 7, 39, 40, 41, 300, 4095, 65537, 5];
        int m = positions.Length;
        float[] x = TestRandom.Normal(TestRandom.Create(), m * heads * d);
        using var pos = device.FromArray<int>(positions, m);
        // The unscaled table for the same (θ, D) is built first: the scaled call must not reuse it.
        using (var plain = device.FromArray<float>(x, m, heads, d)) device.Operations.Rope(plain, null, pos, theta, inverse);
        using var values = device.FromArray<float>(x, m, heads, d);
        device.Operations.Rope(values, null, pos, theta, inverse, scaling);
        float[] got = values.ToArray();

        var expected = new double[x.Length];
        var scale = new double[x.Length];
        var frequencies = TransformerReference.RopeFrequencies(d, theta, scaling);
        for (int r = 0; r < m; r++)
        {
            var row = TestRandom.ToDouble(x.AsSpan(r * heads * d, heads * d).ToArray());
            // The inverse rotation is the rotation by −angle: the reference's at the negated sines.
            var rotated = inverse ? RotateBack(row, heads, d, positions[r], frequencies) : TransformerReference.Rope(row, heads, d, positions[r], theta, scaling);
            rotated.CopyTo(expected, r * heads * d);
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < d / 2; i++)
                {
                    double angle = (float)(positions[r] * frequencies[i].InverseFrequency);
                    double a = Math.Abs(row[h * d + i]), b = Math.Abs(row[h * d + i + d / 2]);
                    double c = Math.Abs(Math.Cos(angle)), s = Math.Abs(Math.Sin(angle));
                    scale[r * heads * d + h * d + i] = a * c + b * s;
                    scale[r * heads * d + h * d + i + d / 2] = b * c + a * s;
                }
        }
        Compare.WorstScaledError($"rope llama3{(inverse ? " inverse" : "")}", expected, scale, got, RotationBound);
    }

    /// <summary>(x, y) ← (x cos + y sin, y cos − x sin) at the reference's fp32 angle: the rotation by −angle.</summary>
    private static double[] RotateBack(double[] row, int heads, int d, int position,
        (double InverseFrequency, TransformerReference.RopeRegime Regime)[] frequencies)
    {
        var result = (double[])row.Clone();
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < d / 2; i++)
            {
                double angle = (float)(position * frequencies[i].InverseFrequency);
                double x = row[h * d + i], y = row[h * d + i + d / 2];
                result[h * d + i] = x * Math.Cos(angle) + y * Math.Sin(angle);
                result[h * d + i + d / 2] = y * Math.Cos(angle) - x * Math.Sin(angle);
            }
        return result;
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void AnInvalidScalingIsRefusedNamingTheField(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var values = device.Allocate<float>(2, 1, 8);
        using var positions = device.FromArray<int>([0, 1], 2);
        var cases = new (RopeScaling Scaling, string Field)[]
        {
            (Scaling(0, 1, 4, 8192), "factor"),
            (Scaling(double.NaN, 1, 4, 8192), "factor"),
            (Scaling(8, -1, 4, 8192), "low_freq_factor"),
            (Scaling(8, 1, 1e300, 8192), "high_freq_factor"),
            (Scaling(8, 4, 1, 8192), "high_freq_factor"),
            (Scaling(8, 1, 4, 0), "original_max_position_embeddings"),
            (Scaling(8, 1, 4, 8192) with { Type = "yarn" }, "rope_type"),
        };
        foreach (var (scaling, field) in cases)
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => device.Operations.Rope(values, null, positions, 10000f, false, scaling));
            Assert.That(e!.ParamName, Is.EqualTo("scaling"));
            Assert.That(e.Message, Does.Contain("rope_scaling." + field), field);
        }
    }
}

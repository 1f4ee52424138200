using Grpo.Native.Checkpoints;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Checkpoints;

/// <summary>
/// F16/BF16 conversions against references computed here in double from the bit layouts
/// (no System.Half), including ties, NaN, infinities and subnormals.
/// </summary>
public sealed class SafetensorsDTypeTests
{
    /// <summary>Value of bfloat16 bits: 1 sign, 8 exponent (bias 127), 7 mantissa bits.</summary>
    private static double BFloat16Value(int bits)
    {
        int sign = (bits >> 15) & 1, e = (bits >> 7) & 0xFF, m = bits & 0x7F;
        double s = sign == 1 ? -1 : 1;
        if (e == 0xFF) return m == 0 ? s * double.PositiveInfinity : double.NaN;
        return e == 0 ? s * m * Math.Pow(2, -133) : s * (128 + m) * Math.Pow(2, e - 134);
    }

    /// <summary>Value of binary16 bits: 1 sign, 5 exponent (bias 15), 10 mantissa bits.</summary>
    private static double HalfValue(int bits)
    {
        int sign = (bits >> 15) & 1, e = (bits >> 10) & 0x1F, m = bits & 0x3FF;
        double s = sign == 1 ? -1 : 1;
        if (e == 0x1F) return m == 0 ? s * double.PositiveInfinity : double.NaN;
        return e == 0 ? s * m * Math.Pow(2, -24) : s * (1024 + m) * Math.Pow(2, e - 25);
    }

    /// <summary>
    /// Rounds |x| to the nearest of the sorted non-negative finite codes 0..maxFinite (ties to the even
    /// code), where one step past maxFinite stands for infinity at value <paramref name="overflowValue"/>.
    /// </summary>
    private static int RoundToCode(double x, Func<int, double> value, int maxFinite, double overflowValue, int signBit)
    {
        double a = Math.Abs(x);
        int lo = 0, hi = maxFinite;
        if (a >= value(maxFinite)) lo = maxFinite;
        else
        {
            while (hi - lo > 1)
            {
                int mid = (lo + hi) / 2;
                if (value(mid) <= a) lo = mid; else hi = mid;
            }
        }
        int next = lo + 1;
        double nextValue = lo == maxFinite ? overflowValue : value(next);
        double dLo = a - value(lo), dHi = nextValue - a;
        int code = dLo < dHi ? lo : dHi < dLo ? next : (lo % 2 == 0 ? lo : next);
        return (x < 0 || (x == 0 && double.IsNegative(x)) ? signBit : 0) | code;
    }

    private static int ReferenceBFloat16(float x) =>
        RoundToCode(x, BFloat16Value, 0x7F7F, Math.Pow(2, 128), 0x8000);

    private static int ReferenceHalf(float x) =>
        RoundToCode(x, HalfValue, 0x7BFF, 65536.0, 0x8000);

    private static IEnumerable<float> Inputs(Random random)
    {
        for (int i = 0; i < 20000; i++)
        {
            float f = BitConverter.Int32BitsToSingle(random.Next() ^ (random.Next(2) << 31));
            if (!float.IsNaN(f)) yield return f;
        }
        foreach (float f in TestRandom.Normal(random, 5000, 100)) yield return f;
        foreach (float f in TestRandom.Normal(random, 2000, 1e-6)) yield return f; // half subnormals
        yield return 0f; yield return -0f; yield return float.PositiveInfinity; yield return float.NegativeInfinity;
        yield return float.Epsilon; yield return -float.Epsilon; yield return float.MaxValue; yield return float.MinValue;
        yield return 65504f; yield return 65519.99f; yield return 65520f; yield return 1e-8f; yield return 2.98e-8f;
    }

    [Test]
    public void BFloat16EncodingRoundsToNearestEven()
    {
        var random = TestRandom.Create();
        var inputs = Inputs(random).ToList();
        // Exact ties: lower 16 bits 0x8000 with an even and with an odd kept part.
        for (int i = 0; i < 2000; i++)
            inputs.Add(BitConverter.Int32BitsToSingle((random.Next(0, 0x7F7F) << 16) | 0x8000));
        inputs.Add(BitConverter.Int32BitsToSingle(0x3F808000)); // tie, kept part even -> down
        inputs.Add(BitConverter.Int32BitsToSingle(0x3F818000)); // tie, kept part odd -> up
        int mismatches = 0;
        foreach (float x in inputs)
        {
            int got = SafetensorsDTypes.SingleToBFloat16(x), want = ReferenceBFloat16(x);
            if (got != want && mismatches++ < 5)
                TestContext.Out.WriteLine($"x={x:R} (0x{BitConverter.SingleToInt32Bits(x):X8}) got 0x{got:X4} want 0x{want:X4}");
        }
        Assert.That(mismatches, Is.Zero, $"{mismatches} of {inputs.Count} BF16 encodings differ from the reference");
        Assert.That(SafetensorsDTypes.SingleToBFloat16(BitConverter.Int32BitsToSingle(0x3F808000)), Is.EqualTo(0x3F80));
        Assert.That(SafetensorsDTypes.SingleToBFloat16(BitConverter.Int32BitsToSingle(0x3F818000)), Is.EqualTo(0x3F82));
    }

    [Test]
    public void HalfEncodingRoundsToNearestEven()
    {
        var random = TestRandom.Create();
        var inputs = Inputs(random).ToList();
        // Exact midpoints between adjacent halves (representable in fp32: halves have 11 significant bits).
        for (int i = 0; i < 2000; i++)
        {
            int code = random.Next(0, 0x7BFF);
            inputs.Add((float)((HalfValue(code) + HalfValue(code + 1)) / 2));
            inputs.Add(-(float)((HalfValue(code) + HalfValue(code + 1)) / 2));
        }
        int mismatches = 0;
        foreach (float x in inputs)
        {
            int got = SafetensorsDTypes.SingleToHalf(x), want = ReferenceHalf(x);
            if (got != want && mismatches++ < 5)
                TestContext.Out.WriteLine($"x={x:R} got 0x{got:X4} want 0x{want:X4}");
        }
        Assert.That(mismatches, Is.Zero, $"{mismatches} of {inputs.Count} F16 encodings differ from the reference");
        Assert.That(SafetensorsDTypes.SingleToHalf(65520f), Is.EqualTo(0x7C00), "65520 is the overflow tie and rounds to +inf");
    }

    [Test]
    public void NaNStaysNaNWithItsSign()
    {
        foreach (int bits in new[] { 0x7FC00000, 0x7F800001, 0x7FFFFFFF, unchecked((int)0xFFC00000), 0x7FFF8000 })
        {
            float nan = BitConverter.Int32BitsToSingle(bits);
            int bf = SafetensorsDTypes.SingleToBFloat16(nan), h = SafetensorsDTypes.SingleToHalf(nan);
            Assert.That(double.IsNaN(BFloat16Value(bf)), Is.True, $"BF16 of NaN 0x{bits:X8} is 0x{bf:X4}");
            Assert.That(double.IsNaN(HalfValue(h)), Is.True, $"F16 of NaN 0x{bits:X8} is 0x{h:X4}");
            Assert.That(bf >> 15, Is.EqualTo((bits >>> 31) & 1), "BF16 NaN sign");
        }
    }

    [Test]
    public void EveryBitPatternDecodesExactly()
    {
        for (int bits = 0; bits < 65536; bits++)
        {
            double bf = BFloat16Value(bits), h = HalfValue(bits);
            float gotBf = SafetensorsDTypes.BFloat16ToSingle((ushort)bits), gotH = SafetensorsDTypes.HalfToSingle((ushort)bits);
            if (double.IsNaN(bf)) Assert.That(float.IsNaN(gotBf), $"BF16 0x{bits:X4}");
            else Assert.That((double)gotBf, Is.EqualTo(bf), $"BF16 0x{bits:X4}");
            if (double.IsNaN(h)) Assert.That(float.IsNaN(gotH), $"F16 0x{bits:X4}");
            else Assert.That((double)gotH, Is.EqualTo(h), $"F16 0x{bits:X4}");
        }
    }

    [Test]
    public void SpanCodecsMatchScalarCodecsAndCheckLengths()
    {
        var random = TestRandom.Create();
        float[] values = TestRandom.Normal(random, 37, 3);
        foreach (var dtype in new[] { SafetensorsDType.F32, SafetensorsDType.F16, SafetensorsDType.BF16 })
        {
            var bytes = new byte[values.Length * dtype.Size()];
            SafetensorsDTypes.Encode(values, dtype, bytes);
            var back = new float[values.Length];
            SafetensorsDTypes.Decode(bytes, dtype, back);
            for (int i = 0; i < values.Length; i++)
            {
                float want = dtype switch
                {
                    SafetensorsDType.F32 => values[i],
                    SafetensorsDType.F16 => (float)HalfValue(ReferenceHalf(values[i])),
                    _ => (float)BFloat16Value(ReferenceBFloat16(values[i])),
                };
                Assert.That(back[i], Is.EqualTo(want), $"{dtype} element {i}");
            }
            var e = Assert.Throws<ArgumentException>(() => SafetensorsDTypes.Decode(bytes, dtype, new float[values.Length + 1]));
            Assert.That(e!.ParamName, Is.EqualTo("source"));
        }
    }
}

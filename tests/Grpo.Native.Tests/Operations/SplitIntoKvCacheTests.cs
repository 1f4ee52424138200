using Grpo.Native.Checkpoints;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>
/// SplitIntoKvCache, a decode step's q/k/v epilogue (split with bias, RoPE, cache write in one call), on every backend: bit for
/// bit against SplitColumns, Rope and KvCacheWrite in turn, against the double reference, and its argument checks.
/// </summary>
public sealed class SplitIntoKvCacheTests
{
    // Each value is fl(x + b) rotated as fl(fl(x'·fl(cos)) − fl(y'·fl(sin))): to first order the addition, the table's
    // rounding of cos and sin, the products and the difference each add at most u = 2^-24 of the scale
    // (|x| + |b|)|cos| + (|y| + |b'|)|sin|, 4u = 2.4e-7; 3e-7 leaves room for the second-order terms. An unrotated value
    // (v, or GPT-2's q and k) is one addition, within u of |x| + |b|. The angle itself is the reference's fp32 angle.
    private const double ScaledTolerance = 3e-7;

    /// <summary>
    /// The bound with Qwen3's head norms, n = fl(fl(x'·r̂)·w): x' = fl(x + b) is within u of |x| + |b|; the fp32 Σx'² of D
    /// positive squares is within (D + 2)u of the true Σ(x + b)² (D roundings of the sum and its squares, 2u from x'); /D,
    /// + eps, sqrt (which halves what it is given) and the reciprocal make r̂ within ((D + 2)u + 2u)/2 + 2u = (D/2 + 4)u;
    /// the two products add 2u: n is within (D/2 + 7)u of the scale (|x| + |b|)·r·|w|. The rotation adds its 3u (as
    /// above): (D/2 + 10)u, and one u more for the second-order terms.
    /// </summary>
    private static double NormedTolerance(int d) => (d / 2.0 + 11) * Math.Pow(2, -24);

    // (rows R, heads H, kv heads KVH, D, capacity L, slots S, RoPE?): one row, GQA, MHA, odd D/2, odd D without RoPE (GPT-2
    // style), and a capacity in the thousands, so positions where the angle's rounding matters.
    private static readonly (int R, int H, int Kvh, int D, int L, int S, bool Rope)[] Shapes =
    [
        (1, 1, 1, 2, 1, 1, true),
        (5, 4, 2, 16, 9, 7, true),
        (6, 3, 3, 10, 5, 8, true),
        (4, 2, 2, 5, 6, 5, false),
        (3, 4, 1, 64, 4001, 3, true),
    ];

    public static IEnumerable<TestCaseData> Cases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in Shapes
        from withBias in new[] { true, false }
        from normed in new[] { false, true }
        select new TestCaseData(kind, s.R, s.H, s.Kvh, s.D, s.L, s.S, s.Rope, withBias, normed)
            .SetArgDisplayNames(kind.ToString(), $"R={s.R}", $"H={s.H}", $"KVH={s.Kvh}", $"D={s.D}", $"L={s.L}", $"S={s.S}",
                s.Rope ? "rope" : "no rope", withBias ? "bias" : "no bias", normed ? "head norms" : "no head norms"), count: 4);

    /// <summary>RMSNorm's epsilon for the head norms (Qwen3's rms_norm_eps).</summary>
    private const float Epsilon = 1e-6f;

    /// <summary>One call's host inputs: distinct (slot, position) cells in a shuffled order, caches of random values.</summary>
    private sealed record Inputs(int R, int H, int Kvh, int D, int L, int S, float[] Qkv, float[]? Bias, int[] Slots, int[] Positions,
        float[] KeyCache, float[] ValueCache, float[]? QueryNorm, float[]? KeyNorm)
    {
        public int Width => (H + 2 * Kvh) * D;
    }

    private static Inputs Draw(Random random, int r, int h, int kvh, int d, int l, int s, bool withBias, bool normed)
    {
        int[] cells = Enumerable.Range(0, s * l).ToArray();
        random.Shuffle(cells);
        cells = cells[..r];
        int width = (h + 2 * kvh) * d, cache = s * l * kvh * d;
        return new Inputs(r, h, kvh, d, l, s, TestRandom.Normal(random, r * width), withBias ? TestRandom.Normal(random, width) : null,
            cells.Select(c => c / l).ToArray(), cells.Select(c => c % l).ToArray(),
            TestRandom.Normal(random, cache), TestRandom.Normal(random, cache),
            normed ? TestRandom.Normal(random, d) : null, normed ? TestRandom.Normal(random, d) : null);
    }

    /// <summary>The head norms' weights on the device, or null.</summary>
    private sealed class DeviceHeadNorms(Device device, Inputs x) : IDisposable
    {
        private readonly Tensor<float>? _query = x.QueryNorm is null ? null : device.FromArray<float>(x.QueryNorm, x.D);
        private readonly Tensor<float>? _key = x.KeyNorm is null ? null : device.FromArray<float>(x.KeyNorm, x.D);

        public HeadNorms? Norms => _query is null ? null : new HeadNorms(_query, _key!, Epsilon);

        public void Dispose()
        {
            _query?.Dispose();
            _key?.Dispose();
        }
    }

    /// <summary>The query, key cache and value cache one SplitIntoKvCache call leaves (the query poisoned first).</summary>
    private static (float[] Query, float[] KeyCache, float[] ValueCache) Fused(Device device, Inputs x, RotaryEmbedding? rope)
    {
        using var qkv = device.FromArray<float>(x.Qkv, x.R, x.Width);
        using var bias = x.Bias is null ? null : device.FromArray<float>(x.Bias, x.Width);
        using var query = Poison.Fill(device.Allocate<float>(x.R, x.H, x.D));
        using var kc = device.FromArray<float>(x.KeyCache, x.S, x.L, x.Kvh, x.D);
        using var vc = device.FromArray<float>(x.ValueCache, x.S, x.L, x.Kvh, x.D);
        using var slots = device.FromArray<int>(x.Slots, x.R);
        using var positions = device.FromArray<int>(x.Positions, x.R);
        using var norms = new DeviceHeadNorms(device, x);
        device.Operations.SplitIntoKvCache(qkv, bias, query, kc, vc, slots, positions, rope, norms.Norms);
        device.Synchronize();
        return (query.ToArray(), kc.ToArray(), vc.ToArray());
    }

    /// <summary>The same through the operations it replaces: SplitColumns, RmsNormForward of each q and k head, Rope of q and k, KvCacheWrite.</summary>
    private static (float[] Query, float[] KeyCache, float[] ValueCache) Apart(Device device, Inputs x, RotaryEmbedding? rope)
    {
        var ops = device.Operations;
        using var qkv = device.FromArray<float>(x.Qkv, x.R, x.Width);
        using var bias = x.Bias is null ? null : device.FromArray<float>(x.Bias, x.Width);
        using var query = Poison.Fill(device.Allocate<float>(x.R, x.H, x.D));
        using var key = Poison.Fill(device.Allocate<float>(x.R, x.Kvh, x.D));
        using var value = Poison.Fill(device.Allocate<float>(x.R, x.Kvh, x.D));
        using var kc = device.FromArray<float>(x.KeyCache, x.S, x.L, x.Kvh, x.D);
        using var vc = device.FromArray<float>(x.ValueCache, x.S, x.L, x.Kvh, x.D);
        using var rows = device.FromArray<int>(Enumerable.Range(0, x.R).ToArray(), x.R);
        using var slots = device.FromArray<int>(x.Slots, x.R);
        using var positions = device.FromArray<int>(x.Positions, x.R);
        using var norms = new DeviceHeadNorms(device, x);
        if (norms.Norms is { } n)
        {
            // As the model's forward runs Qwen3: split into the projections, then RMSNorm of each head into q and k.
            using var queryProjection = device.Allocate<float>(x.R * x.H, x.D);
            using var keyProjection = device.Allocate<float>(x.R * x.Kvh, x.D);
            using var rstd = device.Allocate<float>(x.R * (x.H + x.Kvh));
            ops.SplitColumns(qkv, queryProjection.Reshape(x.R, x.H * x.D), keyProjection.Reshape(x.R, x.Kvh * x.D),
                value.Reshape(x.R, x.Kvh * x.D), bias);
            ops.RmsNormForward(query.Reshape(x.R * x.H, x.D), rstd.Slice(0, x.R * x.H), queryProjection, n.QueryWeight, Epsilon);
            ops.RmsNormForward(key.Reshape(x.R * x.Kvh, x.D), rstd.Slice(x.R * x.H, x.R * x.Kvh), keyProjection, n.KeyWeight, Epsilon);
        }
        else ops.SplitColumns(qkv, query.Reshape(x.R, x.H * x.D), key.Reshape(x.R, x.Kvh * x.D), value.Reshape(x.R, x.Kvh * x.D), bias);
        if (rope is { } angles) ops.Rope(query, key, positions, angles.Theta, inverse: false, angles.Scaling);
        ops.KvCacheWrite(kc, vc, key, value, rows, slots, positions);
        device.Synchronize();
        return (query.ToArray(), kc.ToArray(), vc.ToArray());
    }

    /// <summary>
    /// One launch gives exactly what the three operations give in turn: the same fp32 addition of the bias, the same table
    /// entries and rotation, the same cells. Every cache cell is compared, so a row written to the wrong cell, or a cell
    /// written that no row owns, fails too.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void GivesTheBitsOfSplitRopeAndCacheWrite(DeviceKind kind, int r, int h, int kvh, int d, int l, int s, bool rope, bool withBias,
        bool normed)
    {
        var device = TestDevices.Get(kind);
        var x = Draw(TestRandom.Create(), r, h, kvh, d, l, s, withBias, normed);
        // θ = 500000 with Llama 3's scaling where the positions reach past its original context; plain θ = 10000 elsewhere.
        RotaryEmbedding? angles = !rope ? null
            : l > 16 ? new RotaryEmbedding(500000f, new RopeScaling { Factor = 8, LowFrequencyFactor = 1, HighFrequencyFactor = 4, OriginalMaxPositions = 16 })
            : new RotaryEmbedding(10000f);
        var fused = Fused(device, x, angles);
        var apart = Apart(device, x, angles);
        Assert.That(fused.Query, Is.EqualTo(apart.Query), "query");
        Assert.That(fused.KeyCache, Is.EqualTo(apart.KeyCache), "key cache");
        Assert.That(fused.ValueCache, Is.EqualTo(apart.ValueCache), "value cache");
        Assert.That(fused.KeyCache, Is.Not.EqualTo(x.KeyCache), "the rows' keys were written");
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheReference(DeviceKind kind, int r, int h, int kvh, int d, int l, int s, bool rope, bool withBias, bool normed)
    {
        var device = TestDevices.Get(kind);
        var x = Draw(TestRandom.Create(), r, h, kvh, d, l, s, withBias, normed);
        float? theta = rope ? 10000f : null;
        var (query, keyCache, valueCache) = Fused(device, x, rope ? new RotaryEmbedding(10000f) : null);

        double[] qkv = TestRandom.ToDouble(x.Qkv), kc = TestRandom.ToDouble(x.KeyCache), vc = TestRandom.ToDouble(x.ValueCache);
        double[]? bias = x.Bias is null ? null : TestRandom.ToDouble(x.Bias);
        double[]? queryNorm = x.QueryNorm is null ? null : TestRandom.ToDouble(x.QueryNorm);
        double[]? keyNorm = x.KeyNorm is null ? null : TestRandom.ToDouble(x.KeyNorm);
        var expected = KvCacheReference.SplitIntoCache(qkv, bias, kc, vc, x.Slots, x.Positions, h, kvh, d, l, theta,
            queryNorm: queryNorm, keyNorm: keyNorm, epsilon: Epsilon);
        // Scales over zero caches: a cell no row writes has scale 0, so it must keep its value exactly.
        var zero = new double[kc.Length];
        var scale = KvCacheReference.SplitIntoCache(qkv, bias, zero, zero, x.Slots, x.Positions, h, kvh, d, l, theta, magnitudes: true,
            queryNorm: queryNorm, keyNorm: keyNorm, epsilon: Epsilon);
        // The values are only added to (and copied), so they keep the plain bound; q and k take the norms' where they have them.
        double normedTolerance = normed ? NormedTolerance(d) : ScaledTolerance;
        Compare.WorstScaledError("query", expected.Query, scale.Query, TestRandom.ToDouble(query), normedTolerance);
        Compare.WorstScaledError("key cache", expected.KeyCache, scale.KeyCache, TestRandom.ToDouble(keyCache), normedTolerance);
        Compare.WorstScaledError("value cache", expected.ValueCache, scale.ValueCache, TestRandom.ToDouble(valueCache), ScaledTolerance);
    }

    /// <summary>R = 3 rows of H = 2, KVH = 1, D = 4 into a (S = 3, L = 4) cache: valid until a test breaks one argument.</summary>
    private sealed class Small : IDisposable
    {
        public const int R = 3, H = 2, Kvh = 1, D = 4, L = 4, S = 3, Width = (H + 2 * Kvh) * D;
        private readonly Device _device;
        public readonly Tensor<float> Qkv, Bias, Query, KeyCache, ValueCache;

        public Small(Device device)
        {
            _device = device;
            var random = TestRandom.Create();
            Qkv = device.FromArray<float>(TestRandom.Normal(random, R * Width), R, Width);
            Bias = device.FromArray<float>(TestRandom.Normal(random, Width), Width);
            Query = device.Allocate<float>(R, H, D);
            KeyCache = device.Allocate<float>(S, L, Kvh, D);
            ValueCache = device.Allocate<float>(S, L, Kvh, D);
        }

        public void Call(int[] slots, int[] positions, RotaryEmbedding? rope = null, Tensor<float>? qkv = null, Tensor<float>? query = null,
            Tensor<float>? keyCache = null, Tensor<float>? valueCache = null, Tensor<float>? bias = null, HeadNorms? headNorms = null)
        {
            using var s = _device.FromArray<int>(slots, slots.Length);
            using var p = _device.FromArray<int>(positions, positions.Length);
            _device.Operations.SplitIntoKvCache(qkv ?? Qkv, bias ?? Bias, query ?? Query, keyCache ?? KeyCache, valueCache ?? ValueCache, s, p,
                rope ?? new RotaryEmbedding(10000f), headNorms);
        }

        public void Dispose()
        {
            foreach (var t in new[] { Qkv, Bias, Query, KeyCache, ValueCache }) t.Dispose();
        }
    }

    private static readonly int[] GoodSlots = [2, 0, 2], GoodPositions = [0, 3, 1];

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsIndicesOutOfRangeAndRowsThatShareACell(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var x = new Small(device);
        x.Call(GoodSlots, GoodPositions); // the valid call the cases below break
        // (which list, the index made bad, its value)
        foreach (var (name, index, bad) in new[] { ("slots", 1, Small.S), ("slots", 2, -1), ("positions", 0, Small.L), ("positions", 2, -2) })
        {
            int[] slots = (int[])GoodSlots.Clone(), positions = (int[])GoodPositions.Clone();
            (name == "slots" ? slots : positions)[index] = bad;
            var ex = Assert.Throws<ArgumentOutOfRangeException>(() => x.Call(slots, positions))!;
            Assert.That(ex.ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain($"'{name}'[{index}] is {bad}"));
        }
        var shared = Assert.Throws<ArgumentException>(() => x.Call([2, 0, 2], [1, 3, 1]))!;
        Assert.That(shared.ParamName, Is.EqualTo("positions"), shared.Message);
        Assert.That(shared.Message, Does.Contain("Rows 0 and 2 both target slot 2, position 1"));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void RejectsWrongShapesOverlapsAndBadRotations(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        using var x = new Small(device);
        const int r = Small.R, h = Small.H, kvh = Small.Kvh, d = Small.D;
        using var narrow = device.Allocate<float>(r, Small.Width - d);                  // one head short
        using var wrongD = device.Allocate<float>(r, h, d - 1);                          // the caches' D is 4
        using var longerCache = device.Allocate<float>(Small.S, Small.L + 1, kvh, d);   // the value cache's L is 4
        using var shortBias = device.Allocate<float>(Small.Width - 1);
        // D = 3 everywhere: consistent shapes, but RoPE needs pairs.
        using var oddQkv = device.Allocate<float>(r, (h + 2 * kvh) * 3);
        using var oddBias = device.Allocate<float>((h + 2 * kvh) * 3);
        using var oddQuery = device.Allocate<float>(r, h, 3);
        using var oddKeys = device.Allocate<float>(Small.S, Small.L, kvh, 3);
        using var oddValues = device.Allocate<float>(Small.S, Small.L, kvh, 3);
        using var normWeight = device.Allocate<float>(d);
        using var shortNormWeight = device.Allocate<float>(d - 1);
        var queryInTheKeyCache = x.KeyCache.Reshape(Small.S * Small.L * kvh * d).Slice(0, r, h, d); // (R, H, D) over the cache's first rows
        var cases = new (string Name, string Fragment, Action Call)[]
        {
            ("qkv", "one row per query row", () => x.Call(GoodSlots, GoodPositions, qkv: narrow)),
            ("query", "head dimension must be the caches'", () => x.Call(GoodSlots, GoodPositions, query: wrongD)),
            ("valueCache", "'valueCache'", () => x.Call(GoodSlots, GoodPositions, keyCache: longerCache)),
            ("bias", "'bias'", () => x.Call(GoodSlots, GoodPositions, bias: shortBias)),
            ("slots", "one entry per query row", () => x.Call([0, 1], GoodPositions)),
            ("query", "shares memory with 'keyCache'", () => x.Call(GoodSlots, GoodPositions, query: queryInTheKeyCache)),
            ("query", "head dimension 3 is odd", () => x.Call(GoodSlots, GoodPositions, qkv: oddQkv, query: oddQuery, keyCache: oddKeys,
                valueCache: oddValues, bias: oddBias)),
            ("rope", "'rope.Theta' must be positive", () => x.Call(GoodSlots, GoodPositions, rope: new RotaryEmbedding(0f))),
            ("headNorms", "'headNorms.KeyWeight' has shape", () => x.Call(GoodSlots, GoodPositions,
                headNorms: new HeadNorms(normWeight, shortNormWeight, Epsilon))),
            ("headNorms", "'headNorms.Epsilon' must be positive", () => x.Call(GoodSlots, GoodPositions,
                headNorms: new HeadNorms(normWeight, normWeight, 0f))),
            ("keyCache", "shares memory with 'headNorms.QueryWeight'", () => x.Call(GoodSlots, GoodPositions,
                headNorms: new HeadNorms(x.KeyCache.Reshape(Small.S * Small.L * kvh * d).Slice(0, d), normWeight, Epsilon))),
        };
        foreach (var (name, fragment, call) in cases)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), () => call())!;
            Assert.That(((ArgumentException)ex).ParamName, Is.EqualTo(name), ex.Message);
            Assert.That(ex.Message, Does.Contain(fragment));
        }
    }
}

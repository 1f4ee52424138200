using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;

namespace Grpo.Cli;

internal static partial class SelfCheck
{
    /// <summary>
    /// A small rollout: two prompts fanned out to G = 3 slots each (shuffled) with KvCacheWrite, one
    /// decode step written at the next position, then AttentionDecode of every slot (H = 4, KVH = 2, D = 33).
    /// The caches are compared exactly (a copy); the decode output with twice the tolerance, as the tests
    /// hold attention outputs (an output near zero keeps the absolute rounding of its O(1) terms).
    /// </summary>
    private static IEnumerable<CheckResult> KvCache(Device device, Random random, double tolerance)
    {
        int[] promptLengths = [4, 7];
        const int g = 3, h = 4, kvh = 2, d = 33, l = 9;
        int b = promptLengths.Length, r = b * g, s = r + 1, mp = promptLengths.Sum(), row = kvh * d;
        float scale = 1f / MathF.Sqrt(d);
        int[] slotOf = Enumerable.Range(0, s).OrderBy(_ => random.Next()).Take(r).ToArray(); // completion c = prompt c / G
        int[] promptStart = [0, promptLengths[0]];
        float[] pk = Normal(random, mp * row, 1.0), pv = Normal(random, mp * row, 1.0);   // (Mp, KVH, D)
        float[] nk = Normal(random, r * row, 1.0), nv = Normal(random, r * row, 1.0);     // (R, KVH, D)
        float[] q = Normal(random, r * h * d, 1.0);                                       // (R, H, D)

        // Writes: the prompt rows of each group to its G slots, then each slot's new row after its prompt.
        var fan = (from c in Enumerable.Range(0, r) from j in Enumerable.Range(0, promptLengths[c / g])
                   select (Row: promptStart[c / g] + j, Slot: slotOf[c], Position: j)).ToArray();
        int[] newPositions = Enumerable.Range(0, r).Select(c => promptLengths[c / g]).ToArray();
        int[] lengths = newPositions.Select(p => p + 1).ToArray();

        var cache = Enumerable.Repeat((double)float.NaN, s * l * row).ToArray(); // unwritten cells stay NaN
        var (ek, ev) = KvCacheReference.Write(cache, cache, ToDouble(pk), ToDouble(pv), fan.Select(f => f.Row).ToArray(),
            fan.Select(f => f.Slot).ToArray(), fan.Select(f => f.Position).ToArray(), l, kvh, d);
        (ek, ev) = KvCacheReference.Write(ek, ev, ToDouble(nk), ToDouble(nv), Enumerable.Range(0, r).ToArray(), slotOf, newPositions, l, kvh, d);
        double[] expected = KvCacheReference.Decode(ToDouble(q), ek, ev, slotOf, lengths, h, kvh, d, l, scale);

        using var keyCache = device.Allocate<float>(s, l, kvh, d);     // (S, L, KVH, D)
        using var valueCache = device.Allocate<float>(s, l, kvh, d);   // (S, L, KVH, D)
        keyCache.Fill(float.NaN);
        valueCache.Fill(float.NaN);
        using (var k = device.FromArray<float>(pk, mp, kvh, d))
        using (var v = device.FromArray<float>(pv, mp, kvh, d))
        using (var rows = device.FromArray<int>(fan.Select(f => f.Row).ToArray(), fan.Length))
        using (var slots = device.FromArray<int>(fan.Select(f => f.Slot).ToArray(), fan.Length))
        using (var positions = device.FromArray<int>(fan.Select(f => f.Position).ToArray(), fan.Length))
            device.Operations.KvCacheWrite(keyCache, valueCache, k, v, rows, slots, positions);
        using var newK = device.FromArray<float>(nk, r, kvh, d);
        using var newV = device.FromArray<float>(nv, r, kvh, d);
        using var own = device.FromArray<int>(Enumerable.Range(0, r).ToArray(), r);
        using var decodeSlots = device.FromArray<int>(slotOf, r);
        using var at = device.FromArray<int>(newPositions, r);
        device.Operations.KvCacheWrite(keyCache, valueCache, newK, newV, own, decodeSlots, at);
        using var query = device.FromArray<float>(q, r, h, d);
        using var decodeLengths = device.FromArray<int>(lengths, r);
        using var output = device.Allocate<float>(r, h, d);             // (R, H, D)
        output.Fill(float.NaN);
        device.Operations.AttentionDecode(output, query, keyCache, valueCache, decodeSlots, decodeLengths, scale);

        string shape = $"B={b} G={g} H={h}/{kvh} D={d} L={l}";
        yield return new CheckResult($"kv cache write {shape}",
            Math.Max(ErrorMeasure.WorstRelativeError(ek, keyCache.ToArray()).Worst, ErrorMeasure.WorstRelativeError(ev, valueCache.ToArray()).Worst), 0);
        yield return new CheckResult($"attention decode {shape}", ErrorMeasure.WorstRelativeError(expected, output.ToArray()).Worst, 2 * tolerance);
        foreach (var check in SplitIntoKvCache(device, random)) yield return check;
    }

    /// <summary>
    /// A decode step's q/k/v epilogue at the head shapes of Qwen2.5-0.5B (H = 14, KVH = 2, D = 64, with the bias) and Qwen3-0.6B
    /// (H = 16, KVH = 8, D = 128, with its per-head norms), θ = 1e6: five rows written into their slots at positions up to
    /// 4000, against the double reference. Each error is judged against the scale of its terms with the bound the tests derive
    /// (SplitIntoKvCacheTests): the rotation cancels, so an output near zero keeps the rounding of its O(1) terms. Every cache
    /// cell is compared, so a row written to the wrong cell fails: unwritten cells start 0, with scale 0, and must stay 0.
    /// </summary>
    private static IEnumerable<CheckResult> SplitIntoKvCache(Device device, Random random)
    {
        const int l = 4001, s = 6;
        const float theta = 1e6f, epsilon = 1e-6f;
        int[] slots = [5, 0, 3, 1, 0], positions = [0, 17, 3999, 4000, 4000];
        int r = slots.Length;
        foreach (var (name, h, kvh, d, qwen3) in new[] { ("Qwen2.5-0.5B", 14, 2, 64, false), ("Qwen3-0.6B", 16, 8, 128, true) })
        {
            int width = (h + 2 * kvh) * d;
            float[] qkv = Normal(random, r * width, 1.0);                    // (R, H·D + 2·KVH·D)
            float[]? bias = qwen3 ? null : Normal(random, width, 1.0);       // (H·D + 2·KVH·D)
            float[]? queryNorm = qwen3 ? Normal(random, d, 1.0) : null;      // (D)
            float[]? keyNorm = qwen3 ? Normal(random, d, 1.0) : null;        // (D)
            var zero = new double[s * l * kvh * d];
            double[]? biasD = bias is null ? null : ToDouble(bias), queryNormD = queryNorm is null ? null : ToDouble(queryNorm);
            double[]? keyNormD = keyNorm is null ? null : ToDouble(keyNorm);
            var expected = KvCacheReference.SplitIntoCache(ToDouble(qkv), biasD, zero, zero, slots, positions, h, kvh, d, l, theta,
                queryNorm: queryNormD, keyNorm: keyNormD, epsilon: epsilon);
            var scale = KvCacheReference.SplitIntoCache(ToDouble(qkv), biasD, zero, zero, slots, positions, h, kvh, d, l, theta,
                magnitudes: true, queryNorm: queryNormD, keyNorm: keyNormD, epsilon: epsilon);

            using var fused = device.FromArray<float>(qkv, r, width);
            using var columnBias = bias is null ? null : device.FromArray<float>(bias, width);
            using var queryWeight = queryNorm is null ? null : device.FromArray<float>(queryNorm, d);
            using var keyWeight = keyNorm is null ? null : device.FromArray<float>(keyNorm, d);
            using var query = device.Allocate<float>(r, h, d);              // (R, H, D)
            using var keyCache = device.Allocate<float>(s, l, kvh, d);      // (S, L, KVH, D)
            using var valueCache = device.Allocate<float>(s, l, kvh, d);    // (S, L, KVH, D)
            query.Fill(float.NaN);
            keyCache.Fill(0);
            valueCache.Fill(0);
            using var slotTensor = device.FromArray<int>(slots, r);
            using var positionTensor = device.FromArray<int>(positions, r);
            HeadNorms? headNorms = qwen3 ? new HeadNorms(queryWeight!, keyWeight!, epsilon) : null;
            device.Operations.SplitIntoKvCache(fused, columnBias, query, keyCache, valueCache, slotTensor, positionTensor,
                new RotaryEmbedding(theta), headNorms);
            double worst = new[]
            {
                ErrorMeasure.WorstScaledError(expected.Query, scale.Query, query.ToArray()).Worst,
                ErrorMeasure.WorstScaledError(expected.KeyCache, scale.KeyCache, keyCache.ToArray()).Worst,
                ErrorMeasure.WorstScaledError(expected.ValueCache, scale.ValueCache, valueCache.ToArray()).Worst,
            }.Max();
            // The tests' bounds in units of u = 2^-24: 4u for a bias added and a rotation, (D/2 + 10)u with the head norms, one u
            // more for second-order terms (see SplitIntoKvCacheTests).
            double bound = (qwen3 ? d / 2.0 + 11 : 5) * Math.Pow(2, -24);
            string steps = qwen3 ? "split, head norms, rope and cache write" : "split, bias, rope and cache write";
            yield return new CheckResult($"{steps} R={r} H={h}/{kvh} D={d} θ=1e6 pos≤4000 ({name}), error/scale", worst, bound);
        }
    }
}

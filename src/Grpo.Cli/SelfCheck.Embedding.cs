using Grpo.Native.Devices;
using Grpo.Native.References;

namespace Grpo.Cli;

internal static partial class SelfCheck
{
    /// <summary>Token and learned position embeddings, forward and backward (duplicated ids), against the reference.</summary>
    private static IEnumerable<CheckResult> Embedding(Device device, Random random, double tolerance)
    {
        const int m = 37, c = 33, v = 11, p = 16;
        int[] tokens = Enumerable.Range(0, m).Select(_ => random.Next(v)).ToArray(); // ~3 rows per id
        int[] places = Enumerable.Range(0, m).Select(i => i % p).ToArray();
        float[] table = Normal(random, v * c, 1.0), positionTable = Normal(random, p * c, 0.1), upstream = Normal(random, m * c, 1.0);
        using var ids = device.FromArray<int>(tokens, m);                     // (M)
        using var positions = device.FromArray<int>(places, m);               // (M)
        using var wte = device.FromArray<float>(table, v, c);                 // (V, C)
        using var wpe = device.FromArray<float>(positionTable, p, c);         // (P, C)
        using var y = device.Allocate<float>(m, c);                           // (M, C)
        using var dy = device.FromArray<float>(upstream, m, c);               // (M, C)
        using var dWte = device.Allocate<float>(v, c);                        // (V, C)
        using var dWpe = device.Allocate<float>(p, c);                        // (P, C)
        y.Fill(float.NaN);
        dWte.Fill(0);
        dWpe.Fill(0);
        device.Operations.EmbeddingForward(y, ids, wte, positions, wpe);
        device.Operations.EmbeddingBackward(dWte, dWpe, dy, ids, positions);
        double[] dyd = ToDouble(upstream);
        var expected = EmbeddingReference.Forward(tokens, ToDouble(table), places, ToDouble(positionTable), c);
        string shape = $"M={m} C={c} V={v} P={p}";
        yield return new CheckResult($"embedding forward {shape}", ErrorMeasure.WorstRelativeError(expected, y.ToArray()).Worst, tolerance);
        yield return new CheckResult($"embedding backward d table {shape}",
            ErrorMeasure.WorstRelativeError(EmbeddingReference.Backward(tokens, dyd, v, c), dWte.ToArray()).Worst, tolerance);
        yield return new CheckResult($"embedding backward d position table {shape}",
            ErrorMeasure.WorstRelativeError(EmbeddingReference.Backward(places, dyd, p, c), dWpe.ToArray()).Worst, tolerance);
    }
}

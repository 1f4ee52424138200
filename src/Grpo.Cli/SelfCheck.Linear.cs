using Grpo.Native.Devices;
using Grpo.Native.References;

namespace Grpo.Cli;

internal static partial class SelfCheck
{
    /// <summary>The linear layer with a bias, forward and backward (accumulated from zero), against the reference.</summary>
    private static IEnumerable<CheckResult> Linear(Device device, Random random, double tolerance)
    {
        const int m = 37, k = 33, n = 65;
        // Entries of mean 1: zero-mean ones would make some sums cancel, and fp32 rounding of their
        // partial sums would then exceed 1e-4 of the result scale without any mistake (see LinearTests).
        float[] input = Shifted(Normal(random, m * k, 1.0)), weight = Shifted(Normal(random, n * k, 1.0));
        float[] bias = Normal(random, n, 1.0), upstream = Shifted(Normal(random, m * n, 1.0));
        using var x = device.FromArray<float>(input, m, k);         // (M, K)
        using var w = device.FromArray<float>(weight, n, k);        // (N, K)
        using var b = device.FromArray<float>(bias, n);             // (N)
        using var y = device.Allocate<float>(m, n);                 // (M, N)
        using var dy = device.FromArray<float>(upstream, m, n);     // (M, N)
        using var dx = device.Allocate<float>(m, k);                // (M, K)
        using var dw = device.Allocate<float>(n, k);                // (N, K)
        using var db = device.Allocate<float>(n);                   // (N)
        y.Fill(float.NaN);
        dx.Fill(0);
        dw.Fill(0);
        db.Fill(0);
        device.Operations.LinearForward(y, x, w, b);
        device.Operations.LinearBackward(dx, dw, db, dy, x, w);
        double[] xd = ToDouble(input), wd = ToDouble(weight);
        var expected = LinearReference.Forward(xd, wd, ToDouble(bias), m, k, n);
        var g = LinearReference.Backward(xd, wd, ToDouble(upstream), m, k, n);
        string shape = $"M={m} K={k} N={n}";
        yield return new CheckResult($"linear forward {shape}", ErrorMeasure.WorstRelativeError(expected, y.ToArray()).Worst, tolerance);
        yield return new CheckResult($"linear backward d input {shape}", ErrorMeasure.WorstRelativeError(g.DInput, dx.ToArray()).Worst, tolerance);
        yield return new CheckResult($"linear backward d weight {shape}", ErrorMeasure.WorstRelativeError(g.DWeight, dw.ToArray()).Worst, tolerance);
        yield return new CheckResult($"linear backward d bias {shape}", ErrorMeasure.WorstRelativeError(g.DBias, db.ToArray()).Worst, tolerance);
        yield return FusedColumnsRoundTrip(device, random);
    }

    /// <summary>
    /// A fused Q/K/V output split into its three parts and joined back into a poisoned buffer (the forward's and the backward's
    /// copies): exact, so any element out of place or unwritten counts.
    /// </summary>
    private static CheckResult FusedColumnsRoundTrip(Device device, Random random)
    {
        const int m = 257, a = 64, b = 16, c = 16;
        float[] values = Normal(random, m * (a + b + c), 1.0);
        using var fused = device.FromArray<float>(values, m, a + b + c); // (M, A + B + C)
        using var first = device.Allocate<float>(m, a);                  // (M, A)
        using var second = device.Allocate<float>(m, b);                 // (M, B)
        using var third = device.Allocate<float>(m, c);                  // (M, C)
        using var joined = device.Allocate<float>(m, a + b + c);         // (M, A + B + C)
        joined.Fill(float.NaN);
        device.Operations.SplitColumns(fused, first, second, third);
        device.Operations.JoinColumns(joined, first, second, third);
        float[] back = joined.ToArray();
        int wrong = 0;
        for (int i = 0; i < values.Length; i++)
            if (BitConverter.SingleToInt32Bits(back[i]) != BitConverter.SingleToInt32Bits(values[i])) wrong++;
        return new CheckResult($"split and join q/k/v columns M={m} A={a} B={b} C={c}", wrong, 0, $"{wrong} elements differ");
    }

    private static float[] Shifted(float[] values) => Array.ConvertAll(values, x => x + 1f);
}

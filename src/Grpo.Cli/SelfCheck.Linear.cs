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
        yield return FusedColumnsSplitWithBias(device, random);
        // Three output tiles down and two across with a long K, and a decode shape (8 sequences, K = 2,048) that a GPU's
        // ILGPU GEMM cuts into K slices (split-K) and cuBLAS runs as it likes.
        foreach (var check in ScaledLinear(device, random, 130, 520, 70, "multi-tile long K")) yield return check;
        foreach (var check in ScaledLinear(device, random, 8, 2048, 96, "decode shape")) yield return check;
    }

    /// <summary>
    /// The linear layer's three products at a larger shape, from zero, judged element by element against the standard bound
    /// of a K-term fp32 dot product in any summation order (blocked, split-K, cuBLAS's): |ĉ − c| ≤ γ_K·Σ_k |a_k·b_k|,
    /// γ_K = K·2⁻²⁴ / (1 − K·2⁻²⁴). Reported as the worst error over that bound, limit 1; zero-mean inputs, since the bound is scaled by
    /// the terms' magnitudes rather than by the result, which may cancel.
    /// </summary>
    private static IEnumerable<CheckResult> ScaledLinear(Device device, Random random, int m, int k, int n, string label)
    {
        float[] input = Normal(random, m * k, 1.0), weight = Normal(random, n * k, 1.0), upstream = Normal(random, m * n, 1.0);
        using var x = device.FromArray<float>(input, m, k);         // (M, K)
        using var w = device.FromArray<float>(weight, n, k);        // (N, K)
        using var y = device.Allocate<float>(m, n);                 // (M, N)
        using var dy = device.FromArray<float>(upstream, m, n);     // (M, N)
        using var dx = device.Allocate<float>(m, k);                // (M, K)
        using var dw = device.Allocate<float>(n, k);                // (N, K)
        y.Fill(float.NaN);
        dx.Fill(0);
        dw.Fill(0);
        device.Operations.LinearForward(y, x, w, null);
        device.Operations.LinearBackward(dx, dw, null, dy, x, w);
        double[] xd = ToDouble(input), wd = ToDouble(weight), dyd = ToDouble(upstream);
        double[] Abs(double[] values) => Array.ConvertAll(values, Math.Abs);
        var expected = LinearReference.Forward(xd, wd, null, m, k, n);
        var magnitudes = LinearReference.Forward(Abs(xd), Abs(wd), null, m, k, n);  // Σ_k |x·w| per output
        var g = LinearReference.Backward(xd, wd, dyd, m, k, n);
        var gMagnitudes = LinearReference.Backward(Abs(xd), Abs(wd), Abs(dyd), m, k, n);
        string shape = $"{label} M={m} K={k} N={n}";
        // γ_K = K·u / (1 − K·u), u = 2⁻²⁴: any summation tree of K products has depth ≤ K.
        static double Gamma(int terms) => terms * Math.Pow(2, -24) / (1 - terms * Math.Pow(2, -24));
        yield return ScaledCheck($"linear forward {shape}", expected, magnitudes, y.ToArray(), Gamma(k));
        yield return ScaledCheck($"linear backward d input {shape}", g.DInput, gMagnitudes.DInput, dx.ToArray(), Gamma(n));
        yield return ScaledCheck($"linear backward d weight {shape}", g.DWeight, gMagnitudes.DWeight, dw.ToArray(), Gamma(m));
    }

    /// <summary>max_i |actual_i − expected_i| / (γ·scale_i) against 1; a non-finite value fails.</summary>
    private static CheckResult ScaledCheck(string operation, double[] expected, double[] scale, float[] actual, double gamma)
    {
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = float.IsFinite(actual[i]) ? Math.Abs(actual[i] - expected[i]) / Math.Max(gamma * scale[i], 1e-300) : double.PositiveInfinity;
            worst = Math.Max(worst, error);
        }
        return new CheckResult(operation, worst, 1, $"error / ({gamma:E1}·Σ|a·b|)");
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

    /// <summary>
    /// The forward's split of a biased fused projection (Qwen2's and GPT-2's q/k/v): each value plus its column's bias, one fp32
    /// addition, which two floats make exactly in double and round once; exact, so any element off by an ulp counts.
    /// </summary>
    private static CheckResult FusedColumnsSplitWithBias(Device device, Random random)
    {
        const int m = 33, a = 64, b = 16, c = 16, width = a + b + c;
        float[] values = Normal(random, m * width, 1.0), biasValues = Normal(random, width, 1.0);
        using var fused = device.FromArray<float>(values, m, width); // (M, A + B + C)
        using var bias = device.FromArray<float>(biasValues, width); // (A + B + C)
        using var first = device.Allocate<float>(m, a);              // (M, A)
        using var second = device.Allocate<float>(m, b);             // (M, B)
        using var third = device.Allocate<float>(m, c);              // (M, C)
        foreach (var part in new[] { first, second, third }) part.Fill(float.NaN);
        device.Operations.SplitColumns(fused, first, second, third, bias);
        float[][] parts = [first.ToArray(), second.ToArray(), third.ToArray()];
        int[] starts = [0, a, a + b], widths = [a, b, c];
        int wrong = 0;
        for (int row = 0; row < m; row++)
            for (int p = 0; p < 3; p++)
                for (int j = 0; j < widths[p]; j++)
                {
                    int column = starts[p] + j;
                    float expected = (float)((double)values[row * width + column] + biasValues[column]);
                    if (!parts[p][row * widths[p] + j].Equals(expected)) wrong++;
                }
        return new CheckResult($"split q/k/v columns with their bias M={m} A={a} B={b} C={c}", wrong, 0, $"{wrong} elements differ");
    }

    private static float[] Shifted(float[] values) => Array.ConvertAll(values, x => x + 1f);
}

using Grpo.Native.Devices;
using Grpo.Native.References;

namespace Grpo.Cli;

internal static partial class SelfCheck
{
    /// <summary>
    /// GELU, SwiGLU on fused gate|up rows (forward and backward), the in-place residual add and RoPE of queries and
    /// keys in one call (forward and inverse, at positions up to 4000) at small sizes against <see cref="ActivationsReference"/>. Gradients use the
    /// gradient bound: gelu' crosses zero near x = −0.75, where two O(1) terms cancel.
    /// </summary>
    private static IEnumerable<CheckResult> Activations(Device device, Random random, double tolerance, double gradientTolerance)
    {
        const int rows = 13, width = 37, n = rows * width;
        float[] x = Normal(random, n, 3.0), up = Normal(random, n, 1.0), dO = Normal(random, n, 1.0);
        double[] xd = ToDouble(x), upd = ToDouble(up), dOd = ToDouble(dO);
        var ops = device.Operations;
        using var input = device.FromArray<float>(x, rows, width);  // (R, W)
        using var upT = device.FromArray<float>(up, rows, width);   // (R, W)
        using var dOutput = device.FromArray<float>(dO, rows, width); // (R, W)
        using var output = device.Allocate<float>(rows, width);     // (R, W)
        using var grad = device.Allocate<float>(rows, width);       // (R, W)
        string shape = $"{rows}x{width}";

        output.Fill(float.NaN);
        ops.GeluForward(output, input);
        yield return new CheckResult($"gelu forward {shape}",
            ErrorMeasure.WorstRelativeError(ActivationsReference.GeluForward(xd), output.ToArray()).Worst, tolerance);
        grad.Fill(0);
        ops.GeluBackward(grad, dOutput, input);
        yield return new CheckResult($"gelu backward {shape}",
            ErrorMeasure.WorstRelativeError(ActivationsReference.GeluBackward(dOd, xd), grad.ToArray()).Worst, gradientTolerance);

        // SwiGLU's fused (R, 2W) gate|up rows: each row x's row (the gates), then up's row.
        float[] gateUp = new float[2 * n];
        for (int r = 0; r < rows; r++)
        {
            x.AsSpan(r * width, width).CopyTo(gateUp.AsSpan(2 * r * width));
            up.AsSpan(r * width, width).CopyTo(gateUp.AsSpan(2 * r * width + width));
        }
        double[] gateUpd = ToDouble(gateUp);
        using var gateUpT = device.FromArray<float>(gateUp, rows, 2 * width); // (R, 2W)
        using var dGateUp = device.Allocate<float>(rows, 2 * width);           // (R, 2W)
        output.Fill(float.NaN);
        ops.SwiGluForward(output, gateUpT);
        yield return new CheckResult($"swiglu forward {shape}",
            ErrorMeasure.WorstRelativeError(ActivationsReference.SwiGluForward(gateUpd, width), output.ToArray()).Worst, tolerance);
        dGateUp.Fill(0);
        ops.SwiGluBackward(dGateUp, dOutput, gateUpT);
        yield return new CheckResult($"swiglu backward d gate|up {shape}",
            ErrorMeasure.WorstRelativeError(ActivationsReference.SwiGluBackward(dOd, gateUpd, width), dGateUp.ToArray()).Worst, gradientTolerance);

        using (var residual = device.FromArray<float>(x, rows, width))
        {
            ops.Add(residual, residual, upT); // in place, as the residual stream is updated
            yield return new CheckResult($"add in place {shape}",
                ErrorMeasure.WorstRelativeError(ActivationsReference.Add(xd, upd), residual.ToArray()).Worst, tolerance);
        }

        const int m = 5, heads = 3, keyHeads = 1, d = 64;
        int[] positions = [0, 1, 17, 3999, 4000];
        float[] q = Normal(random, m * heads * d, 1.0), k = Normal(random, m * keyHeads * d, 1.0);
        using var pos = device.FromArray<int>(positions, m); // (M)
        foreach (var (theta, inverse) in new[] { (10000f, false), (1e6f, true) })
        {
            using var queries = device.FromArray<float>(q, m, heads, d); // (M, H, D)
            using var keys = device.FromArray<float>(k, m, keyHeads, d); // (M, KVH, D)
            ops.Rope(queries, keys, pos, theta, inverse);
            double[] expected = [.. ActivationsReference.Rope(ToDouble(q), positions, m, heads, d, theta, inverse),
                .. ActivationsReference.Rope(ToDouble(k), positions, m, keyHeads, d, theta, inverse)];
            yield return new CheckResult($"rope {(inverse ? "inverse" : "forward")} q {m}x{heads}x{d} and k {m}x{keyHeads}x{d} θ={theta:0e0} pos≤4000",
                ErrorMeasure.WorstRelativeError(expected, [.. queries.ToArray(), .. keys.ToArray()]).Worst, tolerance);
        }
    }
}

using Grpo.Native.Devices;
using Grpo.Native.References;

namespace Grpo.Cli;

internal static partial class SelfCheck
{
    /// <summary>
    /// LayerNorm and RMSNorm forward and backward at M = 7 rows of C = 33 channels (odd on purpose),
    /// rows of mean 3 and spread 2 so that the mean subtraction matters. The LayerNorm output may
    /// cancel (norm·w + b near zero) and is held to twice the tolerance, as in the tests; the gradients
    /// cancel too and use the gradient tolerance. Then the residual add fused with each norm.
    /// </summary>
    private static IEnumerable<CheckResult> Normalization(Device device, Random random, double tolerance, double gradientTolerance)
    {
        const int m = 7, c = 33;
        const float layerEpsilon = 1e-5f, rmsEpsilon = 1e-6f;
        float[] input = Normal(random, m * c, 2.0).Select(v => v + 3f).ToArray(); // (M, C)
        float[] weight = Normal(random, c, 0.3).Select(v => v + 1f).ToArray();     // (C)
        float[] bias = Normal(random, c, 0.5);                                      // (C)
        float[] upstream = Normal(random, m * c, 1.0);                              // (M, C)
        using var x = device.FromArray<float>(input, m, c);
        using var w = device.FromArray<float>(weight, c);
        using var b = device.FromArray<float>(bias, c);
        using var dy = device.FromArray<float>(upstream, m, c);
        using var y = device.Allocate<float>(m, c);
        using var mean = device.Allocate<float>(m);
        using var rstd = device.Allocate<float>(m);
        using var dx = device.Allocate<float>(m, c);
        using var dw = device.Allocate<float>(c);
        using var db = device.Allocate<float>(c);
        double[] xd = ToDouble(input), wd = ToDouble(weight), dyd = ToDouble(upstream);
        string shape = $"M={m} C={c}";

        y.Fill(float.NaN);
        dx.Fill(0);
        dw.Fill(0);
        db.Fill(0);
        device.Operations.LayerNormForward(y, mean, rstd, x, w, b, layerEpsilon);
        device.Operations.LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd);
        var layer = NormalizationReference.LayerNormForward(xd, wd, ToDouble(bias), m, c, layerEpsilon);
        var layerGrad = NormalizationReference.LayerNormBackward(xd, wd, dyd, m, c, layerEpsilon);
        yield return new CheckResult($"layer norm forward {shape}", ErrorMeasure.WorstRelativeError(layer.Output, y.ToArray()).Worst, 2 * tolerance);
        yield return new CheckResult($"layer norm backward d input {shape}", ErrorMeasure.WorstRelativeError(layerGrad.DInput, dx.ToArray()).Worst, gradientTolerance);
        yield return new CheckResult($"layer norm backward d weight {shape}", ErrorMeasure.WorstRelativeError(layerGrad.DWeight, dw.ToArray()).Worst, gradientTolerance);
        yield return new CheckResult($"layer norm backward d bias {shape}", ErrorMeasure.WorstRelativeError(layerGrad.DBias, db.ToArray()).Worst, gradientTolerance);

        y.Fill(float.NaN);
        dx.Fill(0);
        dw.Fill(0);
        device.Operations.RmsNormForward(y, rstd, x, w, rmsEpsilon);
        device.Operations.RmsNormBackward(dx, dw, dy, x, w, rstd);
        var rms = NormalizationReference.RmsNormForward(xd, wd, m, c, rmsEpsilon);
        var rmsGrad = NormalizationReference.RmsNormBackward(xd, wd, dyd, m, c, rmsEpsilon);
        yield return new CheckResult($"rms norm forward {shape}", ErrorMeasure.WorstRelativeError(rms.Output, y.ToArray()).Worst, tolerance);
        yield return new CheckResult($"rms norm backward d input {shape}", ErrorMeasure.WorstRelativeError(rmsGrad.DInput, dx.ToArray()).Worst, gradientTolerance);
        yield return new CheckResult($"rms norm backward d weight {shape}", ErrorMeasure.WorstRelativeError(rmsGrad.DWeight, dw.ToArray()).Worst, gradientTolerance);

        // The residual add fused with each norm (every norm of the model's forward after the first runs so): the sum must be each
        // pair's fp32 sum exactly (two floats add exactly in double, then round once), the norm of it within the norm's bounds.
        float[] addendValues = Normal(random, m * c, 1.0); // (M, C)
        float[] exactSum = new float[m * c];                // (M, C)
        for (int i = 0; i < exactSum.Length; i++) exactSum[i] = (float)((double)input[i] + addendValues[i]);
        double[] sumd = ToDouble(exactSum);
        using var addend = device.FromArray<float>(addendValues, m, c);
        using var sum = device.Allocate<float>(m, c);
        foreach (bool layerNorm in new[] { true, false })
        {
            sum.Fill(float.NaN);
            y.Fill(float.NaN);
            string name = layerNorm ? "layer" : "rms";
            if (layerNorm) device.Operations.AddLayerNormForward(sum, y, mean, rstd, x, addend, w, b, layerEpsilon);
            else device.Operations.AddRmsNormForward(sum, y, rstd, x, addend, w, rmsEpsilon);
            float[] gotSum = sum.ToArray();
            int differing = Enumerable.Range(0, gotSum.Length).Count(i => !gotSum[i].Equals(exactSum[i]));
            yield return new CheckResult($"add + {name} norm sum {shape}", differing, 0, $"{differing} of {gotSum.Length} sums differ from fp32's");
            double[] expected = layerNorm
                ? NormalizationReference.LayerNormForward(sumd, wd, ToDouble(bias), m, c, layerEpsilon).Output
                : NormalizationReference.RmsNormForward(sumd, wd, m, c, rmsEpsilon).Output;
            yield return new CheckResult($"add + {name} norm forward {shape}", ErrorMeasure.WorstRelativeError(expected, y.ToArray()).Worst,
                layerNorm ? 2 * tolerance : tolerance);
        }
    }
}

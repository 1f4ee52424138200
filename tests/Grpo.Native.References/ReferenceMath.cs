namespace Grpo.Native.References;

/// <summary>Small double-precision helpers the references use. Kept naive on purpose.</summary>
public static class ReferenceMath
{
    /// <summary>log(Σ exp(x_i)), computed stably.</summary>
    public static double LogSumExp(IReadOnlyList<double> x)
    {
        double max = double.NegativeInfinity;
        foreach (double v in x) max = Math.Max(max, v);
        if (double.IsNegativeInfinity(max)) return max;
        double sum = 0;
        foreach (double v in x) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }
}

namespace Grpo.Native.Tests.Support;

/// <summary>Central finite differences in double, the check every reference gradient gets.</summary>
public static class FiniteDifferences
{
    /// <summary>
    /// d loss / d parameters[i] ≈ (loss(p + h e_i) − loss(p − h e_i)) / 2h for every i; <paramref name="loss"/>
    /// reads <paramref name="parameters"/>, which is perturbed in place and restored. With h = 1e-5 in
    /// double, truncation and rounding errors are both about 1e-10.
    /// </summary>
    public static double[] Central(Func<double> loss, double[] parameters, double h = 1e-5)
    {
        var gradient = new double[parameters.Length];
        for (int i = 0; i < parameters.Length; i++)
        {
            double saved = parameters[i];
            parameters[i] = saved + h;
            double plus = loss();
            parameters[i] = saved - h;
            double minus = loss();
            parameters[i] = saved;
            gradient[i] = (plus - minus) / (2 * h);
        }
        return gradient;
    }
}

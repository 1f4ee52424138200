using NUnit.Framework;

namespace Grpo.Native.Tests.Support;

/// <summary>Fresh random inputs for every run, with the seed printed so that a failure can be replayed.</summary>
public static class TestRandom
{
    /// <summary>A generator seeded from NUnit's per-run randomizer; prints the seed.</summary>
    public static Random Create()
    {
        int seed = TestContext.CurrentContext.Random.Next();
        TestContext.Out.WriteLine($"random seed {seed}");
        return new Random(seed);
    }

    /// <summary>Standard normal values (Box–Muller) times <paramref name="scale"/>.</summary>
    public static float[] Normal(Random random, int count, double scale = 1.0)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            values[i] = (float)(scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return values;
    }

    public static double[] ToDouble(float[] values) => Array.ConvertAll(values, v => (double)v);
}

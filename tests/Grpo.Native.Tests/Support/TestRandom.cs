using NUnit.Framework;

namespace Grpo.Native.Tests.Support;

/// <summary>Fresh random inputs for every run, with the seed printed so that a failure can be replayed.</summary>
public static class TestRandom
{
    /// <summary>Set it to a printed seed to replay a failing test: <c>GRPO_TEST_SEED=461754777 dotnet test ...</c>.</summary>
    public const string SeedVariable = "GRPO_TEST_SEED";

    /// <summary>A generator seeded from NUnit's per-run randomizer (or GRPO_TEST_SEED); prints the seed.</summary>
    public static Random Create()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), out int replay)
            ? replay
            : TestContext.CurrentContext.Random.Next();
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

namespace Grpo.Native.Benchmarks;

/// <summary>Random inputs for every suite, drawn the same way so that runs and suites compare.</summary>
public static class BenchmarkData
{
    /// <summary>
    /// <paramref name="count"/> values mean + scale · (u₁ + u₂ + u₃ − 1.5) with uᵢ uniform in [0, 1) (Irwin–Hall: bell-shaped,
    /// standard deviation 0.5 · scale), cheap to draw in the millions.
    /// </summary>
    public static float[] Noise(Random random, int count, float scale = 1f, float mean = 0f)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = mean + scale * (random.NextSingle() + random.NextSingle() + random.NextSingle() - 1.5f);
        return values;
    }
}

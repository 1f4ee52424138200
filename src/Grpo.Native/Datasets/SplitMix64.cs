namespace Grpo.Native.Datasets;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny generator whose output is fixed by its definition, unlike
/// <see cref="Random"/>, whose sequence for a seed may change between .NET versions. Prompt orders must not
/// change under a resumed run, so they are drawn from this.
/// </summary>
internal struct SplitMix64(ulong state)
{
    private ulong _state = state;

    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A uniform integer in [0, <paramref name="bound"/>): draws below 2⁶⁴ mod bound are rejected, so no value is favoured.</summary>
    public int NextBelow(int bound)
    {
        ulong n = (ulong)bound;
        ulong threshold = (0UL - n) % n;
        while (true)
        {
            ulong r = Next();
            if (r >= threshold) return (int)(r % n);
        }
    }
}

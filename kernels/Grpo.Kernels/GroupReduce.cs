using ILGPU;
using ILGPU.Algorithms;

namespace Grpo.Kernels;

/// <summary>
/// Reductions across the threads of one group, through shared memory, in a fixed tree order so
/// that results are deterministic run to run. Every thread of the group must call them (they
/// contain barriers) and the group size must be a power of two no larger than <see cref="MaxGroupSize"/>.
/// </summary>
public static class GroupReduce
{
    /// <summary>The largest group the reductions support (the size of their shared scratch).</summary>
    public const int MaxGroupSize = 256;

    /// <summary>Sum of <paramref name="value"/> over the group; every thread receives it.</summary>
    public static float Sum(float value)
    {
        var scratch = SharedMemory.Allocate<float>(MaxGroupSize);
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride) scratch[t] += scratch[t + stride];
            Group.Barrier();
        }
        float total = scratch[0];
        Group.Barrier(); // nobody may overwrite scratch[0] before everyone has read it
        return total;
    }

    /// <summary>Maximum of <paramref name="value"/> over the group; every thread receives it.</summary>
    public static float Max(float value)
    {
        var scratch = SharedMemory.Allocate<float>(MaxGroupSize);
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride) scratch[t] = XMath.Max(scratch[t], scratch[t + stride]);
            Group.Barrier();
        }
        float result = scratch[0];
        Group.Barrier();
        return result;
    }

    /// <summary>
    /// Integer sum over the group (exact, unlike a float sum of counts); every thread receives it.
    /// A twin of the float <see cref="Sum(float)"/> rather than one generic method: ILGPU kernels
    /// cannot call static-abstract interface members, so INumber-style generic math is not available.
    /// </summary>
    public static int Sum(int value)
    {
        var scratch = SharedMemory.Allocate<int>(MaxGroupSize);
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride) scratch[t] += scratch[t + stride];
            Group.Barrier();
        }
        int total = scratch[0];
        Group.Barrier();
        return total;
    }

    /// <summary>Integer minimum over the group; every thread receives it.</summary>
    public static int Min(int value)
    {
        var scratch = SharedMemory.Allocate<int>(MaxGroupSize);
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride && scratch[t + stride] < scratch[t]) scratch[t] = scratch[t + stride];
            Group.Barrier();
        }
        int result = scratch[0];
        Group.Barrier();
        return result;
    }

    /// <summary>
    /// The index of the largest value over the group, the lowest index among equal values; every
    /// thread receives it. Threads without a candidate pass (−∞, <see cref="int.MaxValue"/>).
    /// </summary>
    public static int ArgMax(float value, int index)
    {
        var values = SharedMemory.Allocate<float>(MaxGroupSize);
        var indices = SharedMemory.Allocate<int>(MaxGroupSize);
        int t = Group.IdxX;
        values[t] = value;
        indices[t] = index;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                float other = values[t + stride];
                int otherIndex = indices[t + stride];
                if (other > values[t] || (other == values[t] && otherIndex < indices[t]))
                {
                    values[t] = other;
                    indices[t] = otherIndex;
                }
            }
            Group.Barrier();
        }
        int result = indices[0];
        Group.Barrier();
        return result;
    }
}

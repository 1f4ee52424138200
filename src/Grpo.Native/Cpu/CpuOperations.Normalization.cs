using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>Per-thread scratch of the normalisation backwards: one row of norm and one of dnorm.</summary>
    private sealed class NormScratch(int c)
    {
        public readonly float[] Norm = new float[c];  // (C) (x − mean) · rstd, or x · rstd
        public readonly float[] DNorm = new float[c]; // (C) weight ⊙ dOutput, then the dInput term
    }

    public void LayerNormForward(Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float> weight, Tensor<float> bias, float epsilon)
    {
        NormalizationValidation.LayerNormForward(output, mean, rstd, input, weight, bias, epsilon);
        LayerNormRows(null, output, mean, rstd, input, null, weight, bias, epsilon);
    }

    public void AddLayerNormForward(Tensor<float> sum, Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float> addend, Tensor<float> weight, Tensor<float> bias, float epsilon)
    {
        NormalizationValidation.AddLayerNormForward(sum, output, mean, rstd, input, addend, weight, bias, epsilon);
        LayerNormRows(sum, output, mean, rstd, input, addend, weight, bias, epsilon);
    }

    /// <summary>LayerNorm of each row of input, or of input + addend (written to sum) when an addend is given.</summary>
    private void LayerNormRows(Tensor<float>? sum, Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float>? addend, Tensor<float> weight, Tensor<float> bias, float epsilon)
    {
        int m = input.Shape[0], c = input.Shape[1];
        CpuBuffer<float> y = Data(output, nameof(output)); // (M, C)
        CpuBuffer<float> mu = Data(mean, nameof(mean));    // (M)
        CpuBuffer<float> rs = Data(rstd, nameof(rstd));    // (M)
        CpuBuffer<float> x = Data(input, nameof(input));   // (M, C)
        CpuBuffer<float> w = Data(weight, nameof(weight)); // (C)
        CpuBuffer<float> b = Data(bias, nameof(bias));     // (C)
        var (s, a) = ResidualAddBuffers(sum, addend);      // (M, C) each, or null
        int rowsPerBlock = NormalizationValidation.BlockRows(m);
        // Every row is computed by one thread: the result does not depend on the thread count.
        Parallel.For(0, NormalizationValidation.Blocks(m), Device.Parallelism, block =>
        {
            int end = Math.Min(m, (block + 1) * rowsPerBlock);
            for (int i = block * rowsPerBlock; i < end; i++)
            {
                var xi = RowInput(x, a, s, i, c); // (C)
                var yi = y.AsSpan(i * c, c);      // (C)
                float rowMean = RowSum(xi) / c;
                // Two passes (mean, then the squares of x − mean): no cancellation when |mean| ≫ std.
                TensorPrimitives.Subtract(xi, rowMean, yi);
                float variance = RowDot(yi, yi) / c; // biased, as torch.nn.LayerNorm
                float r = 1f / MathF.Sqrt(variance + epsilon);
                TensorPrimitives.Multiply(yi, r, yi);
                TensorPrimitives.MultiplyAdd(yi, w, b, yi);
                mu[i] = rowMean;
                rs[i] = r;
            }
        });
    }

    public void LayerNormBackward(Tensor<float> dInput, Tensor<float> dWeight, Tensor<float> dBias,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> mean, Tensor<float> rstd)
    {
        var (m, c) = NormalizationValidation.LayerNormBackward(dInput, dWeight, dBias, dOutput, input, weight, mean, rstd);
        CpuBuffer<float> dx = Data(dInput, nameof(dInput));    // (M, C)
        CpuBuffer<float> dw = Data(dWeight, nameof(dWeight));  // (C)
        CpuBuffer<float> db = Data(dBias, nameof(dBias));      // (C)
        CpuBuffer<float> dy = Data(dOutput, nameof(dOutput));  // (M, C)
        CpuBuffer<float> x = Data(input, nameof(input));       // (M, C)
        CpuBuffer<float> w = Data(weight, nameof(weight));     // (C)
        CpuBuffer<float> mu = Data(mean, nameof(mean));        // (M)
        CpuBuffer<float> rs = Data(rstd, nameof(rstd));        // (M)
        int blocks = NormalizationValidation.Blocks(m), rowsPerBlock = NormalizationValidation.BlockRows(m);
        // Pooled: a model calls this twice per layer per step, and fresh arrays this size would be large-object garbage.
        float[] weightPartials = RentZeroed(blocks * c); // (blocks, C) Σ over the block's rows of dy ⊙ norm
        float[] biasPartials = RentZeroed(blocks * c);   // (blocks, C) Σ over the block's rows of dy

        // Each block's rows are walked in order by one thread; which thread does not matter.
        Parallel.For(0, blocks, Device.Parallelism, () => new NormScratch(c), (block, _, scratch) =>
        {
            var pw = weightPartials.AsSpan(block * c, c); // (C)
            var pb = biasPartials.AsSpan(block * c, c);   // (C)
            var norm = scratch.Norm.AsSpan(0, c);         // (C)
            var dnorm = scratch.DNorm.AsSpan(0, c);       // (C)
            int end = Math.Min(m, (block + 1) * rowsPerBlock);
            for (int i = block * rowsPerBlock; i < end; i++)
            {
                var dyi = dy.AsSpan(i * c, c); // (C)
                var dxi = dx.AsSpan(i * c, c); // (C)
                float r = rs[i];
                TensorPrimitives.Subtract(x.AsSpan(i * c, c), mu[i], norm);
                TensorPrimitives.Multiply(norm, r, norm);
                TensorPrimitives.Multiply(w.AsSpan(), dyi, dnorm);
                // dx = rstd · (dnorm − mean(dnorm) − norm · mean(dnorm ⊙ norm)): the two means are
                // the gradients through the row's mean and variance.
                float dnormMean = RowSum(dnorm) / c;
                float dnormNormMean = RowDot(dnorm, norm) / c;
                TensorPrimitives.MultiplyAdd(norm, -dnormNormMean, dnorm, dnorm);
                TensorPrimitives.Subtract(dnorm, dnormMean, dnorm);
                TensorPrimitives.MultiplyAdd(dnorm, r, dxi, dxi);
                TensorPrimitives.MultiplyAdd(dyi, norm, pw, pw);
                TensorPrimitives.Add(pb, dyi, pb);
            }
            return scratch;
        }, _ => { });
        AddBlockSums(weightPartials, blocks, c, dw);
        AddBlockSums(biasPartials, blocks, c, db);
        ArrayPool<float>.Shared.Return(weightPartials);
        ArrayPool<float>.Shared.Return(biasPartials);
    }

    public void RmsNormForward(Tensor<float> output, Tensor<float> rstd, Tensor<float> input, Tensor<float> weight, float epsilon)
    {
        NormalizationValidation.RmsNormForward(output, rstd, input, weight, epsilon);
        RmsNormRows(null, output, rstd, input, null, weight, epsilon);
    }

    public void AddRmsNormForward(Tensor<float> sum, Tensor<float> output, Tensor<float> rstd, Tensor<float> input, Tensor<float> addend,
        Tensor<float> weight, float epsilon)
    {
        NormalizationValidation.AddRmsNormForward(sum, output, rstd, input, addend, weight, epsilon);
        RmsNormRows(sum, output, rstd, input, addend, weight, epsilon);
    }

    /// <summary>RMSNorm of each row of input, or of input + addend (written to sum) when an addend is given.</summary>
    private void RmsNormRows(Tensor<float>? sum, Tensor<float> output, Tensor<float> rstd, Tensor<float> input, Tensor<float>? addend,
        Tensor<float> weight, float epsilon)
    {
        int m = input.Shape[0], c = input.Shape[1];
        CpuBuffer<float> y = Data(output, nameof(output)); // (M, C)
        CpuBuffer<float> rs = Data(rstd, nameof(rstd));    // (M)
        CpuBuffer<float> x = Data(input, nameof(input));   // (M, C)
        CpuBuffer<float> w = Data(weight, nameof(weight)); // (C)
        var (s, a) = ResidualAddBuffers(sum, addend);      // (M, C) each, or null
        int rowsPerBlock = NormalizationValidation.BlockRows(m);
        Parallel.For(0, NormalizationValidation.Blocks(m), Device.Parallelism, block =>
        {
            int end = Math.Min(m, (block + 1) * rowsPerBlock);
            for (int i = block * rowsPerBlock; i < end; i++)
            {
                rs[i] = RmsNormRow(RowInput(x, a, s, i, c), w, y.AsSpan(i * c, c), epsilon);
            }
        });
    }

    /// <summary>
    /// y = (x · rstd) · weight (LlamaRMSNorm's order) with rstd = 1/sqrt(Σx²/C + eps), returned; y may be x itself. Every
    /// RMSNorm of the CPU backend runs its rows through this, so a fused operation gives <see cref="RmsNormForward"/>'s bits.
    /// </summary>
    private static float RmsNormRow(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, float epsilon)
    {
        float r = 1f / MathF.Sqrt(RowDot(x, x) / x.Length + epsilon);
        TensorPrimitives.Multiply(x, r, y);
        TensorPrimitives.Multiply(y, weight, y);
        return r;
    }

    public void RmsNormBackward(Tensor<float> dInput, Tensor<float> dWeight,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> rstd)
    {
        var (m, c) = NormalizationValidation.RmsNormBackward(dInput, dWeight, dOutput, input, weight, rstd);
        CpuBuffer<float> dx = Data(dInput, nameof(dInput));    // (M, C)
        CpuBuffer<float> dw = Data(dWeight, nameof(dWeight));  // (C)
        CpuBuffer<float> dy = Data(dOutput, nameof(dOutput));  // (M, C)
        CpuBuffer<float> x = Data(input, nameof(input));       // (M, C)
        CpuBuffer<float> w = Data(weight, nameof(weight));     // (C)
        CpuBuffer<float> rs = Data(rstd, nameof(rstd));        // (M)
        int blocks = NormalizationValidation.Blocks(m), rowsPerBlock = NormalizationValidation.BlockRows(m);
        float[] weightPartials = RentZeroed(blocks * c); // (blocks, C) Σ over the block's rows of dy ⊙ norm

        Parallel.For(0, blocks, Device.Parallelism, () => new NormScratch(c), (block, _, scratch) =>
        {
            var pw = weightPartials.AsSpan(block * c, c); // (C)
            var norm = scratch.Norm.AsSpan(0, c);         // (C)
            var dnorm = scratch.DNorm.AsSpan(0, c);       // (C)
            int end = Math.Min(m, (block + 1) * rowsPerBlock);
            for (int i = block * rowsPerBlock; i < end; i++)
            {
                var dyi = dy.AsSpan(i * c, c); // (C)
                var dxi = dx.AsSpan(i * c, c); // (C)
                float r = rs[i];
                TensorPrimitives.Multiply(x.AsSpan(i * c, c), r, norm);
                TensorPrimitives.Multiply(w.AsSpan(), dyi, dnorm);
                // dx = rstd · (dnorm − norm · mean(dnorm ⊙ norm)): the second term flows through rstd.
                float dnormNormMean = RowDot(dnorm, norm) / c;
                TensorPrimitives.MultiplyAdd(norm, -dnormNormMean, dnorm, dnorm);
                TensorPrimitives.MultiplyAdd(dnorm, r, dxi, dxi);
                TensorPrimitives.MultiplyAdd(dyi, norm, pw, pw);
            }
            return scratch;
        }, _ => { });
        AddBlockSums(weightPartials, blocks, c, dw);
        ArrayPool<float>.Shared.Return(weightPartials);
    }

    /// <summary>The residual add's sum and addend buffers, or nulls for a plain norm.</summary>
    private (CpuBuffer<float>? Sum, CpuBuffer<float>? Addend) ResidualAddBuffers(Tensor<float>? sum, Tensor<float>? addend) =>
        addend is null ? (null, null) : (Data(sum!, nameof(sum)), Data(addend, nameof(addend)));

    /// <summary>
    /// Row i of what a norm normalises: input's row, or input + addend written to sum's row first (the same additions as
    /// <see cref="Add"/>; sum may be input or addend itself, each element is read before it is written).
    /// </summary>
    private static Span<float> RowInput(CpuBuffer<float> input, CpuBuffer<float>? addend, CpuBuffer<float>? sum, int i, int c)
    {
        var xi = input.AsSpan(i * c, c); // (C)
        if (addend is not { } add) return xi;
        var si = sum!.Value.AsSpan(i * c, c); // (C)
        TensorPrimitives.Add(xi, add.AsSpan(i * c, c), si);
        return si;
    }

    /// <summary>A pooled array of at least <paramref name="length"/> floats whose first <paramref name="length"/> are zero.</summary>
    private static float[] RentZeroed(int length)
    {
        float[] array = ArrayPool<float>.Shared.Rent(length);
        array.AsSpan(0, length).Clear();
        return array;
    }

    /// <summary>
    /// target += Σ_b partials[b] with the blocks added in order (one fixed association per channel),
    /// so the weight gradients do not depend on which thread produced which block.
    /// </summary>
    private static void AddBlockSums(float[] partials, int blocks, int c, CpuBuffer<float> target)
    {
        var total = partials.AsSpan(0, c); // (C) block 0, then the running sum
        for (int block = 1; block < blocks; block++)
            TensorPrimitives.Add(total, partials.AsSpan(block * c, c), total);
        var t = target.AsSpan();
        TensorPrimitives.Add(t, total, t);
    }

    /// <summary>
    /// Σ x in a fixed order (eight lanes over unaligned loads, the lanes, then the tail): unlike a
    /// library sum it never depends on the address's alignment, so the same row gives the same bits.
    /// </summary>
    private static float RowSum(ReadOnlySpan<float> x)
    {
        int i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && x.Length >= Vector256<float>.Count)
        {
            ref float x0 = ref MemoryMarshal.GetReference(x);
            var acc = Vector256<float>.Zero;
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
                acc += Vector256.LoadUnsafe(ref x0, (nuint)i);
            sum = Vector256.Sum(acc);
        }
        for (; i < x.Length; i++) sum += x[i];
        return sum;
    }

    /// <summary>Σ x ⊙ y in the fixed order of <see cref="RowSum"/>.</summary>
    private static float RowDot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        int i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && x.Length >= Vector256<float>.Count)
        {
            ref float x0 = ref MemoryMarshal.GetReference(x);
            ref float y0 = ref MemoryMarshal.GetReference(y);
            var acc = Vector256<float>.Zero;
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
                acc += Vector256.LoadUnsafe(ref x0, (nuint)i) * Vector256.LoadUnsafe(ref y0, (nuint)i);
            sum = Vector256.Sum(acc);
        }
        for (; i < x.Length; i++) sum += x[i] * y[i];
        return sum;
    }
}

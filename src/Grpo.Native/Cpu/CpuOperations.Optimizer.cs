using System.Runtime.Intrinsics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>Elements per parallel chunk of the element-wise optimizer loops: big enough to amortise the scheduling.</summary>
    private const int OptimizerChunk = 1 << 16;

    public double SumOfSquares(Tensor<float> values)
    {
        OptimizerValidation.SumOfSquares(Device, values);
        return SumOfSquaresInOrder(values);
    }

    /// <summary>Σ x² as fp32 block sums over fixed ranges, added in order in double: the same bits for any thread count.</summary>
    private double SumOfSquaresInOrder(Tensor<float> values)
    {
        int blocks = (int)((values.Length + OptimizerValidation.SumOfSquaresBlock - 1) / OptimizerValidation.SumOfSquaresBlock);
        CpuBuffer<float> x = Data(values, nameof(values)); // (P)
        int n = (int)values.Length;
        var partials = new float[blocks];          // (blocks)
        // Each block's fp32 sum is computed by one thread over a fixed range: the same bits for any thread count.
        Parallel.For(0, blocks, Device.Parallelism, b =>
        {
            int begin = b * OptimizerValidation.SumOfSquaresBlock;
            int length = Math.Min(OptimizerValidation.SumOfSquaresBlock, n - begin);
            partials[b] = TensorPrimitives.SumOfSquares(x.AsSpan(begin, length));
        });
        double total = 0;
        foreach (float p in partials) total += p;
        return total;
    }

    public void Scale(Tensor<float> values, float scale)
    {
        OptimizerValidation.Scale(Device, values, scale);
        CpuBuffer<float> x = Data(values, nameof(values)); // (P)
        int n = (int)values.Length;
        ParallelChunks(n, (begin, length) =>
        {
            var span = x.AsSpan(begin, length);
            TensorPrimitives.Multiply(span, scale, span);
        });
    }

    public void UpdateGate(Tensor<float> gradients, Tensor<float> objectiveScalars, Tensor<float> shares, float maxNorm,
        Tensor<float>? previousGate, Tensor<float> gate)
    {
        int calls = OptimizerValidation.UpdateGate(Device, gradients, objectiveScalars, shares, maxNorm, previousGate, gate);
        CpuBuffer<float> scalars = Data(objectiveScalars, nameof(objectiveScalars)); // (M, ObjectiveScalars.Count)
        CpuBuffer<float> share = Data(shares, nameof(shares));                       // (M)
        CpuBuffer<float> output = Data(gate, nameof(gate));                          // (UpdateGateSlots.Count)
        double squared = SumOfSquaresInOrder(gradients);
        float norm = (float)Math.Sqrt(squared);
        float loss = 0;
        bool badInput = false;
        for (int k = 0; k < calls; k++)
        {
            if (share[k] == 0f) continue;
            var row = scalars.AsSpan(k * ObjectiveScalars.Count, ObjectiveScalars.Count);
            loss += share[k] * row[Grpo.Kernels.ObjectiveKernels.ResultLoss];
            badInput |= ObjectiveScalars.ReportsBadInput(row);
        }
        bool previousApplied = previousGate is null || Data(previousGate, nameof(previousGate))[UpdateGateSlots.Apply] != 0f;
        output[UpdateGateSlots.Scale] = norm > maxNorm ? (float)(maxNorm / ((double)norm + 1e-6)) : 1f;
        output[UpdateGateSlots.Apply] = previousApplied && !badInput && float.IsFinite(loss) && double.IsFinite(squared) ? 1f : 0f;
        output[UpdateGateSlots.Norm] = norm;
        output[UpdateGateSlots.Loss] = loss;
    }

    public void AdamWStep(Tensor<float> parameters, Tensor<float> gradients, Tensor<float> firstMoment, Tensor<float> secondMoment,
        int step, float learningRate, AdamWOptions options, Tensor<float>? gate = null)
    {
        var s = OptimizerValidation.AdamW(Device, parameters, gradients, firstMoment, secondMoment, step, learningRate, options, gate);
        // The gate is read here, on the host: the managed backend's memory is the host's.
        if (gate is not null && Data(gate, nameof(gate))[UpdateGateSlots.Apply] == 0f) return;
        float gradientScale = gate is null ? 1f : Data(gate, nameof(gate))[UpdateGateSlots.Scale]; // g·1 = g exactly
        CpuBuffer<float> p = Data(parameters, nameof(parameters));     // (P)
        CpuBuffer<float> g = Data(gradients, nameof(gradients));       // (P)
        CpuBuffer<float> m = Data(firstMoment, nameof(firstMoment));   // (P)
        CpuBuffer<float> v = Data(secondMoment, nameof(secondMoment)); // (P)
        float oneMinusBeta1 = 1 - s.Beta1, oneMinusBeta2 = 1 - s.Beta2;
        ParallelChunks((int)parameters.Length, (begin, length) =>
        {
            int end = begin + length, i = begin;
            // Vector256 sqrt and divide round exactly like the scalar ones, so the tail and the body agree bit for bit.
            if (Vector256.IsHardwareAccelerated)
            {
                var b1 = Vector256.Create(oneMinusBeta1);
                var beta2 = Vector256.Create(s.Beta2);
                var b2 = Vector256.Create(oneMinusBeta2);
                var bc2 = Vector256.Create(s.BiasCorrection2Sqrt);
                var eps = Vector256.Create(s.Epsilon);
                var clip = Vector256.Create(gradientScale);
                var decay = Vector256.Create(s.DecayFactor);
                var stepSize = Vector256.Create(s.StepSize);
                for (; i <= end - Vector256<float>.Count; i += Vector256<float>.Count)
                {
                    var gi = Vector256.LoadUnsafe(ref g[0], (nuint)i) * clip;
                    var m0 = Vector256.LoadUnsafe(ref m[0], (nuint)i);
                    var mi = m0 + b1 * (gi - m0);
                    var vi = beta2 * Vector256.LoadUnsafe(ref v[0], (nuint)i) + b2 * gi * gi;
                    mi.StoreUnsafe(ref m[0], (nuint)i);
                    vi.StoreUnsafe(ref v[0], (nuint)i);
                    var denom = Vector256.Sqrt(vi) / bc2 + eps;
                    var pi = Vector256.LoadUnsafe(ref p[0], (nuint)i) * decay - stepSize * (mi / denom);
                    pi.StoreUnsafe(ref p[0], (nuint)i);
                }
            }
            for (; i < end; i++)
            {
                float gi = g[i] * gradientScale;
                float mi = m[i] + oneMinusBeta1 * (gi - m[i]); // PyTorch's m.lerp_(g, 1 − β1)
                float vi = s.Beta2 * v[i] + oneMinusBeta2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                float denom = MathF.Sqrt(vi) / s.BiasCorrection2Sqrt + s.Epsilon;
                p[i] = p[i] * s.DecayFactor - s.StepSize * (mi / denom);
            }
        });
    }

    /// <summary>Runs <paramref name="body"/>(begin, length) over fixed chunks of [0, n) in parallel.</summary>
    private void ParallelChunks(int n, Action<int, int> body)
    {
        int chunks = (n + OptimizerChunk - 1) / OptimizerChunk;
        if (chunks <= 1)
        {
            if (n > 0) body(0, n);
            return;
        }
        Parallel.For(0, chunks, Device.Parallelism, c =>
        {
            int begin = c * OptimizerChunk;
            body(begin, Math.Min(OptimizerChunk, n - begin));
        });
    }
}

using System.Buffers;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>Logits scratch kept between calls (chunk x V floats); taken and given back so concurrent calls never share it.</summary>
    private float[]? _gatherLogits;

    /// <summary>Tokens per chunk: about 16 MiB of logits, between 32 and 96 rows (96 is the GEMM's row tile).</summary>
    internal static int GatherChunkTokens(int m, int v) =>
        Math.Min(m, Math.Clamp(16 * 1024 * 1024 / (4 * v), 32, CpuGemm.MaxTileRows));

    /// <summary>
    /// Extra bytes (at most) the fused log-softmax-gather uses for M tokens, vocabulary V and C
    /// channels: one chunk of logits, the dHidden GEMM's split-K partial sums (chunk x C per 2048
    /// vocabulary entries), the chunk's hidden rows packed once per GEMM, and per worker thread a row of V floats and the GEMM's packing panels.
    /// Compare with the M · V · 4 bytes of materialised logits.
    /// </summary>
    internal long LogSoftmaxGatherScratchBytes(int m, int v, int c)
    {
        int workers = Device.Parallelism.MaxDegreeOfParallelism > 0 ? Device.Parallelism.MaxDegreeOfParallelism : Environment.ProcessorCount;
        int chunk = GatherChunkTokens(m, v);
        long splitPartials = (long)((v + CpuGemm.SplitK - 1) / CpuGemm.SplitK) * chunk * c;
        long sharedPanels = 2L * (chunk + CpuGemm.MR) * c; // the chunk's hidden rows packed once per GEMM
        return 4L * ((long)chunk * v + splitPartials + sharedPanels) + 4L * workers * (v + CpuGemm.PackFloatsPerThread);
    }

    public void LogSoftmaxGatherForward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature,
        Tensor<float> logprobs, Tensor<float> logSumExp, Tensor<float>? entropy)
    {
        var (m, _, v) = LogSoftmaxGatherValidation.Forward(hidden, lmHead, targets, temperature, logprobs, logSumExp, entropy);
        LogSoftmaxGatherForward(hidden, lmHead, targets, temperature, logprobs, logSumExp, entropy, GatherChunkTokens(m, v));
    }

    /// <summary>The forward with an explicit chunk size, so tests can force several chunks and a ragged last one.</summary>
    internal void LogSoftmaxGatherForward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature,
        Tensor<float> logprobs, Tensor<float> logSumExp, Tensor<float>? entropy, int chunkTokens)
    {
        var (m, c, v) = LogSoftmaxGatherValidation.Forward(hidden, lmHead, targets, temperature, logprobs, logSumExp, entropy);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTokens, 1);
        float[] h = Data(hidden, nameof(hidden));          // (M, C)
        float[] w = Data(lmHead, nameof(lmHead));          // (V, C)
        int[] y = Data(targets, nameof(targets));          // (M)
        float[] logp = Data(logprobs, nameof(logprobs));   // (M)
        float[] lse = Data(logSumExp, nameof(logSumExp));  // (M)
        float[]? ent = entropy is null ? null : Data(entropy, nameof(entropy)); // (M)
        LogSoftmaxGatherValidation.Targets(y, v);
        float invT = 1f / temperature;

        float[] logits = TakeGatherScratch(chunkTokens * v); // (chunk, V)
        try
        {
            for (int m0 = 0; m0 < m; m0 += chunkTokens)
            {
                int mc = Math.Min(chunkTokens, m - m0);
                CpuGemm.MultiplyTransposedB(Device.Parallelism, mc, v, c, h.AsSpan(m0 * c, mc * c), c, w, c,
                    logits.AsSpan(0, mc * v), v, accumulate: false);
                Parallel.For(0, mc, Device.Parallelism, () => ArrayPool<float>.Shared.Rent(v), (r, _, exp) =>
                {
                    int row = m0 + r;
                    var z = logits.AsSpan(r * v, v); // (V) raw h·Wᵀ, becomes z − max
                    TensorPrimitives.Multiply(z, invT, z);
                    float max = TensorPrimitives.Max(z);
                    TensorPrimitives.Subtract(z, max, z);
                    float shiftedTarget = z[y[row]];
                    float sum, weighted = 0;
                    if (ent is null)
                    {
                        TensorPrimitives.Exp(z, z);
                        sum = TensorPrimitives.Sum(z);
                    }
                    else
                    {
                        var e = exp.AsSpan(0, v); // (V) exp(z − max), kept beside z for Σ p·z
                        TensorPrimitives.Exp(z, e);
                        sum = TensorPrimitives.Sum(e);
                        weighted = TensorPrimitives.Dot(e, z);
                    }
                    float logSum = MathF.Log(sum);
                    lse[row] = max + logSum;
                    logp[row] = shiftedTarget - logSum;
                    // Entropy is shift-invariant: lse − Σ p z = log S − Σ e (z − max) / S.
                    if (ent is not null) ent[row] = logSum - weighted / sum;
                    return exp;
                }, exp => ArrayPool<float>.Shared.Return(exp));
            }
        }
        finally
        {
            _gatherLogits = logits;
        }
    }

    public void LogSoftmaxGatherBackward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature,
        Tensor<float> logSumExp, Tensor<float> dLogprobs, Tensor<float> dHidden, Tensor<float> dLmHead)
    {
        var (m, _, v) = LogSoftmaxGatherValidation.Backward(hidden, lmHead, targets, temperature, logSumExp, dLogprobs, dHidden, dLmHead);
        LogSoftmaxGatherBackward(hidden, lmHead, targets, temperature, logSumExp, dLogprobs, dHidden, dLmHead, GatherChunkTokens(m, v));
    }

    /// <summary>The backward with an explicit chunk size, so tests can force several chunks and a ragged last one.</summary>
    internal void LogSoftmaxGatherBackward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature,
        Tensor<float> logSumExp, Tensor<float> dLogprobs, Tensor<float> dHidden, Tensor<float> dLmHead, int chunkTokens)
    {
        var (m, c, v) = LogSoftmaxGatherValidation.Backward(hidden, lmHead, targets, temperature, logSumExp, dLogprobs, dHidden, dLmHead);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTokens, 1);
        float[] h = Data(hidden, nameof(hidden));           // (M, C)
        float[] w = Data(lmHead, nameof(lmHead));           // (V, C)
        int[] y = Data(targets, nameof(targets));           // (M)
        float[] lse = Data(logSumExp, nameof(logSumExp));   // (M)
        float[] g = Data(dLogprobs, nameof(dLogprobs));     // (M)
        float[] dh = Data(dHidden, nameof(dHidden));        // (M, C)
        float[] dw = Data(dLmHead, nameof(dLmHead));        // (V, C)
        LogSoftmaxGatherValidation.Targets(y, v);
        float invT = 1f / temperature;

        float[] dz = TakeGatherScratch(chunkTokens * v); // (chunk, V) logits, then dz / T in place
        try
        {
            for (int m0 = 0; m0 < m; m0 += chunkTokens)
            {
                int mc = Math.Min(chunkTokens, m - m0);
                var hChunk = h.AsSpan(m0 * c, mc * c); // (mc, C)
                var dzChunk = dz.AsSpan(0, mc * v);    // (mc, V)
                // Recompute the chunk's logits: the same GEMM as the forward, so bit-identical.
                CpuGemm.MultiplyTransposedB(Device.Parallelism, mc, v, c, hChunk, c, w, c, dzChunk, v, accumulate: false);
                Parallel.For(0, mc, Device.Parallelism, r =>
                {
                    int row = m0 + r;
                    var z = dz.AsSpan(r * v, v); // (V)
                    float scale = g[row] * invT;
                    // (1/T) dz_j = (g/T)(1[j = y] − exp(z_j/T − lse)).
                    TensorPrimitives.Multiply(z, invT, z);
                    TensorPrimitives.Subtract(z, lse[row], z);
                    TensorPrimitives.Exp(z, z);
                    TensorPrimitives.Multiply(z, -scale, z);
                    z[y[row]] += scale;
                });
                // dh (mc, C) += dz (mc, V) · W (V, C): parallel over tiles of dh.
                CpuGemm.Multiply(Device.Parallelism, mc, c, v, dzChunk, v, w, c, dh.AsSpan(m0 * c, mc * c), c, accumulate: true);
                // dW (V, C) += dzᵀ (V, mc) · h (mc, C): parallel over vocabulary rows; chunks in order, so no races and a fixed order.
                CpuGemm.MultiplyTransposedA(Device.Parallelism, v, c, mc, dzChunk, v, hChunk, c, dw, c, accumulate: true);
            }
        }
        finally
        {
            _gatherLogits = dz;
        }
    }

    private float[] TakeGatherScratch(int length)
    {
        float[]? cached = Interlocked.Exchange(ref _gatherLogits, null);
        return cached is not null && cached.Length >= length ? cached : new float[length];
    }
}

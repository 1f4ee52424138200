using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
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
    /// vocabulary entries), the chunk's hidden rows packed once per GEMM, and per worker thread a
    /// row of V floats and the GEMM's packing panels.
    /// Compare with the M · V · 4 bytes of materialised logits.
    /// </summary>
    public long LogSoftmaxGatherScratchBytes(int m, int v, int c)
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
        CpuBuffer<float> h = Data(hidden, nameof(hidden));          // (M, C)
        CpuBuffer<float> w = Data(lmHead, nameof(lmHead));          // (V, C)
        CpuBuffer<int> y = Data(targets, nameof(targets));          // (M)
        CpuBuffer<float> logp = Data(logprobs, nameof(logprobs));   // (M)
        CpuBuffer<float> lse = Data(logSumExp, nameof(logSumExp));  // (M)
        CpuBuffer<float>? ent = entropy is null ? null : Data(entropy, nameof(entropy)); // (M)
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
                Parallel.For(0, mc, Device.Parallelism, r =>
                {
                    int row = m0 + r;
                    var z = logits.AsSpan(r * v, v); // (V) raw h·Wᵀ
                    // T > 0, so the largest z/T is the largest z, divided by T.
                    float max = TensorPrimitives.Max(z) * invT;
                    var (sum, weighted) = ExpSums(z, invT, max);
                    float logSum = MathF.Log(sum);
                    lse[row] = max + logSum;
                    logp[row] = z[y[row]] * invT - max - logSum;
                    // Entropy is shift-invariant: lse − Σ p z = log S − Σ e (z − max) / S.
                    if (ent is { } entropyOut) entropyOut[row] = logSum - weighted / sum;
                });
            }
        }
        finally
        {
            _gatherLogits = logits;
        }
    }

    public void LogSoftmaxGatherBackward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature,
        Tensor<float> logSumExp, Tensor<float> dLogprobs, Tensor<float> dHidden, Tensor<float> dLmHead,
        Tensor<float>? entropy = null, Tensor<float>? dEntropy = null)
    {
        var (m, _, v) = LogSoftmaxGatherValidation.Backward(hidden, lmHead, targets, temperature, logSumExp, dLogprobs, dHidden, dLmHead, entropy, dEntropy);
        LogSoftmaxGatherBackward(hidden, lmHead, targets, temperature, logSumExp, dLogprobs, dHidden, dLmHead, GatherChunkTokens(m, v), entropy, dEntropy);
    }

    /// <summary>The backward with an explicit chunk size, so tests can force several chunks and a ragged last one.</summary>
    internal void LogSoftmaxGatherBackward(Tensor<float> hidden, Tensor<float> lmHead, Tensor<int> targets, float temperature,
        Tensor<float> logSumExp, Tensor<float> dLogprobs, Tensor<float> dHidden, Tensor<float> dLmHead, int chunkTokens,
        Tensor<float>? entropy = null, Tensor<float>? dEntropy = null)
    {
        var (m, c, v) = LogSoftmaxGatherValidation.Backward(hidden, lmHead, targets, temperature, logSumExp, dLogprobs, dHidden, dLmHead, entropy, dEntropy);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTokens, 1);
        CpuBuffer<float> h = Data(hidden, nameof(hidden));           // (M, C)
        CpuBuffer<float> w = Data(lmHead, nameof(lmHead));           // (V, C)
        CpuBuffer<int> y = Data(targets, nameof(targets));           // (M)
        CpuBuffer<float> lse = Data(logSumExp, nameof(logSumExp));   // (M)
        CpuBuffer<float> g = Data(dLogprobs, nameof(dLogprobs));     // (M)
        CpuBuffer<float> dh = Data(dHidden, nameof(dHidden));        // (M, C)
        CpuBuffer<float> dw = Data(dLmHead, nameof(dLmHead));        // (V, C)
        bool entropyGradient = entropy is not null;
        CpuBuffer<float> ent = entropyGradient ? Data(entropy!, nameof(entropy)) : lse;     // (M), read only with the pair
        CpuBuffer<float> dEnt = entropyGradient ? Data(dEntropy!, nameof(dEntropy)) : lse;  // (M), read only with the pair
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
                    if (entropyGradient) EntropySoftmaxGradient(z, invT, lse[row], scale, dEnt[row] * invT, ent[row]);
                    else ScaledSoftmax(z, invT, lse[row], -scale);
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

    /// <summary>
    /// One pass over a row of raw logits: with s_j = z_j·invT − shift and e_j = exp(s_j), returns
    /// (Σ e, Σ e·s), summed in a fixed lane order so the result never depends on the thread count.
    /// </summary>
    private static (float Sum, float Weighted) ExpSums(ReadOnlySpan<float> z, float invT, float shift)
    {
        var sum = Vector256<float>.Zero;
        var weighted = Vector256<float>.Zero;
        var scale = Vector256.Create(invT);
        var offset = Vector256.Create(shift);
        int j = 0;
        for (; j + Vector256<float>.Count <= z.Length; j += Vector256<float>.Count)
        {
            var shifted = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(z), (nuint)j) * scale - offset;
            var e = Vector256.Exp(shifted);
            sum += e;
            weighted += e * shifted;
        }
        float total = Vector256.Sum(sum), totalWeighted = Vector256.Sum(weighted);
        for (; j < z.Length; j++)
        {
            float shifted = z[j] * invT - shift, e = MathF.Exp(shifted);
            total += e;
            totalWeighted += e * shifted;
        }
        return (total, totalWeighted);
    }

    /// <summary>In one pass, z_j ← factor · exp(z_j·invT − lse): the softmax of the row, scaled.</summary>
    private static void ScaledSoftmax(Span<float> z, float invT, float lse, float factor)
    {
        var scale = Vector256.Create(invT);
        var offset = Vector256.Create(lse);
        var multiplier = Vector256.Create(factor);
        ref float start = ref MemoryMarshal.GetReference(z);
        int j = 0;
        for (; j + Vector256<float>.Count <= z.Length; j += Vector256<float>.Count)
            (Vector256.Exp(Vector256.LoadUnsafe(ref start, (nuint)j) * scale - offset) * multiplier).StoreUnsafe(ref start, (nuint)j);
        for (; j < z.Length; j++) z[j] = factor * MathF.Exp(z[j] * invT - lse);
    }

    /// <summary>
    /// In one pass, with log p_j = z_j·invT − lse: z_j ← −p_j (scale + entropyScale (log p_j + entropy)), the
    /// softmax part of the log-prob gradient plus the entropy's gradient −p_j (log p_j + H), each scaled.
    /// </summary>
    private static void EntropySoftmaxGradient(Span<float> z, float invT, float lse, float scale, float entropyScale, float entropy)
    {
        var inverse = Vector256.Create(invT);
        var offset = Vector256.Create(lse);
        var logScale = Vector256.Create(scale);
        var bonus = Vector256.Create(entropyScale);
        var h = Vector256.Create(entropy);
        ref float start = ref MemoryMarshal.GetReference(z);
        int j = 0;
        for (; j + Vector256<float>.Count <= z.Length; j += Vector256<float>.Count)
        {
            var logProbability = Vector256.LoadUnsafe(ref start, (nuint)j) * inverse - offset;
            (-Vector256.Exp(logProbability) * (logScale + bonus * (logProbability + h))).StoreUnsafe(ref start, (nuint)j);
        }
        for (; j < z.Length; j++)
        {
            float logProbability = z[j] * invT - lse;
            z[j] = -MathF.Exp(logProbability) * (scale + entropyScale * (logProbability + entropy));
        }
    }

    private float[] TakeGatherScratch(int length)
    {
        float[]? cached = Interlocked.Exchange(ref _gatherLogits, null);
        return cached is not null && cached.Length >= length ? cached : new float[length];
    }
}

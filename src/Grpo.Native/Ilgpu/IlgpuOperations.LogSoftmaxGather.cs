using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    /// <summary>Bytes of logits one chunk may hold on the device.</summary>
    private const long GatherChunkBytes = 64L * 1024 * 1024;

    private readonly object _gatherGate = new();

    /// <summary>The (chunk, V) logits scratch, allocated on first use and grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _gatherScratch;

    /// <summary>Tokens per chunk: as many as fit in 64 MiB of logits, at least one, at most M.</summary>
    internal static int GatherChunkTokens(int m, int v) => (int)Math.Clamp(GatherChunkBytes / (4L * v), 1, m);

    /// <summary>Extra device bytes the fused log-softmax-gather uses for M tokens, vocabulary V and C channels (one logits chunk); compare with M · V · 4.</summary>
    public long LogSoftmaxGatherScratchBytes(int m, int v, int c) => 4L * GatherChunkTokens(m, v) * v;

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
        var h = View(hidden, nameof(hidden)).BaseView;            // (M, C)
        var w = View(lmHead, nameof(lmHead)).BaseView;            // (V, C)
        var y = View(targets, nameof(targets)).BaseView;          // (M)
        var logp = View(logprobs, nameof(logprobs)).BaseView;     // (M)
        var lse = View(logSumExp, nameof(logSumExp)).BaseView;    // (M)
        // Without an entropy output the kernel gets the lse view and a flag telling it not to write.
        var ent = entropy is null ? lse : View(entropy, nameof(entropy)).BaseView; // (M)
        CheckIndexRange(targets, nameof(targets), values => LogSoftmaxGatherValidation.Targets(values, v));
        float invT = 1f / temperature;
        var rows = Device.Kernel(typeof(LogSoftmaxGatherKernels), nameof(LogSoftmaxGatherKernels.RowStatistics), accelerator =>
            accelerator.LoadStreamKernel<GatherRowArgs, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
                LogSoftmaxGatherKernels.RowStatistics));

        lock (_gatherGate)
        {
            var logits = GatherScratch((long)chunkTokens * v); // (chunk, V)
            for (int m0 = 0; m0 < m; m0 += chunkTokens)
            {
                int mc = Math.Min(chunkTokens, m - m0);
                Matmul(MatmulArgs.TransposedB(mc, v, c, c, c, v, invT, accumulate: false), h.SubView((long)m0 * c, (long)mc * c), w, logits);
                rows(new KernelConfig(mc, Device.RowGroupSize), new GatherRowArgs(v, m0, invT, entropy is not null), logits, y, logp, lse, ent);
            }
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
        var h = View(hidden, nameof(hidden)).BaseView;            // (M, C)
        var w = View(lmHead, nameof(lmHead)).BaseView;            // (V, C)
        var y = View(targets, nameof(targets)).BaseView;          // (M)
        var lse = View(logSumExp, nameof(logSumExp)).BaseView;    // (M)
        var g = View(dLogprobs, nameof(dLogprobs)).BaseView;      // (M)
        var dh = View(dHidden, nameof(dHidden)).BaseView;         // (M, C)
        var dw = View(dLmHead, nameof(dLmHead)).BaseView;         // (V, C)
        // Without the entropy pair the kernel gets the lse view twice and a flag telling it not to read them.
        bool entropyGradient = entropy is not null;
        var ent = entropyGradient ? View(entropy!, nameof(entropy)).BaseView : lse;     // (M)
        var dEnt = entropyGradient ? View(dEntropy!, nameof(dEntropy)).BaseView : lse;  // (M)
        CheckIndexRange(targets, nameof(targets), values => LogSoftmaxGatherValidation.Targets(values, v));
        float invT = 1f / temperature;
        var gradient = Device.Kernel(typeof(LogSoftmaxGatherKernels), nameof(LogSoftmaxGatherKernels.SoftmaxGradient), accelerator =>
            accelerator.LoadStreamKernel<GatherRowArgs, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
                LogSoftmaxGatherKernels.SoftmaxGradient));

        lock (_gatherGate)
        {
            var dz = GatherScratch((long)chunkTokens * v); // (chunk, V): logits, then dz / T in place
            for (int m0 = 0; m0 < m; m0 += chunkTokens)
            {
                int mc = Math.Min(chunkTokens, m - m0);
                var hChunk = h.SubView((long)m0 * c, (long)mc * c); // (mc, C)
                Matmul(MatmulArgs.TransposedB(mc, v, c, c, c, v, invT, accumulate: false), hChunk, w, dz);
                gradient(new KernelConfig(mc, Device.RowGroupSize), new GatherRowArgs(v, m0, invT, false, entropyGradient), dz, y, lse, g, ent, dEnt);
                // dh (mc, C) += dz (mc, V) · W (V, C)
                Matmul(MatmulArgs.Plain(mc, c, v, v, c, c, 1f, accumulate: true), dz, w, dh.SubView((long)m0 * c, (long)mc * c));
                // dW (V, C) += dzᵀ (V, mc) · h (mc, C): each element summed by one thread over the chunk's tokens, chunks in order.
                Matmul(MatmulArgs.TransposedA(v, c, mc, v, c, c, 1f, accumulate: true), dz, hChunk, dw);
            }
        }
    }

    private ArrayView<float> GatherScratch(long length) => (_gatherScratch ??= new ReusableDeviceBuffer(Device)).Get(length);
}

using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _attentionGate = new();

    /// <summary>The (M, H) D_i = dO_i·O_i scratch of the backward, allocated on first use and grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _attentionDelta;

    public void AttentionForward(Tensor<float> output, Tensor<float> logSumExp,
        Tensor<float> query, Tensor<float> key, Tensor<float> value, Tensor<int> seqStarts, float scale)
    {
        var (m, h, kvh, d, b) = AttentionValidation.Forward(output, logSumExp, query, key, value, seqStarts, scale);
        var o = View(output, nameof(output)).BaseView;           // (M, H, D)
        var lse = View(logSumExp, nameof(logSumExp)).BaseView;   // (M, H)
        var q = View(query, nameof(query)).BaseView;             // (M, H, D)
        var k = View(key, nameof(key)).BaseView;                 // (M, KVH, D)
        var v = View(value, nameof(value)).BaseView;             // (M, KVH, D)
        var starts = View(seqStarts, nameof(seqStarts)).BaseView; // (B+1)
        AttentionValidation.SeqStarts(HostIndices(seqStarts, nameof(seqStarts)), m);
        var forward = Device.Kernel(typeof(AttentionKernels), nameof(AttentionKernels.AttentionForward), accelerator =>
            accelerator.LoadStreamKernel<AttentionArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>,
                ArrayView<float>, ArrayView<float>>(AttentionKernels.AttentionForward));
        forward(new KernelConfig(m * h, Device.RowGroupSize), new AttentionArgs(h, kvh, d, b, scale), q, k, v, starts, o, lse);
    }

    public void AttentionBackward(Tensor<float> dQuery, Tensor<float> dKey, Tensor<float> dValue,
        Tensor<float> dOutput, Tensor<float> query, Tensor<float> key, Tensor<float> value,
        Tensor<float> output, Tensor<float> logSumExp, Tensor<int> seqStarts, float scale)
    {
        var (m, h, kvh, d, b) = AttentionValidation.Backward(dQuery, dKey, dValue, dOutput, query, key, value,
            output, logSumExp, seqStarts, scale);
        var dq = View(dQuery, nameof(dQuery)).BaseView;          // (M, H, D)
        var dk = View(dKey, nameof(dKey)).BaseView;              // (M, KVH, D)
        var dv = View(dValue, nameof(dValue)).BaseView;          // (M, KVH, D)
        var dO = View(dOutput, nameof(dOutput)).BaseView;        // (M, H, D)
        var q = View(query, nameof(query)).BaseView;             // (M, H, D)
        var k = View(key, nameof(key)).BaseView;                 // (M, KVH, D)
        var v = View(value, nameof(value)).BaseView;             // (M, KVH, D)
        var o = View(output, nameof(output)).BaseView;           // (M, H, D)
        var lse = View(logSumExp, nameof(logSumExp)).BaseView;   // (M, H)
        var starts = View(seqStarts, nameof(seqStarts)).BaseView; // (B+1)
        AttentionValidation.SeqStarts(HostIndices(seqStarts, nameof(seqStarts)), m);
        var args = new AttentionArgs(h, kvh, d, b, scale);
        var queryKernel = Device.Kernel(typeof(AttentionKernels), nameof(AttentionKernels.AttentionBackwardQuery), accelerator =>
            accelerator.LoadStreamKernel<AttentionArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>>(AttentionKernels.AttentionBackwardQuery));
        var keyValueKernel = Device.Kernel(typeof(AttentionKernels), nameof(AttentionKernels.AttentionBackwardKeyValue), accelerator =>
            accelerator.LoadStreamKernel<AttentionArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>>(AttentionKernels.AttentionBackwardKeyValue));

        lock (_attentionGate)
        {
            var delta = AttentionDelta((long)m * h); // (M, H)
            // Same stream: the key/value kernel starts after every D_i is written.
            queryKernel(new KernelConfig(m * h, Device.RowGroupSize), args, q, k, v, dO, o, lse, starts, dq, delta);
            keyValueKernel(new KernelConfig(m * kvh, Device.RowGroupSize), args, q, k, v, dO, lse, delta, starts, dk, dv);
        }
    }

    private ArrayView<float> AttentionDelta(long length) => (_attentionDelta ??= new ReusableDeviceBuffer(Device)).Get(length);
}

using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    /// <inheritdoc />
    /// <remarks>Does not scan the logits for NaN or infinity (that would cost a pass and a host sync); such a row gives an unspecified token.</remarks>
    public void SampleTokens(Tensor<float> logits /* (R, V) */, SamplingOptions options, ulong seed, int step,
        Tensor<int> tokens /* (R) */, Tensor<float> logprobs /* (R) */, int firstRow = 0)
    {
        var (rows, p) = SamplingValidation.Validate(logits, options, seed, step, tokens, logprobs, firstRow);
        var x = View(logits, nameof(logits)); // (R, V)
        var outTokens = View(tokens, nameof(tokens)); // (R)
        var outLogprobs = View(logprobs, nameof(logprobs)); // (R)
        var kernel = Device.Kernel(typeof(SamplingKernels), nameof(SamplingKernels.SampleRows), a =>
            a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, SamplingParameters>(
                SamplingKernels.SampleRows));
        // One group per row: the group reduces the row, so rows never share a reduction.
        KernelWrites(tokens, nameof(tokens), 0, logits.Shape[1] - 1); // every sampled id is a column of the row
        kernel(new KernelConfig(rows, Device.RowGroupSize), x.BaseView, outTokens.BaseView, outLogprobs.BaseView, p);
    }
}

using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _normGate = new();

    /// <summary>The backwards' (2, blocks, C) weight and bias partial sums, allocated on first use and grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _normPartials;

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

    /// <summary>One launch: LayerNorm of each row of input, or of input + addend (written to sum) when an addend is given.</summary>
    private void LayerNormRows(Tensor<float>? sum, Tensor<float> output, Tensor<float> mean, Tensor<float> rstd,
        Tensor<float> input, Tensor<float>? addend, Tensor<float> weight, Tensor<float> bias, float epsilon)
    {
        int m = input.Shape[0], c = input.Shape[1];
        var y = View(output, nameof(output)).BaseView; // (M, C)
        var mu = View(mean, nameof(mean)).BaseView;    // (M)
        var rs = View(rstd, nameof(rstd)).BaseView;    // (M)
        var x = View(input, nameof(input)).BaseView;   // (M, C)
        var w = View(weight, nameof(weight)).BaseView; // (C)
        var b = View(bias, nameof(bias)).BaseView;     // (C)
        var (s, a) = ResidualAddViews(sum, addend, x); // (M, C) each; input itself, unused, without an addend
        var kernel = Device.Kernel(typeof(NormalizationKernels), nameof(NormalizationKernels.LayerNormForward), accelerator =>
            accelerator.LoadStreamKernel<NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(NormalizationKernels.LayerNormForward));
        kernel(new KernelConfig(m, Device.RowGroupSize), Args(m, c, epsilon, addend is not null), x, a, s, w, b, y, mu, rs);
    }

    public void LayerNormBackward(Tensor<float> dInput, Tensor<float> dWeight, Tensor<float> dBias,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> mean, Tensor<float> rstd)
    {
        var (m, c) = NormalizationValidation.LayerNormBackward(dInput, dWeight, dBias, dOutput, input, weight, mean, rstd);
        var dx = View(dInput, nameof(dInput)).BaseView;   // (M, C)
        var dw = View(dWeight, nameof(dWeight)).BaseView; // (C)
        var db = View(dBias, nameof(dBias)).BaseView;     // (C)
        var dy = View(dOutput, nameof(dOutput)).BaseView; // (M, C)
        var x = View(input, nameof(input)).BaseView;      // (M, C)
        var w = View(weight, nameof(weight)).BaseView;    // (C)
        var mu = View(mean, nameof(mean)).BaseView;       // (M)
        var rs = View(rstd, nameof(rstd)).BaseView;       // (M)
        var rows = Device.Kernel(typeof(NormalizationKernels), nameof(NormalizationKernels.LayerNormBackwardBlock), accelerator =>
            accelerator.LoadStreamKernel<NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>>(NormalizationKernels.LayerNormBackwardBlock));
        int blocks = NormalizationValidation.Blocks(m);
        long partialLength = (long)blocks * c;
        lock (_normGate)
        {
            var partials = NormPartials(2 * partialLength); // (2, blocks, C)
            // Same stream: the block sums start after every partial is written.
            rows(new KernelConfig(blocks, Device.RowGroupSize), Args(m, c, 0), dy, x, w, mu, rs, dx, partials);
            AddBlockSums(partials.SubView(0, partialLength), blocks, c, dw);
            AddBlockSums(partials.SubView(partialLength, partialLength), blocks, c, db);
        }
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

    /// <summary>One launch: RMSNorm of each row of input, or of input + addend (written to sum) when an addend is given.</summary>
    private void RmsNormRows(Tensor<float>? sum, Tensor<float> output, Tensor<float> rstd, Tensor<float> input, Tensor<float>? addend,
        Tensor<float> weight, float epsilon)
    {
        int m = input.Shape[0], c = input.Shape[1];
        var y = View(output, nameof(output)).BaseView; // (M, C)
        var rs = View(rstd, nameof(rstd)).BaseView;    // (M)
        var x = View(input, nameof(input)).BaseView;   // (M, C)
        var w = View(weight, nameof(weight)).BaseView; // (C)
        var (s, a) = ResidualAddViews(sum, addend, x); // (M, C) each; input itself, unused, without an addend
        var kernel = Device.Kernel(typeof(NormalizationKernels), nameof(NormalizationKernels.RmsNormForward), accelerator =>
            accelerator.LoadStreamKernel<NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>>(NormalizationKernels.RmsNormForward));
        kernel(new KernelConfig(m, Device.RowGroupSize), Args(m, c, epsilon, addend is not null), x, a, s, w, y, rs);
    }

    private (ArrayView<float> Sum, ArrayView<float> Addend) ResidualAddViews(Tensor<float>? sum, Tensor<float>? addend, ArrayView<float> input) =>
        addend is null ? (input, input) : (View(sum!, nameof(sum)).BaseView, View(addend, nameof(addend)).BaseView);

    public void RmsNormBackward(Tensor<float> dInput, Tensor<float> dWeight,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> rstd)
    {
        var (m, c) = NormalizationValidation.RmsNormBackward(dInput, dWeight, dOutput, input, weight, rstd);
        var dx = View(dInput, nameof(dInput)).BaseView;   // (M, C)
        var dw = View(dWeight, nameof(dWeight)).BaseView; // (C)
        var dy = View(dOutput, nameof(dOutput)).BaseView; // (M, C)
        var x = View(input, nameof(input)).BaseView;      // (M, C)
        var w = View(weight, nameof(weight)).BaseView;    // (C)
        var rs = View(rstd, nameof(rstd)).BaseView;       // (M)
        var rows = Device.Kernel(typeof(NormalizationKernels), nameof(NormalizationKernels.RmsNormBackwardBlock), accelerator =>
            accelerator.LoadStreamKernel<NormArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>>(NormalizationKernels.RmsNormBackwardBlock));
        int blocks = NormalizationValidation.Blocks(m);
        long partialLength = (long)blocks * c;
        lock (_normGate)
        {
            var partials = NormPartials(partialLength); // (blocks, C)
            rows(new KernelConfig(blocks, Device.RowGroupSize), Args(m, c, 0), dy, x, w, rs, dx, partials);
            AddBlockSums(partials, blocks, c, dw);
        }
    }

    private static NormArgs Args(int m, int c, float epsilon, bool addsAddend = false) =>
        new(m, c, NormalizationValidation.BlockRows(m), epsilon, addsAddend);

    /// <summary>Queues target (C) += the in-order sum of the (blocks, C) partials, one thread per channel.</summary>
    private void AddBlockSums(ArrayView<float> partials, int blocks, int c, ArrayView<float> target)
    {
        var kernel = Device.Kernel(typeof(NormalizationKernels), nameof(NormalizationKernels.AddBlockSums), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, int, ArrayView<float>>(NormalizationKernels.AddBlockSums));
        kernel(c, partials, blocks, c, target);
    }

    private ArrayView<float> NormPartials(long length) => (_normPartials ??= new ReusableDeviceBuffer(Device)).Get(length);
}

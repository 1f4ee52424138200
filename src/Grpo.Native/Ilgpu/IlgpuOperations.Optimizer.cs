using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _sumOfSquaresGate = new();

    /// <summary>The (blocks) partial sums of SumOfSquares, allocated on first use and grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _sumOfSquaresPartials;

    public double SumOfSquares(Tensor<float> values)
    {
        int blocks = OptimizerValidation.SumOfSquares(Device, values);
        var view = View(values, nameof(values)).BaseView; // (P)
        if (blocks == 0) return 0;
        var kernel = Device.Kernel(typeof(OptimizerKernels), nameof(OptimizerKernels.SumOfSquaresBlocks), a =>
            a.LoadStreamKernel<ArrayView<float>, int, ArrayView<float>>(OptimizerKernels.SumOfSquaresBlocks));
        float[] host;
        lock (_sumOfSquaresGate)
        {
            var partials = (_sumOfSquaresPartials ??= new ReusableDeviceBuffer(Device)).Get(blocks); // (blocks)
            kernel(new KernelConfig(blocks, Device.RowGroupSize), view, OptimizerValidation.SumOfSquaresBlock, partials);
            host = Device.Download(partials); // waits for the kernel
        }
        // The blocks are added in order in double, as on the CPU.
        double total = 0;
        foreach (float p in host) total += p;
        return total;
    }

    public void Scale(Tensor<float> values, float scale)
    {
        OptimizerValidation.Scale(Device, values, scale);
        var view = View(values, nameof(values)).BaseView; // (P)
        if (view.Length == 0) return;
        var kernel = Device.Kernel(typeof(OptimizerKernels), nameof(OptimizerKernels.Scale), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(OptimizerKernels.Scale));
        kernel((int)view.Length, view, scale);
    }

    public void AdamWStep(Tensor<float> parameters, Tensor<float> gradients, Tensor<float> firstMoment, Tensor<float> secondMoment,
        int step, float learningRate, AdamWOptions options)
    {
        var s = OptimizerValidation.AdamW(Device, parameters, gradients, firstMoment, secondMoment, step, learningRate, options);
        var p = View(parameters, nameof(parameters)).BaseView;     // (P)
        if (p.Length == 0) return;
        var kernel = Device.Kernel(typeof(OptimizerKernels), nameof(OptimizerKernels.AdamW), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWKernelScalars>(
                OptimizerKernels.AdamW));
        kernel((int)p.Length, p, View(gradients, nameof(gradients)).BaseView,
            View(firstMoment, nameof(firstMoment)).BaseView, View(secondMoment, nameof(secondMoment)).BaseView,
            new AdamWKernelScalars(s.Beta1, s.Beta2, s.Epsilon, s.DecayFactor, s.StepSize, s.BiasCorrection2Sqrt));
    }
}

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
        OptimizerValidation.SumOfSquares(Device, values);
        if (values.Length == 0) return 0;
        float[] host;
        lock (_sumOfSquaresGate)
        {
            host = Device.Download(QueueSumOfSquaresBlocks(values)); // waits for the kernel
        }
        // The blocks are added in order in double, as on the CPU.
        double total = 0;
        foreach (float p in host) total += p;
        return total;
    }

    /// <summary>Queues the block sums of squares of <paramref name="values"/>; returns the (blocks) partials. Call under the gate.</summary>
    private ArrayView<float> QueueSumOfSquaresBlocks(Tensor<float> values)
    {
        int blocks = (int)((values.Length + OptimizerValidation.SumOfSquaresBlock - 1) / OptimizerValidation.SumOfSquaresBlock);
        var view = View(values, nameof(values)).BaseView; // (P)
        var kernel = Device.Kernel(typeof(OptimizerKernels), nameof(OptimizerKernels.SumOfSquaresBlocks), a =>
            a.LoadStreamKernel<ArrayView<float>, int, ArrayView<float>>(OptimizerKernels.SumOfSquaresBlocks));
        var partials = (_sumOfSquaresPartials ??= new ReusableDeviceBuffer(Device)).Get(blocks); // (blocks)
        if (blocks > 0) kernel(new KernelConfig(blocks, Device.RowGroupSize), view, OptimizerValidation.SumOfSquaresBlock, partials);
        return partials;
    }

    public void UpdateGate(Tensor<float> gradients, Tensor<float> objectiveScalars, Tensor<float> shares, float maxNorm,
        Tensor<float>? previousGate, Tensor<float> gate)
    {
        OptimizerValidation.UpdateGate(Device, gradients, objectiveScalars, shares, maxNorm, previousGate, gate);
        var gateView = View(gate, nameof(gate)).BaseView; // (UpdateGateSlots.Count)
        var kernel = Device.Kernel(typeof(OptimizerKernels), nameof(OptimizerKernels.UpdateGate), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, float, ArrayView<float>, int, ArrayView<float>>(
                OptimizerKernels.UpdateGate));
        lock (_sumOfSquaresGate)
        {
            var partials = QueueSumOfSquaresBlocks(gradients); // (blocks)
            // One thread adds the block sums in order, as the host would; nothing is read back.
            kernel(1, partials, View(objectiveScalars, nameof(objectiveScalars)).BaseView, View(shares, nameof(shares)).BaseView, maxNorm,
                previousGate is null ? gateView : View(previousGate, nameof(previousGate)).BaseView, previousGate is null ? 0 : 1, gateView);
        }
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
        int step, float learningRate, AdamWOptions options, Tensor<float>? gate = null)
    {
        var s = OptimizerValidation.AdamW(Device, parameters, gradients, firstMoment, secondMoment, step, learningRate, options, gate);
        var p = View(parameters, nameof(parameters)).BaseView;     // (P)
        if (p.Length == 0) return;
        var kernel = Device.Kernel(typeof(OptimizerKernels), nameof(OptimizerKernels.AdamW), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWKernelScalars,
                ArrayView<float>, int>(OptimizerKernels.AdamW));
        var g = View(gradients, nameof(gradients)).BaseView; // (P)
        kernel((int)p.Length, p, g, View(firstMoment, nameof(firstMoment)).BaseView, View(secondMoment, nameof(secondMoment)).BaseView,
            new AdamWKernelScalars(s.Beta1, s.Beta2, s.Epsilon, s.DecayFactor, s.StepSize, s.BiasCorrection2Sqrt),
            gate is null ? g : View(gate, nameof(gate)).BaseView, gate is null ? 0 : 1); // no gate: any view stands in, unread
    }
}

using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _linearGate = new();

    /// <summary>The (⌈M / 64⌉, N) partial column sums of dBias, allocated on first use and grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _linearPartials;

    public void LinearForward(Tensor<float> output, Tensor<float> input, Tensor<float> weight, Tensor<float>? bias)
    {
        var (m, k, n) = LinearValidation.Forward(output, input, weight, bias);
        var y = View(output, nameof(output)).BaseView; // (M, N)
        var x = View(input, nameof(input)).BaseView;   // (M, K)
        var w = View(weight, nameof(weight)).BaseView; // (N, K)
        // y (M, N) = x (M, K) · w (N, K)ᵀ [+ bias (N)]: the kernel adds the bias as it writes y, one launch.
        var product = MatmulArgs.TransposedB(m, n, k, k, k, n, 1f, accumulate: false);
        if (bias is null) Matmul(product, x, w, y);
        else Matmul(product.WithBias(), x, w, y, View(bias, nameof(bias)).BaseView);
    }

    public void SplitColumns(Tensor<float> source, Tensor<float> first, Tensor<float> second, Tensor<float> third, Tensor<float>? bias = null) =>
        CopyColumns(source, nameof(source), first, second, third, join: false, bias);

    public void JoinColumns(Tensor<float> destination, Tensor<float> first, Tensor<float> second, Tensor<float> third) =>
        CopyColumns(destination, nameof(destination), first, second, third, join: true, bias: null);

    /// <summary>Fused (M, A + B + C) rows to or from their three parts (adding a split's bias): one flat launch either way.</summary>
    private void CopyColumns(Tensor<float> fused, string fusedName, Tensor<float> first, Tensor<float> second, Tensor<float> third, bool join,
        Tensor<float>? bias)
    {
        var (m, a, b, c) = LinearValidation.FusedColumns(fused, fusedName, first, second, third, bias);
        long elements = (long)m * (a + b + c);
        int threads = FlatThreads(elements);
        if (threads == 0) return;
        var kernel = Device.Kernel(typeof(LinearKernels), nameof(LinearKernels.CopyColumns), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                int, int, int, long, int, int, ArrayView<float>, int>(LinearKernels.CopyColumns));
        var fusedView = View(fused, fusedName).BaseView;
        var biasView = bias is null ? fusedView : View(bias, nameof(bias)).BaseView; // unread without a bias
        kernel(threads, fusedView, View(first, nameof(first)).BaseView, View(second, nameof(second)).BaseView,
            View(third, nameof(third)).BaseView, a, b, c, elements, threads, join ? 1 : 0, biasView, bias is null ? 0 : 1);
    }

    public void LinearBackward(Tensor<float>? dInput, Tensor<float> dWeight, Tensor<float>? dBias,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight)
    {
        var (m, k, n) = LinearValidation.Backward(dInput, dWeight, dBias, dOutput, input, weight);
        var dW = View(dWeight, nameof(dWeight)).BaseView; // (N, K)
        var dO = View(dOutput, nameof(dOutput)).BaseView; // (M, N)
        var x = View(input, nameof(input)).BaseView;      // (M, K)
        var w = View(weight, nameof(weight)).BaseView;    // (N, K)
        // dX (M, K) += dO (M, N) · W (N, K)
        if (dInput is not null)
            Matmul(MatmulArgs.Plain(m, k, n, n, k, k, 1f, accumulate: true), dO, w, View(dInput, nameof(dInput)).BaseView);
        // dW (N, K) += dOᵀ (N, M) · X (M, K): each element summed over the rows by one thread, in order.
        Matmul(MatmulArgs.TransposedA(n, k, m, n, k, k, 1f, accumulate: true), dO, x, dW);
        if (dBias is null) return;

        var db = View(dBias, nameof(dBias)).BaseView; // (N)
        var partialSums = Device.Kernel(typeof(LinearKernels), nameof(LinearKernels.BiasPartialSums), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index2D, ArrayView<float>, ArrayView<float>, int, int>(LinearKernels.BiasPartialSums));
        var addPartials = Device.Kernel(typeof(LinearKernels), nameof(LinearKernels.BiasAddPartials), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int>(LinearKernels.BiasAddPartials));
        int blocks = (m + LinearKernels.BiasRowBlock - 1) / LinearKernels.BiasRowBlock;
        lock (_linearGate)
        {
            var partial = LinearPartials((long)blocks * n); // (blocks, N)
            // Same stream: the second pass starts after every block sum is written.
            partialSums(new Index2D(n, blocks), dO, partial, m, n);
            addPartials(n, partial, db, blocks, n);
        }
    }

    private ArrayView<float> LinearPartials(long length) => (_linearPartials ??= new ReusableDeviceBuffer(Device)).Get(length);
}

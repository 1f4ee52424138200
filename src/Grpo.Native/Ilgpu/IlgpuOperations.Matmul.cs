using Grpo.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _matmulGate = new();

    /// <summary>The (splits, M, N) partial products of split-K launches, allocated on first use and grown when a call needs more.</summary>
    private ReusableDeviceBuffer? _matmulPartials;

    /// <summary>Side of the square matmul thread group: the largest power of two whose square the device allows, at most 16.</summary>
    internal int MatmulGroupSide
    {
        get
        {
            int side = 1;
            while (side * 2 <= MatmulKernels.MaxGroupSide && (side * 2) * (side * 2) <= Device.Accelerator.MaxNumThreadsPerGroup) side *= 2;
            return side;
        }
    }

    /// <summary>
    /// Queues C = alpha · A·B [+ C, or + bias per column] with the shapes, strides and flags in <paramref name="args"/>: through
    /// cuBLAS where it loaded (a bias is broadcast into C first, then accumulated into with β = 1), else the ILGPU kernel, which
    /// adds the bias as it writes C. Both round bias + product once, so they give the same sum.
    /// </summary>
    /// <param name="args">Sizes, strides, alpha and the accumulate and bias flags.</param>
    /// <param name="a">A, (M, K) or stored (K, M) per the strides.</param>
    /// <param name="b">B, (K, N) or stored (N, K) per the strides.</param>
    /// <param name="c">(M, Ldc) row-major output.</param>
    /// <param name="bias">(N) when <see cref="MatmulArgs.AddsBias"/> is set; else unread.</param>
    internal void Matmul(MatmulArgs args, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias = default)
    {
        if (args.M == 0 || args.N == 0) return;
        if (Device.GemmLibrary is { } blas)
        {
            if (args.AddsBias != 0)
            {
                BroadcastBias(c, bias, args.M, args.N, args.Ldc);
                args = args.BiasFromOutput();
            }
            blas.Sgemm(SgemmCall.For(args), b, a, c); // column-major: BLAS's A is the product's B
            Device.Stats.CountLaunch("cuBLAS GEMM");
            return;
        }
        int tile = MatmulKernels.RegisterTile * MatmulGroupSide;
        var (splits, chunk) = MatmulSplitPlan.For(args.M, args.N, args.K, tile, Device.Accelerator.NumMultiprocessors);
        KernelMatmul(args, a, b, c, splits, chunk, bias);
    }

    /// <summary>c[i, j] = bias[j] for the (M, N) output of a product with leading dimension N: the starting value cuBLAS accumulates onto.</summary>
    private void BroadcastBias(ArrayView<float> c, ArrayView<float> bias, int m, int n, int ldc)
    {
        if (ldc != n) throw new InvalidOperationException($"A bias is broadcast over dense rows only, but the output's rows are {ldc} apart for {n} columns.");
        var broadcast = Device.Kernel(typeof(LinearKernels), nameof(LinearKernels.BroadcastBias), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, long, int>(LinearKernels.BroadcastBias));
        long elements = (long)m * n;
        int threads = FlatThreads(elements);
        if (threads > 0) broadcast(threads, c, bias, n, elements, threads);
    }

    /// <summary>
    /// Queues the product on the ILGPU tiled kernel, K cut into <paramref name="splits"/> slices of <paramref name="chunk"/>
    /// (a multiple of <see cref="MatmulKernels.KTile"/>) when more than one; tests call it to force a split.
    /// </summary>
    internal void KernelMatmul(MatmulArgs args, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int splits, int chunk,
        ArrayView<float> bias = default)
    {
        var kernel = Device.Kernel(typeof(MatmulKernels), nameof(MatmulKernels.Matmul), accelerator =>
            accelerator.LoadStreamKernel<MatmulArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(MatmulKernels.Matmul));
        int side = MatmulGroupSide, tile = MatmulKernels.RegisterTile * side;
        var tiles = new Index3D((args.N + tile - 1) / tile, (args.M + tile - 1) / tile, splits);
        var biasView = args.AddsBias != 0 ? bias : c; // without a bias, a stand-in the kernels never read
        if (splits <= 1)
        {
            kernel(new KernelConfig(tiles, new Index3D(side, side, 1)), args, a, b, c, biasView);
            return;
        }
        var sumSplits = Device.Kernel(typeof(MatmulKernels), nameof(MatmulKernels.SumSplits), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, MatmulArgs, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
                MatmulKernels.SumSplits));
        lock (_matmulGate)
        {
            var partials = (_matmulPartials ??= new ReusableDeviceBuffer(Device)).Get((long)splits * args.M * args.N); // (splits, M, N)
            kernel(new KernelConfig(tiles, new Index3D(side, side, 1)), args.SplitK(chunk), a, b, partials, partials);
            // Same stream: the sum starts after every slice is written; it adds the bias, if any.
            sumSplits(checked(args.M * args.N), args, splits, partials, c, biasView);
        }
    }
}

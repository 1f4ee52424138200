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

    /// <summary>Queues C = alpha · A·B [+ C] with the shapes and strides in <paramref name="args"/>: through cuBLAS where it loaded, else the ILGPU kernel.</summary>
    internal void Matmul(MatmulArgs args, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c)
    {
        if (args.M == 0 || args.N == 0) return;
        if (Device.CuBlas is { } blas)
        {
            blas.Gemm(args, a, b, c);
            Device.Stats.CountLaunch("cuBLAS GEMM");
            return;
        }
        int tile = MatmulKernels.RegisterTile * MatmulGroupSide;
        var (splits, chunk) = MatmulSplitPlan.For(args.M, args.N, args.K, tile, Device.Accelerator.NumMultiprocessors);
        KernelMatmul(args, a, b, c, splits, chunk);
    }

    /// <summary>
    /// Queues the product on the ILGPU tiled kernel, K cut into <paramref name="splits"/> slices of <paramref name="chunk"/>
    /// (a multiple of <see cref="MatmulKernels.KTile"/>) when more than one; tests call it to force a split.
    /// </summary>
    internal void KernelMatmul(MatmulArgs args, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int splits, int chunk)
    {
        var kernel = Device.Kernel(typeof(MatmulKernels), nameof(MatmulKernels.Matmul), accelerator =>
            accelerator.LoadStreamKernel<MatmulArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>>(MatmulKernels.Matmul));
        int side = MatmulGroupSide, tile = MatmulKernels.RegisterTile * side;
        var tiles = new Index3D((args.N + tile - 1) / tile, (args.M + tile - 1) / tile, splits);
        if (splits <= 1)
        {
            kernel(new KernelConfig(tiles, new Index3D(side, side, 1)), args, a, b, c);
            return;
        }
        var sumSplits = Device.Kernel(typeof(MatmulKernels), nameof(MatmulKernels.SumSplits), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, MatmulArgs, int, ArrayView<float>, ArrayView<float>>(MatmulKernels.SumSplits));
        lock (_matmulGate)
        {
            var partials = (_matmulPartials ??= new ReusableDeviceBuffer(Device)).Get((long)splits * args.M * args.N); // (splits, M, N)
            kernel(new KernelConfig(tiles, new Index3D(side, side, 1)), args.SplitK(chunk), a, b, partials);
            // Same stream: the sum starts after every slice is written.
            sumSplits(checked(args.M * args.N), args, splits, partials, c);
        }
    }
}

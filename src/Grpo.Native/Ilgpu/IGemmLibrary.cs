using ILGPU;

namespace Grpo.Native.Ilgpu;

/// <summary>
/// A BLAS that runs the ILGPU backend's GEMMs in place of its kernel: cuBLAS on a GPU (<see cref="CuBlas"/>). The tests put
/// an emulation of cuBLAS here on the simulator, so that the path every GEMM takes to it (the operand mapping, the bias
/// broadcast, the leading dimensions cuBLAS checks) runs before a GPU does.
/// </summary>
internal interface IGemmLibrary : IDisposable
{
    /// <summary>What runs the GEMMs, in words, e.g. "cuBLAS from /usr/lib/libcublas.so.13 (fp32)".</summary>
    string Description { get; }

    /// <summary>True when GEMMs round their inputs to TF32 (the wider bound in <see cref="Devices.CudaOptions"/>' remarks).</summary>
    bool Tf32 { get; }

    /// <summary>Queues <paramref name="call"/> on the device's stream.</summary>
    /// <param name="call">The column-major Sgemm.</param>
    /// <param name="a">BLAS's A: the row-major product's B.</param>
    /// <param name="b">BLAS's B: the row-major product's A.</param>
    /// <param name="c">C, from its first element.</param>
    void Sgemm(in SgemmCall call, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c);
}

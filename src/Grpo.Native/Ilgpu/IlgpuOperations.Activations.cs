using Grpo.Kernels;
using Grpo.Native.Checkpoints;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    private readonly object _ropeGate = new();

    /// <summary>Per (θ, D, scaling): the host table and its device copy, re-uploaded when a larger position grows the table.</summary>
    private readonly Dictionary<(float Theta, int D, RopeScaling? Scaling), (RopeTable Host, MemoryBuffer1D<float, Stride1D.Dense> Device)> _ropeTables = new();

    public void GeluForward(Tensor<float> output, Tensor<float> input)
    {
        int n = ActivationsValidation.GeluForward(output, input);
        var y = View(output, nameof(output)).BaseView; // (…)
        var x = View(input, nameof(input)).BaseView;   // (…)
        var kernel = Device.Kernel(typeof(ActivationKernels), nameof(ActivationKernels.GeluForward), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ActivationKernels.GeluForward));
        kernel(n, x, y);
    }

    public void GeluBackward(Tensor<float> dInput, Tensor<float> dOutput, Tensor<float> input)
    {
        int n = ActivationsValidation.GeluBackward(dInput, dOutput, input);
        var dx = View(dInput, nameof(dInput)).BaseView;   // (…)
        var dy = View(dOutput, nameof(dOutput)).BaseView; // (…)
        var x = View(input, nameof(input)).BaseView;      // (…)
        var kernel = Device.Kernel(typeof(ActivationKernels), nameof(ActivationKernels.GeluBackward), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ActivationKernels.GeluBackward));
        kernel(n, dx, dy, x);
    }

    public void SwiGluForward(Tensor<float> output, Tensor<float> gateUp)
    {
        var (m, width) = ActivationsValidation.SwiGluForward(output, gateUp);
        var o = View(output, nameof(output)).BaseView;   // (M, I)
        var gu = View(gateUp, nameof(gateUp)).BaseView;  // (M, 2I)
        var kernel = Device.Kernel(typeof(ActivationKernels), nameof(ActivationKernels.SwiGluForward), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(ActivationKernels.SwiGluForward));
        kernel(m * width, gu, o, width);
    }

    public void SwiGluBackward(Tensor<float> dGateUp, Tensor<float> dOutput, Tensor<float> gateUp)
    {
        var (m, width) = ActivationsValidation.SwiGluBackward(dGateUp, dOutput, gateUp);
        var dgu = View(dGateUp, nameof(dGateUp)).BaseView; // (M, 2I)
        var dO = View(dOutput, nameof(dOutput)).BaseView;  // (M, I)
        var gu = View(gateUp, nameof(gateUp)).BaseView;    // (M, 2I)
        var kernel = Device.Kernel(typeof(ActivationKernels), nameof(ActivationKernels.SwiGluBackward), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(
                ActivationKernels.SwiGluBackward));
        kernel(m * width, gu, dO, dgu, width);
    }

    public void Add(Tensor<float> output, Tensor<float> a, Tensor<float> b)
    {
        int n = ActivationsValidation.Add(output, a, b);
        var o = View(output, nameof(output)).BaseView; // (…)
        var x = View(a, nameof(a)).BaseView;           // (…)
        var y = View(b, nameof(b)).BaseView;           // (…)
        var kernel = Device.Kernel(typeof(ActivationKernels), nameof(ActivationKernels.Add), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ActivationKernels.Add));
        kernel(n, x, y, o);
    }

    public void Rope(Tensor<float> query, Tensor<float>? key, Tensor<int> positions, float theta, bool inverse, RopeScaling? scaling = null)
    {
        var (m, heads, keyHeads, d) = ActivationsValidation.Rope(query, key, positions, theta, scaling);
        var q = View(query, nameof(query)).BaseView;                        // (M, H, D)
        var k = key is null ? q : View(key, nameof(key)).BaseView;          // (M, KVH, D); without a key, a stand-in never read (KVH = 0)
        var pos = View(positions, nameof(positions)).BaseView;              // (M)
        int largest = ActivationsValidation.RopePositions(HostIndices(positions, nameof(positions)));
        var kernel = Device.Kernel(typeof(ActivationKernels), nameof(ActivationKernels.Rope), a =>
            a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, RopeArgs>(
                ActivationKernels.Rope));
        // Launched under the lock: another call that grows the table cannot free it before this launch is queued.
        lock (_ropeGate)
        {
            var table = RopeTableOnDevice(theta, d, scaling, largest); // (P, D)
            // One launch for both: the queries' M·H·D/2 pairs, then the keys' M·KVH·D/2.
            kernel(m * (heads + keyHeads) * (d / 2), q, k, pos, table, new RopeArgs(m, heads, keyHeads, d / 2, inverse ? -1f : 1f));
        }
    }

    /// <summary>The device copy of the (cos, sin) table covering <paramref name="largestPosition"/>; call under the lock.</summary>
    private ArrayView<float> RopeTableOnDevice(float theta, int d, RopeScaling? scaling, int largestPosition)
    {
        _ropeTables.TryGetValue((theta, d, scaling), out var entry);
        var host = RopeTable.Covering(entry.Host, theta, d, scaling, largestPosition);
        if (!ReferenceEquals(host, entry.Host))
        {
            if (entry.Device is not null)
            {
                Device.Synchronize(); // queued kernels may still read the old table
                Device.Free(entry.Device);
            }
            var buffer = Device.Allocate1D<float>(host.Values.Length);
            Device.Upload(buffer.View.BaseView, host.Values);
            entry = (host, buffer);
            _ropeTables[(theta, d, scaling)] = entry;
        }
        return entry.Device.View.BaseView;
    }
}

using Grpo.Kernels;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace Grpo.Native.Ilgpu;

internal sealed partial class IlgpuOperations
{
    public void KvCacheWrite(Tensor<float> keyCache, Tensor<float> valueCache, Tensor<float> key, Tensor<float> value,
        Tensor<int> sourceRows, Tensor<int> slots, Tensor<int> positions)
    {
        var shape = KvCacheValidation.Write(keyCache, valueCache, key, value, sourceRows, slots, positions);
        var kc = View(keyCache, nameof(keyCache)).BaseView;        // (S, L, KVH, D)
        var vc = View(valueCache, nameof(valueCache)).BaseView;    // (S, L, KVH, D)
        var k = View(key, nameof(key)).BaseView;                   // (M, KVH, D)
        var v = View(value, nameof(value)).BaseView;               // (M, KVH, D)
        var rows = View(sourceRows, nameof(sourceRows)).BaseView;  // (W)
        var dst = View(slots, nameof(slots)).BaseView;             // (W)
        var at = View(positions, nameof(positions)).BaseView;      // (W)
        // An index out of range would write outside the cache; the host checks what it uploaded.
        KvCacheValidation.WriteIndices(HostIndices(sourceRows, nameof(sourceRows)), HostIndices(slots, nameof(slots)),
            HostIndices(positions, nameof(positions)), shape);
        var write = Device.Kernel(typeof(KvCacheKernels), nameof(KvCacheKernels.KvCacheWrite), accelerator =>
            accelerator.LoadAutoGroupedStreamKernel<Index1D, KvCacheArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>>(KvCacheKernels.KvCacheWrite));
        long elements = (long)shape.W * shape.KVH * shape.D;
        if (elements > int.MaxValue)
            throw new ArgumentException(
                $"{shape.W} writes of {shape.KVH}·{shape.D} floats are {elements} elements, more than one launch indexes ({int.MaxValue}); " +
                "split the writes into several calls.", nameof(sourceRows));
        write((int)elements, new KvCacheArgs(0, shape.KVH, shape.D, shape.L, 0), kc, vc, k, v, rows, dst, at);
    }

    public void AttentionDecode(Tensor<float> output, Tensor<float> query, Tensor<float> keyCache, Tensor<float> valueCache,
        Tensor<int> slots, Tensor<int> lengths, float scale)
    {
        var shape = KvCacheValidation.Decode(output, query, keyCache, valueCache, slots, lengths, scale);
        var o = View(output, nameof(output)).BaseView;             // (R, H, D)
        var q = View(query, nameof(query)).BaseView;               // (R, H, D)
        var kc = View(keyCache, nameof(keyCache)).BaseView;        // (S, L, KVH, D)
        var vc = View(valueCache, nameof(valueCache)).BaseView;    // (S, L, KVH, D)
        var slot = View(slots, nameof(slots)).BaseView;            // (R)
        var len = View(lengths, nameof(lengths)).BaseView;         // (R)
        KvCacheValidation.DecodeIndices(HostIndices(slots, nameof(slots)), HostIndices(lengths, nameof(lengths)), shape);
        var decode = Device.Kernel(typeof(KvCacheKernels), nameof(KvCacheKernels.AttentionDecode), accelerator =>
            accelerator.LoadStreamKernel<KvCacheArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>,
                ArrayView<int>, ArrayView<float>>(KvCacheKernels.AttentionDecode));
        decode(new KernelConfig(shape.R * shape.H, Device.RowGroupSize),
            new KvCacheArgs(shape.H, shape.KVH, shape.D, shape.L, scale), q, kc, vc, slot, len, o);
    }
}

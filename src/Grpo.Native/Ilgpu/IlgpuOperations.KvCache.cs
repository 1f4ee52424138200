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

    public void SplitIntoKvCache(Tensor<float> qkv, Tensor<float>? bias, Tensor<float> query, Tensor<float> keyCache,
        Tensor<float> valueCache, Tensor<int> slots, Tensor<int> positions, RotaryEmbedding? rope, HeadNorms? headNorms = null)
    {
        var shape = KvCacheValidation.SplitIntoCache(qkv, bias, query, keyCache, valueCache, slots, positions, rope, headNorms);
        var fused = View(qkv, nameof(qkv)).BaseView;                // (R, H·D + 2·KVH·D)
        var b = bias is null ? fused : View(bias, nameof(bias)).BaseView; // (H·D + 2·KVH·D); unread without a bias
        var q = View(query, nameof(query)).BaseView;               // (R, H, D)
        var kc = View(keyCache, nameof(keyCache)).BaseView;        // (S, L, KVH, D)
        var vc = View(valueCache, nameof(valueCache)).BaseView;    // (S, L, KVH, D)
        var slot = View(slots, nameof(slots)).BaseView;            // (R)
        var pos = View(positions, nameof(positions)).BaseView;     // (R)
        // An index out of range would write outside the cache; the host checks what it uploaded.
        int largest = KvCacheValidation.SplitIntoCacheIndices(HostIndices(slots, nameof(slots)), HostIndices(positions, nameof(positions)),
            shape, rope is not null);
        if (shape.R == 0) return;
        var args = new KvCacheArgs(shape.H, shape.KVH, shape.D, shape.L, 0);
        int addsBias = bias is null ? 0 : 1;
        // Launched under the lock, as Rope is: another call that grows the table cannot free it before this launch is queued.
        lock (_ropeGate)
        {
            var table = rope is { } angles ? RopeTableOnDevice(angles.Theta, shape.D, angles.Scaling, largest) : fused; // (P, D), or unread
            int rotates = rope is null ? 0 : 1;
            if (headNorms is not { } norms)
            {
                var split = Device.Kernel(typeof(KvCacheKernels), nameof(KvCacheKernels.SplitIntoCache), accelerator =>
                    accelerator.LoadAutoGroupedStreamKernel<Index1D, KvCacheArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                        ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, int, int>(KvCacheKernels.SplitIntoCache));
                // One thread per rotated pair of each head with RoPE, per element without.
                int units = shape.R * (shape.H + 2 * shape.KVH) * (rope is null ? shape.D : shape.D / 2);
                split(units, args, fused, b, q, kc, vc, slot, pos, table, addsBias, rotates);
                return;
            }
            var normed = Device.Kernel(typeof(KvCacheKernels), nameof(KvCacheKernels.SplitNormIntoCache), accelerator =>
                accelerator.LoadStreamKernel<KvCacheArgs, float, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(
                    KvCacheKernels.SplitNormIntoCache));
            // One group per head of each row, of the size RmsNormForward runs its rows with: the same reduction, the same bits.
            normed(new KernelConfig(shape.R * (shape.H + 2 * shape.KVH), Device.RowGroupSize), args, norms.Epsilon, fused, b, q, kc, vc,
                slot, pos, table, View(norms.QueryWeight, "headNorms.QueryWeight").BaseView,
                View(norms.KeyWeight, "headNorms.KeyWeight").BaseView, addsBias, rotates);
        }
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

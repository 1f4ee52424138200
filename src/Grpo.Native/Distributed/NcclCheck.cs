using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tensors;

namespace Grpo.Native.Distributed;

/// <summary>What one GPU can show of the NCCL transport (<c>grpo selfcheck</c> runs it on CUDA): a one-rank all-reduce.</summary>
public static class NcclCheck
{
    /// <summary>
    /// NCCL's sum over a communicator of this process alone, from <paramref name="source"/> into <paramref name="destination"/>
    /// on the GPU's stream: <paramref name="destination"/> must come out equal to <paramref name="source"/>, bit for bit.
    /// </summary>
    /// <returns>NCCL's version and the file it loaded from.</returns>
    /// <exception cref="NotSupportedException">The tensors are not on a CUDA GPU, or NCCL is not on this machine (the message says where it looked).</exception>
    public static string AllReduceOnOneRank(Tensor<float> source, Tensor<float> destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        if (source.Device is not IlgpuDevice { Kind: DeviceKind.Cuda } gpu)
            throw new NotSupportedException($"NCCL runs on CUDA GPUs; the tensors are on {source.Device}.");
        var nccl = NcclLibrary.TryLoad(out string message) ?? throw new NotSupportedException(message);
        using var allReduce = NcclGradientAllReduce.CreateSingleRank(nccl, gpu);
        allReduce.Sum(source, destination);
        return message;
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Distributed;

namespace Grpo.Cli;

internal static partial class SelfCheck
{
    /// <summary>
    /// On a CUDA GPU: NCCL's all-reduce over a one-rank communicator, out of place, from a window of one buffer into a
    /// poisoned window of another. The sum over one rank is the input, so any difference (or a NaN left unwritten) means
    /// a wrong pointer, offset, count, type or stream in the binding. Skipped, saying why, where NCCL is absent.
    /// </summary>
    private static IEnumerable<CheckResult> Nccl(Device device, Random random)
    {
        if (device.Kind != DeviceKind.Cuda) return [];
        const int length = (1 << 20) + 3, offset = 5;
        float[] values = Normal(random, length + offset, 1.0);
        using var source = device.FromArray<float>(values, length + offset);   // (P + 5)
        using var destination = device.Allocate<float>(length + offset);      // (P + 5)
        destination.Fill(float.NaN);
        using var sourceWindow = source.Slice(offset, length);                // (P)
        using var destinationWindow = destination.Slice(offset, length);      // (P)
        string detail;
        try
        {
            detail = NcclCheck.AllReduceOnOneRank(sourceWindow, destinationWindow);
        }
        catch (NotSupportedException e)
        {
            return [new CheckResult($"nccl all-reduce 1 rank {length}", 0, 0, e.Message) { Skipped = true }];
        }
        float[] got = destination.ToArray();
        int wrong = Enumerable.Range(offset, length).Count(i => BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(values[i]));
        bool outsideUntouched = Enumerable.Range(0, offset).All(i => float.IsNaN(got[i]));
        return [new CheckResult($"nccl all-reduce 1 rank {length}", wrong > 0 || !outsideUntouched ? double.PositiveInfinity : 0, 0,
            $"{length - wrong}/{length} values equal; {detail}")];
    }
}

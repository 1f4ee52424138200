using Grpo.Native.Devices;
using Grpo.Native.Ilgpu;
using Grpo.Native.Models;
using Grpo.Native.Operations;

namespace Grpo.Cli;

/// <summary>
/// The device-traffic figures of <c>grpo bench --json</c>, counted by <see cref="DeviceStats"/> on the ILGPU backend
/// (on the CPU simulator they are the launches and copies CUDA would do); null on the managed CPU backend, which has
/// no device to talk to.
/// </summary>
internal sealed class BenchDeviceCounts
{
    private readonly IlgpuDevice? _device;
    private DeviceCounts _timedStart;

    public BenchDeviceCounts(Device device) => _device = device as IlgpuDevice;

    /// <summary>Marks the start of the timed steps (after warm-up).</summary>
    public void StartTimedSteps()
    {
        if (_device is not null) _timedStart = _device.Stats.Snapshot();
    }

    /// <summary>
    /// Adds the per-step counts to <paramref name="result"/>: over the <paramref name="timedSteps"/> steps since
    /// <see cref="StartTimedSteps"/>, and of one decode step of <paramref name="policy"/> with <paramref name="slots"/>
    /// sequences after a prefill of <paramref name="promptLength"/>-token prompts.
    /// </summary>
    public void AddTo(Dictionary<string, object> result, TransformerModel policy, int timedSteps, int prompts, int group, int promptLength)
    {
        string[] keys = ["launches_per_decode_step", "host_copies_per_decode_step", "syncs_per_decode_step",
            "host_copies_per_training_step", "device_reads_per_training_step", "syncs_per_training_step", "launches_per_training_step", "allocations_per_step_after_warmup"];
        if (_device is null)
        {
            foreach (string key in keys) result[key] = null!;
            return;
        }
        var steps = _device.Stats.Snapshot() - _timedStart;
        // Two decode steps need two positions after the prompt; a context without them has no decode step to count.
        var decode = policy.Config.MaxPositions >= promptLength + 2 ? DecodeStep(policy, prompts, group, promptLength) : (DeviceCounts?)null;
        result["launches_per_decode_step"] = decode?.KernelLaunches!;
        result["host_copies_per_decode_step"] = decode?.HostCopies!;
        result["syncs_per_decode_step"] = decode?.Synchronizations!;
        result["host_copies_per_training_step"] = (double)steps.HostCopies / timedSteps;
        result["device_reads_per_training_step"] = (double)steps.DeviceToHostCopies / timedSteps; // the waits among the copies
        result["syncs_per_training_step"] = (double)steps.Synchronizations / timedSteps;
        result["launches_per_training_step"] = (double)steps.KernelLaunches / timedSteps;
        result["allocations_per_step_after_warmup"] = (double)steps.Allocations / timedSteps;
    }

    /// <summary>The counts of the second decode step after a prefill (the first may still size the rope table).</summary>
    private DeviceCounts DecodeStep(TransformerModel policy, int prompts, int group, int promptLength)
    {
        var random = new Random(3);
        var ids = Enumerable.Range(0, prompts)
            .Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, promptLength).Select(_ => random.Next(policy.Config.VocabSize)).ToArray()).ToList();
        using var batch = TokenBatch.Create(_device!, ids, policy.Config.VocabSize, policy.Config.MaxPositions);
        int slots = prompts * group;
        using var decoder = new KvCacheDecoder(policy, slots, promptLength + 2, batch.TokenCount);
        using var tokens = _device!.Allocate<int>(slots);
        using var logprobs = _device.Allocate<float>(slots);
        var logits = decoder.Prefill(batch, group);
        _device.Operations.SampleTokens(logits, new SamplingOptions(), seed: 1, step: 0, tokens, logprobs);
        logits = decoder.Step(tokens);
        _device.Operations.SampleTokens(logits, new SamplingOptions(), seed: 1, step: 1, tokens, logprobs);
        var before = _device.Stats.Snapshot();
        decoder.Step(tokens);
        var counted = _device.Stats.Snapshot() - before;
        _device.Synchronize();
        return counted;
    }
}

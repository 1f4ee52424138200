using Grpo.Native.Devices;

namespace Grpo.Native.Training;

/// <summary>The phases <see cref="GrpoPhaseTimes"/> reports.</summary>
internal enum StepPhase { Rollout, Rewards, ReferenceLogprobs, PolicyForwardBackward, Optimizer }

/// <summary>
/// Times a training step's phases without stopping the device between them: each boundary is a <see cref="DeviceTimeMark"/>
/// in the device's queue (a CUDA event on a GPU), and the seconds are read once the step's one read back has waited for the
/// device anyway. Host work between marks (the reward functions) is timed too: the queue is idle then, so a mark queued after
/// it is reached when the host queues it.
/// </summary>
internal sealed class StepPhaseTimer(Device device) : IDisposable
{
    private readonly List<DeviceTimeMark> _marks = [];
    private readonly List<(StepPhase Phase, DeviceTimeMark From, DeviceTimeMark To)> _spans = [];

    /// <summary>A mark at the current end of the queue.</summary>
    public DeviceTimeMark Mark()
    {
        var mark = device.MarkTime();
        _marks.Add(mark);
        return mark;
    }

    /// <summary>Counts the time from <paramref name="from"/> to <paramref name="to"/> towards <paramref name="phase"/>.</summary>
    public void Add(StepPhase phase, DeviceTimeMark from, DeviceTimeMark to) => _spans.Add((phase, from, to));

    /// <summary>Marks now and counts the time since <paramref name="from"/> towards <paramref name="phase"/>; returns the new mark.</summary>
    public DeviceTimeMark Until(StepPhase phase, DeviceTimeMark from)
    {
        var to = Mark();
        Add(phase, from, to);
        return to;
    }

    /// <summary>The phases' seconds; waits for the device to reach the last mark.</summary>
    public GrpoPhaseTimes Read()
    {
        double Seconds(StepPhase phase) => _spans.Where(s => s.Phase == phase).Sum(s => s.To.SecondsSince(s.From));
        return new GrpoPhaseTimes(Seconds(StepPhase.Rollout), Seconds(StepPhase.Rewards), Seconds(StepPhase.ReferenceLogprobs),
            Seconds(StepPhase.PolicyForwardBackward), Seconds(StepPhase.Optimizer));
    }

    public void Dispose()
    {
        foreach (var mark in _marks) mark.Dispose();
    }
}

using System.Diagnostics;
using ILGPU.Runtime;

namespace Grpo.Native.Devices;

/// <summary>
/// A point in a device's queue, recorded without waiting (<see cref="Device.MarkTime"/>): the time at which the device had
/// finished everything queued before it. Two marks give the device time between them once the queue has passed both (a read
/// back waits for that), so a step can time its phases without stopping the device between them.
/// </summary>
public abstract class DeviceTimeMark : IDisposable
{
    /// <summary>Seconds from <paramref name="earlier"/> (a mark of the same device) to this mark; waits until the device reached this one.</summary>
    public abstract double SecondsSince(DeviceTimeMark earlier);

    /// <inheritdoc />
    public virtual void Dispose() { }
}

/// <summary>A host clock reading: where operations run synchronously, the queue is done when the call returns.</summary>
internal sealed class HostTimeMark : DeviceTimeMark
{
    private readonly long _timestamp = Stopwatch.GetTimestamp();

    public override double SecondsSince(DeviceTimeMark earlier) =>
        Stopwatch.GetElapsedTime(((HostTimeMark)earlier)._timestamp, _timestamp).TotalSeconds;
}

/// <summary>An ILGPU profiling marker in the accelerator's stream (a CUDA event on a GPU).</summary>
internal sealed class StreamTimeMark(ProfilingMarker marker) : DeviceTimeMark
{
    public override double SecondsSince(DeviceTimeMark earlier) => marker.MeasureFrom(((StreamTimeMark)earlier).Marker).TotalSeconds;

    private ProfilingMarker Marker => marker;

    public override void Dispose() => marker.Dispose();
}

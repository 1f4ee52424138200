namespace Grpo.Native.Devices;

/// <summary>
/// A tensor could not be allocated on a device: the message says how much was asked for and how much
/// was free. Nothing else changed: tensors allocated before, a model's weights and an optimizer's state
/// among them, are intact, so the caller can free memory or retry with a smaller batch.
/// </summary>
public sealed class DeviceOutOfMemoryException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DeviceOutOfMemoryException(string deviceName, long requestedBytes, long? availableBytes, Exception? inner = null)
        : base($"Allocating {Format(requestedBytes)} on {deviceName} failed: " +
               (availableBytes is { } free ? $"about {Format(free)} is free. " : "the free amount is unknown. ") +
               "Lower the micro-batch size, the group size or the lengths, or free other tensors first.", inner)
    {
        RequestedBytes = requestedBytes;
        AvailableBytes = availableBytes;
    }

    /// <summary>The size of the allocation that failed.</summary>
    public long RequestedBytes { get; }

    /// <summary>What the device reported free at the time, when it can tell.</summary>
    public long? AvailableBytes { get; }

    private static string Format(long bytes) => bytes >= 1 << 20 ? $"{bytes / 1048576.0:F1} MiB" : $"{bytes} bytes";
}

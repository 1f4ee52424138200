namespace Grpo.Native.Distributed;

/// <summary>One process, no transport and no MPI library: every collective is the identity.</summary>
public sealed class SingleProcess : ICommunicator
{
    /// <summary>The one instance (it holds no state).</summary>
    public static SingleProcess Instance { get; } = new();

    private SingleProcess() { }

    /// <inheritdoc />
    public int Rank => 0;

    /// <inheritdoc />
    public int Size => 1;

    /// <inheritdoc />
    public double CommunicationSeconds => 0;

    /// <inheritdoc />
    public byte[][] AllGather(ReadOnlySpan<byte> local) => [local.ToArray()];

    /// <inheritdoc />
    public void AllReduceSum(Span<float> values) { }

    /// <inheritdoc />
    public void Barrier() { }

    /// <inheritdoc />
    public void Abort(string message) => throw new InvalidOperationException(message);

    /// <inheritdoc />
    public void Dispose() { }
}

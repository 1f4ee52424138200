namespace Grpo.Native.Distributed;

/// <summary>
/// The processes (ranks) of a data-parallel run and the few collective operations the trainer needs. Every rank must call
/// the same operations in the same order. Sums are formed in a fixed order (<see cref="FixedOrderSum"/>), never in the
/// transport's, so the result does not depend on the transport, the network or timing.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's index, 0 to <see cref="Size"/> − 1.</summary>
    int Rank { get; }

    /// <summary>K, the number of ranks.</summary>
    int Size { get; }

    /// <summary>Seconds this rank has spent waiting in collective operations since it was created.</summary>
    double CommunicationSeconds { get; }

    /// <summary>Every rank's <paramref name="local"/> bytes, in rank order (on every rank).</summary>
    /// <param name="local">This rank's contribution; ranks may contribute different lengths.</param>
    byte[][] AllGather(ReadOnlySpan<byte> local);

    /// <summary>
    /// Replaces <paramref name="values"/> on every rank with the element-wise sum over ranks, formed as the binary tree of
    /// <see cref="FixedOrderSum.Split"/> over the rank indices (left subtree + right subtree), so that K ranks holding the
    /// subtree sums of one process's micro-batches reproduce that process's sum bit for bit.
    /// </summary>
    /// <param name="values">(P) this rank's addend in, the sum out; the same length on every rank.</param>
    void AllReduceSum(Span<float> values);

    /// <summary>Returns when every rank has called it.</summary>
    void Barrier();

    /// <summary>Stops every rank of the job at once (a fault one rank cannot recover from); does not return.</summary>
    /// <param name="message">Printed by this rank before stopping.</param>
    void Abort(string message);
}

namespace Grpo.Native.Tests.Distributed;

/// <summary>
/// Waiting for the other in-process ranks, with a limit: a rank that failed never arrives, and without one the others
/// would wait forever, so a failing data-parallel test would hang instead of reporting the failure.
/// </summary>
internal static class RankBarrier
{
    /// <summary>Far longer than any step of the tests' tiny models takes, even on the simulator.</summary>
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    /// <summary>Signals and waits for the other ranks, or throws after <see cref="Limit"/> naming the rank and what it waited at.</summary>
    public static void Wait(Barrier barrier, int rank, string waitingFor)
    {
        if (!barrier.SignalAndWait(Limit))
            throw new TimeoutException($"Rank {rank} waited {Limit.TotalMinutes} minutes for the other ranks at {waitingFor}: one of them failed or hung.");
    }
}

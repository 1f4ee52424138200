using Grpo.Native.Distributed;

namespace Grpo.Cli;

/// <summary>
/// How <c>grpo train</c> runs under <c>mpirun -np K</c>: the ranks come from the launcher's environment (one process without
/// a launcher, and then no MPI library is loaded); rank 0 alone prints, writes metrics, curves and checkpoints; a rank that
/// fails stops the whole job (MPI_Abort) after printing one line, so no rank waits for it until the rank timeout.
/// </summary>
internal static class DataParallelRun
{
    /// <summary>--rank-timeout's default: the longest a rank waits for another before the job stops.</summary>
    public const int DefaultRankTimeoutSeconds = 600;

    /// <param name="output">Rank 0's output; the other ranks print nothing but errors.</param>
    /// <param name="rankTimeoutSeconds">--rank-timeout.</param>
    /// <param name="body">The run, given the ranks and where to print.</param>
    public static int Execute(TextWriter output, int rankTimeoutSeconds, Func<ICommunicator, TextWriter, int> body)
    {
        if (rankTimeoutSeconds < 1)
            throw new ArgumentException($"--rank-timeout is {rankTimeoutSeconds}; give the seconds a rank may wait for another, at least 1 (default {DefaultRankTimeoutSeconds}).");
        ICommunicator communicator;
        try
        {
            communicator = Communicators.FromEnvironment(TimeSpan.FromSeconds(rankTimeoutSeconds));
        }
        catch (DllNotFoundException e)
        {
            throw new NotSupportedException(e.Message, e);
        }
        catch (InvalidOperationException e) when (e.InnerException is null)
        {
            throw new ArgumentException(e.Message, e); // the launcher's environment is unusable: a user error, exit 2
        }
        using (communicator)
        {
            if (communicator.Size == 1) return body(communicator, output);
            try
            {
                return body(communicator, communicator.Rank == 0 ? output : TextWriter.Null);
            }
            catch (Exception e)
            {
                string message = CliErrors.IsUserError(e) || e is RankTimeoutException or InvalidOperationException ? CliErrors.Message(e) : e.ToString();
                communicator.Abort($"train: rank {communicator.Rank} of {communicator.Size}: {message}");
                throw; // not reached: Abort stops the process
            }
        }
    }
}

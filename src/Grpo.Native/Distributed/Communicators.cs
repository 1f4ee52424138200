namespace Grpo.Native.Distributed;

/// <summary>Chooses the communicator from how the process was started.</summary>
public static class Communicators
{
    /// <summary>The environment variables MPI launchers set to the job's size: Open MPI's mpirun, then PMI (Slurm, MPICH).</summary>
    public static readonly string[] SizeVariables = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

    /// <summary>The environment variables launchers set to a rank's index among the ranks of its machine: Open MPI, MPICH, Slurm.</summary>
    public static readonly string[] LocalRankVariables = ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"];

    /// <summary>
    /// This rank's index among the ranks on its machine (0 without a launcher): a rank of a data-parallel run takes the
    /// GPU of that index (modulo the GPUs it sees), so ranks on one machine do not share a GPU.
    /// </summary>
    /// <param name="environment">Reads a variable (the process's environment unless a test passes its own).</param>
    public static int LocalRank(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        foreach (string name in LocalRankVariables)
            if (environment(name) is { } value)
                return int.TryParse(value, out int rank) && rank >= 0 ? rank
                    : throw new InvalidOperationException($"The launcher's {name} is '{value}', not a rank index.");
        return 0;
    }

    /// <summary>The job's size as the launcher announced it; null when no launcher started this process.</summary>
    /// <exception cref="InvalidOperationException">A launcher variable holds something other than a positive count.</exception>
    public static int? LauncherSize()
    {
        foreach (string name in SizeVariables)
        {
            string? value = Environment.GetEnvironmentVariable(name);
            if (value is null) continue;
            if (!int.TryParse(value, out int size) || size < 1)
                throw new InvalidOperationException($"The MPI launcher's {name} is '{value}', not a positive rank count; start the job with mpirun -np K.");
            return size;
        }
        return null;
    }

    /// <summary>
    /// <see cref="MpiCommunicator"/> when an MPI launcher started more than one rank, else <see cref="SingleProcess"/>
    /// (which loads no MPI library).
    /// </summary>
    /// <param name="rankTimeout">Longest a rank waits for another before the job stops.</param>
    public static ICommunicator FromEnvironment(TimeSpan rankTimeout) =>
        LauncherSize() is > 1 ? new MpiCommunicator(rankTimeout) : SingleProcess.Instance;
}

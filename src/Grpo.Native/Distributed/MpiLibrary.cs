using System.Runtime.InteropServices;

namespace Grpo.Native.Distributed;

/// <summary>
/// The dozen Open MPI calls the <see cref="MpiCommunicator"/> uses, bound at run time from libmpi.so.40 (Open MPI 4.x;
/// Debian's openmpi-bin / libopenmpi-dev). Open MPI's handles are the addresses of global objects (MPI_COMM_WORLD is
/// &amp;ompi_mpi_comm_world, MPI_BYTE &amp;ompi_mpi_byte), found with <see cref="NativeLibrary.GetExport"/>. The library is
/// opened RTLD_GLOBAL, as Open MPI's plugins (loaded by MPI_Init) need its symbols. Nothing here runs in a single process.
/// </summary>
internal sealed unsafe class MpiLibrary
{
    /// <summary>Open MPI 4's library, found on the loader path.</summary>
    public const string DefaultFileName = "libmpi.so.40";

    /// <summary>Environment variable naming another file for it (an Open MPI installed outside the loader path).</summary>
    public const string FileVariable = "GRPO_MPI_LIBRARY";
    private const int RtldNow = 2, RtldGlobal = 0x100;

    public readonly nint CommWorld, Byte;
    public readonly delegate* unmanaged<int*, byte***, int> Init;
    public readonly delegate* unmanaged<int*, int> Initialized;
    public readonly delegate* unmanaged<int> Finalize;
    public readonly delegate* unmanaged<nint, int*, int> CommRank, CommSize;
    public readonly delegate* unmanaged<void*, int, nint, int, int, nint, nint*, int> Isend;
    public readonly delegate* unmanaged<void*, int, nint, int, int, nint, nint*, int> Irecv;
    public readonly delegate* unmanaged<nint*, int*, void*, int> Test;
    public readonly delegate* unmanaged<nint, int, int> Abort;

    private MpiLibrary(nint handle)
    {
        nint Get(string name) => NativeLibrary.GetExport(handle, name);
        CommWorld = Get("ompi_mpi_comm_world");
        Byte = Get("ompi_mpi_byte");
        Init = (delegate* unmanaged<int*, byte***, int>)Get("MPI_Init");
        Initialized = (delegate* unmanaged<int*, int>)Get("MPI_Initialized");
        Finalize = (delegate* unmanaged<int>)Get("MPI_Finalize");
        CommRank = (delegate* unmanaged<nint, int*, int>)Get("MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)Get("MPI_Comm_size");
        Isend = (delegate* unmanaged<void*, int, nint, int, int, nint, nint*, int>)Get("MPI_Isend");
        Irecv = (delegate* unmanaged<void*, int, nint, int, int, nint, nint*, int>)Get("MPI_Irecv");
        Test = (delegate* unmanaged<nint*, int*, void*, int>)Get("MPI_Test");
        Abort = (delegate* unmanaged<nint, int, int>)Get("MPI_Abort");
    }

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern nint DlOpen(string file, int flags);

    [DllImport("libc", EntryPoint = "dlerror")]
    private static extern nint DlError();

    /// <summary>Opens Open MPI's library.</summary>
    /// <exception cref="DllNotFoundException">It is not installed; the message says how to install it.</exception>
    public static MpiLibrary Load()
    {
        string file = Environment.GetEnvironmentVariable(FileVariable) is { Length: > 0 } named ? named : DefaultFileName;
        // Bind dlerror before dlopen: binding it on first use looks symbols up, which would clear dlopen's error.
        if (OperatingSystem.IsLinux()) DlError();
        nint handle = OperatingSystem.IsLinux() ? DlOpen(file, RtldNow | RtldGlobal) : 0;
        if (handle == 0)
        {
            string why = OperatingSystem.IsLinux() ? Marshal.PtrToStringUTF8(DlError()) ?? "not found" : "MPI runs are supported on Linux only";
            throw new DllNotFoundException(
                $"This process was started by an MPI launcher but Open MPI's {file} could not be loaded ({why}); " +
                $"install Open MPI 4 (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev), set {FileVariable} to its libmpi.so.40, or run without mpirun.");
        }
        return new MpiLibrary(handle);
    }

    /// <summary>Throws unless an MPI call returned MPI_SUCCESS (0).</summary>
    public static void Check(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error code {code}.");
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Grpo.Native.Ilgpu;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Grpo.Native.Distributed;

/// <summary>ncclUniqueId: 128 opaque bytes that rank 0 draws and every rank passes, by value, to ncclCommInitRank.</summary>
[InlineArray(NcclLibrary.UniqueIdBytes)]
internal struct NcclUniqueId
{
    private byte _first;
}

/// <summary>
/// The NCCL calls the gradient all-reduce needs, bound at run time from libnccl.so.2, found where
/// <see cref="CudaLibrarySearch"/> looks (PyTorch's CUDA wheels carry it as nvidia/nccl/lib/libnccl.so.2). Constants
/// are nccl.h's: ncclFloat32 = 7, ncclSum = 0, NCCL_UNIQUE_ID_BYTES = 128; every call returns ncclResult_t (0 = success).
/// </summary>
internal sealed unsafe class NcclLibrary : INccl
{
    /// <summary>NCCL_UNIQUE_ID_BYTES.</summary>
    public const int UniqueIdBytes = 128;

    /// <summary>ncclFloat32 and ncclSum.</summary>
    public const int Float32 = 7, Sum = 0;

    /// <summary>The file looked for (NCCL 2.x).</summary>
    public static readonly string[] FileNames = ["libnccl.so.2"];

    public readonly delegate* unmanaged<int*, int> GetVersion;
    public readonly delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
    public readonly delegate* unmanaged<nint*, int, NcclUniqueId, int, int> CommInitRank;
    public readonly delegate* unmanaged<nint, int> CommDestroy;
    public readonly delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int> AllReduce;
    private readonly delegate* unmanaged<int, byte*> _getErrorString;

    private NcclLibrary(nint handle, string loadedFrom)
    {
        nint Get(string name) => NativeLibrary.GetExport(handle, name);
        GetVersion = (delegate* unmanaged<int*, int>)Get("ncclGetVersion");
        GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Get("ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<nint*, int, NcclUniqueId, int, int>)Get("ncclCommInitRank");
        CommDestroy = (delegate* unmanaged<nint, int>)Get("ncclCommDestroy");
        AllReduce = (delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int>)Get("ncclAllReduce");
        _getErrorString = (delegate* unmanaged<int, byte*>)Get("ncclGetErrorString");
        LoadedFrom = loadedFrom;
    }

    /// <summary>The file that loaded.</summary>
    public string LoadedFrom { get; }

    /// <summary>NCCL's version as major.minor.patch (ncclGetVersion's code is major·10000 + minor·100 + patch since 2.9).</summary>
    public string Version
    {
        get
        {
            int code;
            Check(GetVersion(&code), "ncclGetVersion");
            return code >= 10000 ? $"{code / 10000}.{code / 100 % 100}.{code % 100}" : $"{code / 1000}.{code / 100 % 10}.{code % 100}";
        }
    }

    /// <summary>NCCL, or null with every path tried when it is not on this machine.</summary>
    public static NcclLibrary? TryLoad(out string message)
    {
        if (!CudaLibrarySearch.TryLoad(FileNames, out var handle, out string from, out var tried))
        {
            message = $"NCCL's libnccl.so.2 was not found (tried {string.Join(", ", tried)}); set {CudaLibrarySearch.FolderVariable} to the folder holding it";
            return null;
        }
        try
        {
            var library = new NcclLibrary(handle, from);
            message = $"NCCL {library.Version} from {from}";
            return library;
        }
        catch (EntryPointNotFoundException e)
        {
            message = $"{from} is not a usable NCCL 2 library ({e.Message})";
            return null;
        }
    }

    /// <inheritdoc />
    public string Description => $"NCCL {Version} ({LoadedFrom})";

    /// <inheritdoc />
    public NcclUniqueId NewUniqueId()
    {
        var id = new NcclUniqueId();
        Check(GetUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    /// <inheritdoc />
    public nint InitRank(int size, NcclUniqueId id, int rank)
    {
        nint communicator;
        Check(CommInitRank(&communicator, size, id, rank), "ncclCommInitRank");
        return communicator;
    }

    /// <inheritdoc />
    public void AllReduceSum(nint communicator, nint send, nint receive, long count, Accelerator accelerator)
    {
        var stream = ((CudaStream)accelerator.DefaultStream).StreamPtr;
        Check(AllReduce((void*)send, (void*)receive, (nuint)count, Float32, Sum, communicator, stream), "ncclAllReduce");
    }

    /// <inheritdoc />
    public void Destroy(nint communicator) => CommDestroy(communicator);

    /// <summary>Throws, with NCCL's own words, unless a call returned ncclSuccess.</summary>
    public void Check(int result, string call)
    {
        if (result != 0)
            throw new InvalidOperationException($"{call} failed: NCCL error {result} ({Marshal.PtrToStringUTF8((nint)_getErrorString(result))}).");
    }
}

using System.Runtime.CompilerServices;
using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Distributed;
using Grpo.Native.Ilgpu;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Distributed;

/// <summary>
/// The parts of the NCCL transport that run without a GPU: where libnccl.so.2 is looked for, the by-value id's size
/// (the ABI of ncclCommInitRank), which transport the trainer's gradient all-reduce takes off a GPU, and the GPU choice
/// of a rank. The one-rank all-reduce itself runs in `grpo selfcheck --device cuda` (scripts/device-check.sh).
/// </summary>
public sealed class NcclTransportTests
{
    [Test]
    public void NcclIsTriedInTheNamedFolderThenOnTheLoaderPathThenInWheelFolders()
    {
        var tried = CudaLibrarySearch.Candidates(NcclLibrary.FileNames, "/opt/cuda-libs", ["/site/nvidia/cublas/lib", "/site/nvidia/nccl/lib"]);
        Assert.That(tried, Is.EqualTo(new[]
        {
            "/opt/cuda-libs/libnccl.so.2", "libnccl.so.2", "/site/nvidia/cublas/lib/libnccl.so.2", "/site/nvidia/nccl/lib/libnccl.so.2",
        }));
    }

    [Test]
    public void TheUniqueIdIsPassedAsNcclsOneHundredTwentyEightBytes() =>
        Assert.That(Unsafe.SizeOf<NcclUniqueId>(), Is.EqualTo(128), "ncclCommInitRank takes ncclUniqueId { char internal[128]; } by value");

    [Test]
    public void WithoutNcclTheLoadSaysWhereItLooked()
    {
        var nccl = NcclLibrary.TryLoad(out string message);
        TestContext.Out.WriteLine(message);
        if (nccl is not null)
        {
            Assert.That(nccl.Version, Does.Match(@"^2\.\d+\.\d+$"), "a machine with NCCL: the binding reads its version");
            return;
        }
        Assert.That(message, Does.Contain("libnccl.so.2").And.Contain(CudaLibrarySearch.FolderVariable));
    }

    [Test]
    public void OffAGpuTheGradientIsSummedThroughHostMemoryByTheFixedOrderTree()
    {
        using var device = new CpuDevice();
        var world = new InProcessRanks(3);
        var random = TestRandom.Create();
        float[][] inputs = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 37).Select(_ => (float)random.NextDouble() - 0.5f).ToArray()).ToArray();
        var sums = world.Run(rank =>
        {
            using var allReduce = GradientAllReduce.For(rank, device);
            using var gradient = device.FromArray<float>(inputs[rank.Rank], 37);
            allReduce.Sum(gradient);
            return (allReduce.Transport, Values: gradient.ToArray());
        });
        float[] expected = inputs[0].Select((v, i) => v + (inputs[1][i] + inputs[2][i])).ToArray(); // FixedOrderSum: [0] + ([1] + [2])
        foreach (var (transport, values) in sums)
        {
            Assert.That(transport, Does.Contain("host memory"));
            Assert.That(values, Is.EqualTo(expected), "bit for bit the tree's sum on every rank");
        }
    }

    [Test]
    public void TheOneRankCheckRefusesTensorsOffAGpu()
    {
        using var device = new CpuDevice();
        using var source = device.Allocate<float>(4);
        using var destination = device.Allocate<float>(4);
        var error = Assert.Throws<NotSupportedException>(() => NcclCheck.AllReduceOnOneRank(source, destination));
        Assert.That(error!.Message, Does.Contain("CUDA"));
    }

    [Test]
    public void ARankTakesTheGpuOfItsLocalRank()
    {
        static int LocalRank(params (string Name, string Value)[] variables) =>
            Communicators.LocalRank(name => variables.FirstOrDefault(v => v.Name == name).Value);
        Assert.That(LocalRank(), Is.Zero, "one process");
        Assert.That(LocalRank(("SLURM_LOCALID", "5")), Is.EqualTo(5));
        Assert.That(LocalRank(("SLURM_LOCALID", "5"), ("OMPI_COMM_WORLD_LOCAL_RANK", "3")), Is.EqualTo(3), "Open MPI's variable first");
        Assert.That(() => LocalRank(("OMPI_COMM_WORLD_LOCAL_RANK", "x")),
            Throws.InvalidOperationException.With.Message.Contains("OMPI_COMM_WORLD_LOCAL_RANK"));
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Models;

/// <summary>Writing one tensor of a parameter set piece by piece, as model loading and initialisation do.</summary>
public sealed class ParameterSetTests
{
    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void WriteInPiecesFillsExactlyItsTensorInElementOrder(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        ParameterInfo[] layout = [new("a", [2, 3], 0, false), new("b", [7], 6, false), new("c", [2], 13, false)];
        using var set = new ParameterSet(device, layout);
        Poison.Fill(set.Buffer);
        float[] before = set.Buffer.ToArray();
        var starts = new List<long>();
        set.WriteInPieces(layout[1], new float[3], (piece, start) =>
        {
            starts.Add(start);
            for (int i = 0; i < piece.Length; i++) piece[i] = 100 + start + i;
        });
        Assert.That(starts, Is.EqualTo(new long[] { 0, 3, 6 }), "pieces of the staging array's size, in order");
        float[] after = set.Buffer.ToArray();
        Assert.That(after[6..13], Is.EqualTo(Enumerable.Range(100, 7).Select(x => (float)x).ToArray()));
        Assert.That(after[..6], Is.EqualTo(before[..6]).AsCollection, "the tensor before is untouched");
        Assert.That(after[13..], Is.EqualTo(before[13..]).AsCollection, "the tensor after is untouched");
        Assert.Throws<ArgumentException>(() => set.WriteInPieces(layout[0], [], (_, _) => { }));
    }
}

using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Rewards;

/// <summary>The dataset row's columns on <see cref="RewardInput"/>: empty by default, never null, passed as given.</summary>
public sealed class RewardInputColumnsTests
{
    [Test]
    public void ColumnsAreEmptyWhenNotGiven()
    {
        var input = new RewardInput("p", "c", [1], [2], 0, false);
        Assert.That(input.Columns, Is.Not.Null.And.Empty);
    }

    [Test]
    public void ColumnsHoldTheRowsValues()
    {
        var input = RewardInputs.WithColumns("c", ("answer", "#### 4"), ("id", 17L), ("score", 0.5), ("ok", true), ("note", null),
            ("tags", new List<object?> { "a", 1L }));
        Assert.That(input.Columns, Has.Count.EqualTo(6));
        Assert.That(input.Columns["answer"], Is.EqualTo("#### 4"));
        Assert.That(input.Columns["id"], Is.EqualTo(17L));
        Assert.That(input.Columns["note"], Is.Null);
        Assert.That(input.Columns["tags"], Is.EqualTo(new List<object?> { "a", 1L }));
    }

    [Test]
    public void NullColumnsAreRefusedByName()
    {
        var error = Assert.Throws<ArgumentNullException>(() => _ = new RewardInput("p", "c", [1], [2], 0, false) { Columns = null! });
        Assert.That(error!.ParamName, Is.EqualTo(nameof(RewardInput.Columns)));
    }
}

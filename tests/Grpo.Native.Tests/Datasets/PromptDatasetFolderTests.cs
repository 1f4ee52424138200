using Grpo.Native.Datasets;
using NUnit.Framework;

namespace Grpo.Native.Tests.Datasets;

/// <summary>Folders of shards: name order, one kind per folder, and what an empty or mixed folder gets.</summary>
public sealed class PromptDatasetFolderTests
{
    private DatasetFolder _folder = null!;

    [SetUp]
    public void SetUp() => _folder = new DatasetFolder();

    [TearDown]
    public void TearDown() => _folder.Dispose();

    [Test]
    public void JsonlShardsAreReadInNameOrderAndOtherFilesIgnored()
    {
        // Written out of order: the order read must come from the names.
        string second = _folder.WriteLines("data/train-00001-of-00002.jsonl", """{"prompt": "c"}""");
        string first = _folder.WriteLines("data/train-00000-of-00002.jsonl", """{"prompt": "a"}""", """{"prompt": "b"}""");
        _folder.WriteLines("data/README.md", "# not data");
        _folder.WriteLines("data/sub/train-00002.jsonl", """{"prompt": "not read: subfolders are not shards"}""");

        var dataset = PromptDataset.Load(Path.Combine(_folder.Path, "data"));

        Assert.That(dataset.Files, Is.EqualTo(new[] { first, second }));
        Assert.That(dataset.Select(r => r.Text), Is.EqualTo(new[] { "a", "b", "c" }));
        Assert.That(dataset[2].Location, Is.EqualTo($"'{second}' line 1"));
    }

    [Test]
    public void ParquetShardsAreReadInNameOrder()
    {
        string second = ParquetTestFiles.Write(_folder.File("b.parquet"), [new StandardParquetRow { Prompt = "b", Id = 2 }]);
        string first = ParquetTestFiles.Write(_folder.File("a.parquet"), [new StandardParquetRow { Prompt = "a", Id = 1 }]);

        var dataset = PromptDataset.Load(_folder.Path);

        Assert.That(dataset.Files, Is.EqualTo(new[] { first, second }));
        Assert.That(dataset.Select(r => r.Columns["id"]), Is.EqualTo(new object[] { 1L, 2L }));
        Assert.That(dataset[1].Location, Is.EqualTo($"'{second}' row 0"));
    }

    [Test]
    public void ShardsWithDifferentColumnsGetTheUnionWithNulls()
    {
        _folder.WriteLines("a.jsonl", """{"prompt": "a", "answer": "1"}""");
        _folder.WriteLines("b.jsonl", """{"prompt": "b", "source": "web"}""");

        var dataset = PromptDataset.Load(_folder.Path);

        Assert.That(dataset.Columns, Is.EqualTo(new[] { "answer", "source" }));
        Assert.That(dataset[0].Columns["source"], Is.Null);
        Assert.That(dataset[1].Columns["answer"], Is.Null);
    }

    [Test]
    public void AFolderMixingKindsIsRefused()
    {
        _folder.WriteLines("a.jsonl", """{"prompt": "a"}""");
        ParquetTestFiles.Write(_folder.File("b.parquet"), [new StandardParquetRow { Prompt = "b" }]);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(_folder.Path));

        Assert.That(e!.Message, Does.Contain($"'{_folder.Path}' holds both .jsonl (1) and .parquet (1) files"));
    }

    [Test]
    public void AFolderWithoutShardsIsRefused()
    {
        _folder.WriteLines("README.md", "# nothing here");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(_folder.Path));

        Assert.That(e!.Message, Does.Contain($"The folder '{_folder.Path}' holds no .jsonl or .parquet files."));
    }

    [Test]
    public void AFolderSavedWithSaveToDiskIsToldHowToExport()
    {
        File.WriteAllBytes(_folder.File("data-00000-of-00001.arrow"), [0]);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(_folder.Path));

        Assert.That(e!.Message, Does.Contain("save_to_disk").And.Contain("to_parquet"));
    }

    [Test]
    public void AFolderWhoseShardsHoldNoRowsIsRefused()
    {
        _folder.WriteLines("a.jsonl", "");
        _folder.WriteLines("b.jsonl", "");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(_folder.Path));

        Assert.That(e!.Message, Does.Contain($"'{_folder.Path}' holds no rows in its 2 files"));
    }

    [Test]
    public void AnErrorInAShardNamesTheShard()
    {
        _folder.WriteLines("a.jsonl", """{"prompt": "a"}""");
        string bad = _folder.WriteLines("b.jsonl", """{"prompt": "b"}""", "{oops");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(_folder.Path));

        Assert.That(e!.Message, Does.Contain($"'{bad}' line 2"));
    }
}

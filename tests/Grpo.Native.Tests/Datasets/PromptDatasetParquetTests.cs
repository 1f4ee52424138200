using Grpo.Native.Datasets;
using NUnit.Framework;

namespace Grpo.Native.Tests.Datasets;

/// <summary>Reading Parquet prompt datasets: both prompt formats, nested and nullable columns, row groups, errors.</summary>
public sealed class PromptDatasetParquetTests
{
    private DatasetFolder _folder = null!;

    [SetUp]
    public void SetUp() => _folder = new DatasetFolder();

    [TearDown]
    public void TearDown() => _folder.Dispose();

    private static StandardParquetRow Standard(int i) => new()
    {
        Prompt = $"prompt {i}", Id = i, Score = i + 0.25, Answer = $"answer {i}", Tags = [.. Enumerable.Range(0, i % 3).Select(t => $"t{t}")],
    };

    [Test]
    public void StandardRowsKeepEveryOtherColumnWithJsonTypesAcrossRowGroups()
    {
        string path = ParquetTestFiles.Write(_folder.File("train.parquet"), [.. Enumerable.Range(0, 5).Select(Standard)], rowGroupSize: 2);
        Assert.That(ParquetTestFiles.RowGroupCount(path), Is.EqualTo(3), "the file must have several row groups for this test");

        var dataset = PromptDataset.Load(path);

        Assert.That(dataset, Has.Count.EqualTo(5));
        Assert.That(dataset.Columns, Is.EqualTo(new[] { "id", "score", "answer", "tags" }));
        for (int i = 0; i < 5; i++)
        {
            var row = dataset[i];
            Assert.That(row.IsConversational, Is.False);
            Assert.That(row.Text, Is.EqualTo($"prompt {i}"));
            Assert.That(row.Location, Is.EqualTo($"'{path}' row {i}"), "rows count from 0 across row groups");
            Assert.That(row.Columns["id"], Is.TypeOf<long>().And.EqualTo((long)i), "int32 becomes long, as a JSON integer does");
            Assert.That(row.Columns["score"], Is.TypeOf<double>().And.EqualTo(i + 0.25));
            Assert.That(row.Columns["answer"], Is.TypeOf<string>().And.EqualTo($"answer {i}"));
            Assert.That(row.Columns["tags"], Is.TypeOf<List<object?>>().And.EqualTo(Enumerable.Range(0, i % 3).Select(t => $"t{t}")));
        }
    }

    [Test]
    public void ConversationalPromptsStoredAsListsOfStructsBecomeMessages()
    {
        var rows = new List<ConversationalParquetRow>
        {
            new() { Prompt = [new() { Role = "system", Content = "Think." }, new() { Role = "user", Content = "2+2?" }], Solution = "4" },
            new() { Prompt = [new() { Role = "user", Content = "3+3?" }], Solution = "6" },
        };
        string path = ParquetTestFiles.Write(_folder.File("chat.parquet"), rows);

        var dataset = PromptDataset.Load(path);

        Assert.That(dataset[0].IsConversational);
        Assert.That(dataset[0].Messages!.Select(m => (m.Role, m.Content)), Is.EqualTo(new[] { ("system", "Think."), ("user", "2+2?") }));
        Assert.That(dataset[0].Messages!.All(m => m.Extra is null));
        Assert.That(dataset[1].Messages!.Select(m => (m.Role, m.Content)), Is.EqualTo(new[] { ("user", "3+3?") }));
        Assert.That(dataset[1].Columns, Is.EqualTo(new Dictionary<string, object?> { ["solution"] = "6" }));
    }

    [Test]
    public void NestedAndNullableColumnsKeepTheirShapeAndANullListStaysApartFromAnEmptyOne()
    {
        var when = new DateTime(2024, 5, 6, 7, 8, 9, DateTimeKind.Utc);
        var rows = new List<NestedParquetRow>
        {
            new()
            {
                Prompt = "full", Maybe = 5, Nums = [1, 2], Words = ["a", null, "b"], Point = new() { X = 9, Label = "p" },
                Grid = [[1], [], [2, 3]], Counts = new() { ["k"] = 3, ["j"] = 4 }, Small = -2, Ratio = 0.5f, Flag = true,
                Price = 12.34m, When = when, Blob = [1, 2, 255],
            },
            new() { Prompt = "nulls" },
            new() { Prompt = "empties", Nums = [], Words = [], Point = new() { X = 1 }, Grid = [], Counts = [] },
        };
        string path = ParquetTestFiles.Write(_folder.File("nested.parquet"), rows);

        var dataset = PromptDataset.Load(path);
        var full = dataset[0].Columns;
        var nulls = dataset[1].Columns;
        var empties = dataset[2].Columns;

        Assert.That(full["maybe"], Is.EqualTo(5L));
        Assert.That(full["nums"], Is.EqualTo(new List<object?> { 1L, 2L }));
        Assert.That(full["words"], Is.EqualTo(new List<object?> { "a", null, "b" }), "a null element stays in its place");
        Assert.That(full["point"], Is.EqualTo(new Dictionary<string, object?> { ["x"] = 9L, ["label"] = "p" }));
        Assert.That(full["grid"], Is.EqualTo(new List<object?> { new List<object?> { 1L }, new List<object?>(), new List<object?> { 2L, 3L } }));
        Assert.That(full["counts"], Is.EqualTo(new Dictionary<string, object?> { ["k"] = 3L, ["j"] = 4L }));
        Assert.That(full["small"], Is.TypeOf<long>().And.EqualTo(-2L));
        Assert.That(full["ratio"], Is.TypeOf<double>().And.EqualTo(0.5));
        Assert.That(full["flag"], Is.EqualTo(true));
        Assert.That(full["price"], Is.TypeOf<decimal>().And.EqualTo(12.34m));
        Assert.That(full["when"], Is.TypeOf<DateTime>().And.EqualTo(when));
        Assert.That(full["blob"], Is.EqualTo(new byte[] { 1, 2, 255 }));

        foreach (string name in new[] { "maybe", "nums", "words", "point", "grid", "counts", "flag", "price", "when", "blob" })
            Assert.That(nulls[name], Is.Null, name);
        Assert.That(nulls["small"], Is.EqualTo(0L));

        Assert.That(empties["nums"], Is.EqualTo(new List<object?>()), "an empty list is not null");
        Assert.That(empties["words"], Is.EqualTo(new List<object?>()));
        Assert.That(empties["grid"], Is.EqualTo(new List<object?>()));
        Assert.That(empties["counts"], Is.EqualTo(new Dictionary<string, object?>()));
        Assert.That(empties["point"], Is.EqualTo(new Dictionary<string, object?> { ["x"] = 1L, ["label"] = null }), "a null field of a present struct");
    }

    [Test]
    public void ALegacyRepeatedColumnBecomesAList()
    {
        string path = ParquetTestFiles.WriteLegacyRepeated(_folder.File("legacy.parquet"));

        var dataset = PromptDataset.Load(path);

        Assert.That(dataset.Select(r => r.Text), Is.EqualTo(new[] { "a", "b", "c" }));
        Assert.That(dataset.Select(r => r.Columns["ids"]), Is.EqualTo(new object[]
        {
            new List<object?> { 1L, 2L }, new List<object?>(), new List<object?> { 3L },
        }));
    }

    [Test]
    public void AFileWithoutThePromptColumnNamesItAndListsTheColumnsThereAre()
    {
        string path = ParquetTestFiles.Write(_folder.File("train.parquet"), [Standard(1)]);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path, promptColumn: "question"));

        Assert.That(e!.Message, Does.Contain($"'{path}' has no column 'question'")
            .And.Contain("its columns are: 'prompt', 'id', 'score', 'answer', 'tags'"));
        Assert.That(e.MissingColumn, Is.EqualTo("question"));
    }

    [Test]
    public void ANullPromptIsRefusedWithItsRow()
    {
        var rows = new List<StandardParquetRow> { Standard(0), new() { Prompt = null, Id = 1 } };
        string path = ParquetTestFiles.Write(_folder.File("train.parquet"), rows);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' row 1: 'prompt' is null, neither a string"));
    }

    [Test]
    public void APromptColumnOfAnotherTypeIsRefused()
    {
        string path = ParquetTestFiles.Write(_folder.File("train.parquet"), [Standard(3)]);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path, promptColumn: "id"));

        Assert.That(e!.Message, Does.Contain($"'{path}' row 0: 'id' is a number (3), neither a string"));
    }

    [Test]
    public void AFileThatIsNotParquetIsRefused()
    {
        string path = _folder.File("broken.parquet");
        File.WriteAllText(path, "{\"prompt\": \"this is JSON, not Parquet\"}");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' is not a readable Parquet file"));
    }

    [Test]
    public void ACorruptDataPageIsReportedWithTheFile()
    {
        string path = ParquetTestFiles.Write(_folder.File("corrupt.parquet"), [.. Enumerable.Range(0, 50).Select(Standard)]);
        byte[] bytes = File.ReadAllBytes(path);
        // The footer (schema, offsets) at the end stays intact; the column chunks after the "PAR1" magic are overwritten.
        Array.Fill(bytes, (byte)0xFF, 4, bytes.Length / 3);
        File.WriteAllBytes(path, bytes);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        TestContext.Out.WriteLine(e!.Message);
        Assert.That(e.Message, Does.StartWith($"'{path}'"));
    }

    [Test]
    public void AFileWithNoRowsIsRefused()
    {
        string path = ParquetTestFiles.Write(_folder.File("empty.parquet"), new List<StandardParquetRow>());

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' holds no rows"));
    }
}

using Grpo.Native.Datasets;
using NUnit.Framework;

namespace Grpo.Native.Tests.Datasets;

/// <summary>Reading JSON Lines prompt datasets: both prompt formats, column values and types, and every user error.</summary>
public sealed class PromptDatasetJsonlTests
{
    private DatasetFolder _folder = null!;

    [SetUp]
    public void SetUp() => _folder = new DatasetFolder();

    [TearDown]
    public void TearDown() => _folder.Dispose();

    [Test]
    public void StandardRowsKeepEveryOtherColumnAsPlainValues()
    {
        string path = _folder.WriteLines("train.jsonl",
            """{"prompt": "What is 2+2?", "answer": "4", "n": 7, "x": 0.5, "whole": 2.0, "ok": true, "none": null, "tags": ["a", 1], "meta": {"k": [1, 2]}}""",
            """{"prompt": "Name a colour.", "answer": "red", "n": -3, "x": 1e3, "whole": 3, "ok": false, "none": null, "tags": [], "meta": {}}""");

        var dataset = PromptDataset.Load(path);

        Assert.That(dataset, Has.Count.EqualTo(2));
        Assert.That(dataset.Files, Is.EqualTo(new[] { path }));
        Assert.That(dataset.Columns, Is.EqualTo(new[] { "answer", "n", "x", "whole", "ok", "none", "tags", "meta" }));
        var row = dataset[0];
        Assert.That(row.IsConversational, Is.False);
        Assert.That(row.Text, Is.EqualTo("What is 2+2?"));
        Assert.That(row.Messages, Is.Null);
        Assert.That(row.Location, Is.EqualTo($"'{path}' line 1"));
        Assert.That(row.Columns.Keys, Is.EqualTo(dataset.Columns), "the prompt is not among the columns, the rest keep file order");
        Assert.That(row.Columns["answer"], Is.TypeOf<string>().And.EqualTo("4"));
        Assert.That(row.Columns["n"], Is.TypeOf<long>().And.EqualTo(7L));
        Assert.That(row.Columns["x"], Is.TypeOf<double>().And.EqualTo(0.5));
        Assert.That(row.Columns["whole"], Is.TypeOf<double>().And.EqualTo(2.0), "2.0 is a float in JSON, as in Python");
        Assert.That(row.Columns["ok"], Is.TypeOf<bool>().And.EqualTo(true));
        Assert.That(row.Columns.ContainsKey("none") && row.Columns["none"] is null);
        Assert.That(row.Columns["tags"], Is.EqualTo(new List<object?> { "a", 1L }));
        Assert.That(row.Columns["meta"], Is.EqualTo(new Dictionary<string, object?> { ["k"] = new List<object?> { 1L, 2L } }));
        Assert.That(dataset[1].Columns["n"], Is.EqualTo(-3L));
        Assert.That(dataset[1].Columns["x"], Is.EqualTo(1000.0));
        Assert.That(dataset[1].Columns["whole"], Is.TypeOf<long>().And.EqualTo(3L));
        Assert.That(dataset[1].Columns["tags"], Is.Empty);
    }

    [Test]
    public void ConversationalRowsBecomeMessagesWithTheirExtraFields()
    {
        string path = _folder.WriteLines("chat.jsonl",
            """{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "ann"}], "solution": 42}""");

        var row = PromptDataset.Load(path).Single();

        Assert.That(row.IsConversational);
        Assert.That(row.Text, Is.Null);
        Assert.That(row.Messages!.Select(m => (m.Role, m.Content)), Is.EqualTo(new[] { ("system", "Be brief."), ("user", "Hi") }));
        Assert.That(row.Messages![0].Extra, Is.Null);
        Assert.That(row.Messages![1].Extra, Is.EqualTo(new Dictionary<string, object?> { ["name"] = "ann" }));
        Assert.That(row.Columns, Is.EqualTo(new Dictionary<string, object?> { ["solution"] = 42L }));
    }

    [Test]
    public void BlankLinesAreSkippedAndLinesStillCountFromOne()
    {
        string path = _folder.File("gaps.jsonl");
        File.WriteAllText(path, "\n{\"prompt\": \"a\"}\n   \n\r\n{\"prompt\": \"b\"}\n\n");

        var dataset = PromptDataset.Load(path);

        Assert.That(dataset.Select(r => r.Text), Is.EqualTo(new[] { "a", "b" }));
        Assert.That(dataset.Select(r => r.Location), Is.EqualTo(new[] { $"'{path}' line 2", $"'{path}' line 5" }));
    }

    [Test]
    public void AByteOrderMarkAndWindowsLineEndingsAreRead()
    {
        string path = _folder.File("bom.jsonl");
        File.WriteAllText(path, "{\"prompt\": \"a\"}\r\n{\"prompt\": \"b\"}\r\n", new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: true));

        Assert.That(PromptDataset.Load(path).Select(r => r.Text), Is.EqualTo(new[] { "a", "b" }));
    }

    [Test]
    public void AColumnSomeRowsLackIsNullInThoseRows()
    {
        string path = _folder.WriteLines("ragged.jsonl",
            """{"prompt": "a", "answer": "1"}""",
            """{"prompt": "b", "hint": "h"}""");

        var dataset = PromptDataset.Load(path);

        Assert.That(dataset.Columns, Is.EqualTo(new[] { "answer", "hint" }));
        Assert.That(dataset[0].Columns, Is.EqualTo(new Dictionary<string, object?> { ["answer"] = "1", ["hint"] = null }));
        Assert.That(dataset[1].Columns, Is.EqualTo(new Dictionary<string, object?> { ["answer"] = null, ["hint"] = "h" }));
        Assert.That(dataset[1].Columns.Keys, Is.EqualTo(new[] { "answer", "hint" }), "every row has the dataset's column order");
    }

    [Test]
    public void TheDatasetColumnOrderIsTheOrderOfFirstAppearanceWhateverTheRowsOrder()
    {
        string path = _folder.WriteLines("order.jsonl",
            """{"b": 1, "prompt": "a"}""",
            """{"a": 2, "prompt": "b", "b": 3}""");

        var dataset = PromptDataset.Load(path);

        Assert.That(dataset[0].Columns.Keys, Is.EqualTo(new[] { "b", "a" }));
        Assert.That(dataset[1].Columns.Keys, Is.EqualTo(new[] { "b", "a" }));
        Assert.That(dataset[1].Columns["b"], Is.EqualTo(3L));
    }

    [Test]
    public void AnotherPromptColumnCanBeNamed()
    {
        string path = _folder.WriteLines("q.jsonl", """{"question": "Why?", "prompt": "not this one"}""");

        var dataset = PromptDataset.Load(path, promptColumn: "question");

        Assert.That(dataset.PromptColumn, Is.EqualTo("question"));
        Assert.That(dataset[0].Text, Is.EqualTo("Why?"));
        Assert.That(dataset[0].Columns, Is.EqualTo(new Dictionary<string, object?> { ["prompt"] = "not this one" }));
    }

    [Test]
    public async Task LoadAsyncReadsTheSameRows()
    {
        string path = _folder.WriteLines("a.jsonl", """{"prompt": "a", "n": 1}""");

        var dataset = await PromptDataset.LoadAsync(path);

        Assert.That(dataset[0].Text, Is.EqualTo("a"));
        Assert.That(dataset[0].Columns["n"], Is.EqualTo(1L));
    }

    [Test]
    public void AMissingFileIsNamed()
    {
        string path = Path.Combine(_folder.Path, "nope.jsonl");

        var e = Assert.Throws<FileNotFoundException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain(path).And.Contain("does not exist"));
    }

    [Test]
    public void AMalformedLineIsNamedByFileAndLine()
    {
        string path = _folder.WriteLines("bad.jsonl",
            """{"prompt": "a"}""",
            "",
            """{"prompt": "b",}""");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' line 3").And.Contain("not valid JSON"));
        Assert.That(e.InnerException, Is.InstanceOf<System.Text.Json.JsonException>());
    }

    [TestCase("[1, 2]", "array")]
    [TestCase("\"text\"", "string")]
    [TestCase("null", "null")]
    public void ALineThatIsNotAnObjectIsRefused(string line, string kind)
    {
        string path = _folder.WriteLines("notobj.jsonl", line);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' line 1 is a JSON {kind}, not an object"));
    }

    [Test]
    public void ARepeatedKeyIsRefused()
    {
        string path = _folder.WriteLines("dup.jsonl", """{"prompt": "a", "prompt": "b"}""");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain("line 1 has the key 'prompt' twice"));
    }

    [Test]
    public void ARowWithoutThePromptColumnNamesItAndListsTheColumnsThereAre()
    {
        string path = _folder.WriteLines("noprompt.jsonl",
            """{"prompt": "a"}""",
            """{"question": "q", "answer": "4"}""");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' line 2 has no column 'prompt'")
            .And.Contain("its columns are: 'question', 'answer'")
            .And.Contain("promptColumn"));
        Assert.That(e.MissingColumn, Is.EqualTo("prompt"));
    }

    [Test]
    public void ARowWithNoColumnsAtAllSaysSo()
    {
        string path = _folder.WriteLines("empty-object.jsonl", "{}");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain("its columns are: (none)"));
    }

    [TestCase("""{"prompt": 3}""", "a number (3)")]
    [TestCase("""{"prompt": null}""", "null")]
    [TestCase("""{"prompt": {"role": "user", "content": "x"}}""", "an object")]
    [TestCase("""{"prompt": true}""", "a boolean")]
    public void APromptThatIsNeitherTextNorMessagesIsRefused(string line, string what)
    {
        string path = _folder.WriteLines("p.jsonl", line);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' line 1: 'prompt' is {what}, neither a string")
            .And.Contain("list of {role, content} messages"));
    }

    [TestCase("""{"prompt": ["hi"]}""", "'prompt'[0] is a string, not a {role, content} message")]
    [TestCase("""{"prompt": [{"content": "hi"}]}""", "'prompt'[0] has no string 'role' (it has null)")]
    [TestCase("""{"prompt": [{"role": "user", "content": "a"}, {"role": "user"}]}""", "'prompt'[1] (user) has no string 'content' (it has null)")]
    [TestCase("""{"prompt": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}""", "(user) has no string 'content' (it has a list); lists of content parts are not supported")]
    [TestCase("""{"prompt": []}""", "'prompt' is an empty list of messages")]
    public void ABadMessageListIsRefusedWithTheMessageIndex(string line, string expected)
    {
        string path = _folder.WriteLines("m.jsonl", line);

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' line 1: ").And.Contain(expected));
    }

    [Test]
    public void AFileWithNoRowsIsRefused()
    {
        string path = _folder.WriteLines("empty.jsonl", "", "  ");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' holds no rows"));
    }

    [Test]
    public void AFileOfAnotherKindIsRefused()
    {
        string path = _folder.WriteLines("train.csv", "prompt", "a");

        var e = Assert.Throws<PromptDatasetException>(() => PromptDataset.Load(path));

        Assert.That(e!.Message, Does.Contain($"'{path}' is neither a .jsonl nor a .parquet file"));
    }

    [Test]
    public void RowsBuiltInCodeMakeADataset()
    {
        var columns = new Dictionary<string, object?> { ["answer"] = "4" };
        var dataset = new PromptDataset([PromptRow.Standard("2+2?", columns, "code 0")]);

        Assert.That(dataset.Single().Text, Is.EqualTo("2+2?"));
        Assert.That(dataset.Columns, Is.EqualTo(new[] { "answer" }));
        Assert.Throws<ArgumentException>(() => _ = new PromptDataset([]));
        Assert.Throws<ArgumentException>(() => PromptRow.Conversational([], columns, "code 1"));
    }
}

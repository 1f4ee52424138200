using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Grpo.Native.Checkpoints;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Checkpoints;

/// <summary>Safetensors reading, writing, sharding, atomic writes and hostile-file handling.</summary>
public sealed class SafetensorsFileTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "grpo-st-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    /// <summary>The bytes of a safetensors file with the given header text (unpadded) and data.</summary>
    private static byte[] BuildFile(string header, byte[] data)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)json.Length);
        json.CopyTo(file, 8);
        data.CopyTo(file, 8 + json.Length);
        return file;
    }

    private string WriteBytes(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static (string, int[], ReadOnlyMemory<float>) T(string name, int[] shape, float[] data) => (name, shape, data);

    [Test]
    public void F32RoundTripIsBitExactWithMetadataAndAlignedHeader()
    {
        var random = TestRandom.Create();
        int[][] shapes = [[1], [7], [3, 5], [2, 3, 4], [1, 1, 13], [0], [], [17, 1]];
        var tensors = shapes.Select((s, i) => (name: $"layer.{i}.weight", shape: s,
            data: TestRandom.Normal(random, s.Aggregate(1, (a, b) => a * b), 10))).ToArray();
        // Non-finite and extreme values must survive bit for bit too.
        tensors[2].data[0] = float.NaN; tensors[2].data[1] = float.NegativeInfinity; tensors[2].data[2] = float.Epsilon; tensors[2].data[3] = -0f;
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["step"] = "12", ["note"] = "ünïcode \"quoted\"" };
        string path = Path.Combine(_dir, "model.safetensors");
        SafetensorsWriter.Write(path, tensors.Select(t => T(t.name, t.shape, t.data)), metadata);

        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.That(headerLength % 8, Is.Zero, "the header must be padded to a multiple of 8 bytes");
        string header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.That(header, Does.StartWith("{\"__metadata__\""));
        Assert.That(header.TrimEnd(' '), Does.EndWith("}"), "padding is spaces after the JSON");

        using var file = SafetensorsFile.Open(path);
        Assert.That(file.Names, Is.EquivalentTo(tensors.Select(t => t.name)));
        Assert.That(file.Metadata, Is.EquivalentTo(metadata));
        foreach (var (name, shape, data) in tensors)
        {
            var info = file.Get(name);
            Assert.That(info.DType, Is.EqualTo(SafetensorsDType.F32));
            Assert.That(info.Shape, Is.EqualTo(shape), name);
            float[] read = file.ReadFloat32(name);
            Assert.That(read.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(data.Select(BitConverter.SingleToInt32Bits)), name);
            var into = new float[data.Length];
            Array.Fill(into, float.NaN); // poison: a read that skips elements leaves NaN bits behind
            file.ReadInto(name, into);
            Assert.That(into.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(data.Select(BitConverter.SingleToInt32Bits)), name);
        }
        // Keys sorted ordinally, data laid out in that order.
        var ordered = tensors.Select(t => t.name).Order(StringComparer.Ordinal).ToArray();
        for (int i = 1; i < ordered.Length; i++)
            Assert.That(file.Get(ordered[i]).DataBegin, Is.EqualTo(file.Get(ordered[i - 1]).DataEnd));
    }

    /// <summary>
    /// Tensors handed over as sources are asked for consecutive pieces and written like in-memory ones; a tensor
    /// longer than the writer's 2^20-element piece is read in several, and read back in arbitrary ranges.
    /// </summary>
    [TestCase(SafetensorsDType.F32)]
    [TestCase(SafetensorsDType.BF16)]
    public void PieceSourcesWriteTheSameFileAndRangesReadBack(SafetensorsDType dtype)
    {
        var random = TestRandom.Create();
        float[] big = TestRandom.Normal(random, (1 << 20) + 12_345), small = TestRandom.Normal(random, 6);
        var pieces = new List<(long Start, int Length)>();
        SafetensorsTensorSource Source(string name, int[] shape, float[] data, bool record) => new(name, shape, (piece, start) =>
        {
            if (record) pieces.Add((start, piece.Length));
            data.AsSpan((int)start, piece.Length).CopyTo(piece);
        });
        string fromSources = Path.Combine(_dir, "sources.safetensors"), fromMemory = Path.Combine(_dir, "memory.safetensors");
        SafetensorsWriter.Write(fromSources, [Source("z.big", [big.Length], big, record: true), Source("a.small", [2, 3], small, record: false)],
            dtype: dtype);
        SafetensorsWriter.Write(fromMemory, [T("z.big", [big.Length], big), T("a.small", [2, 3], small)], dtype: dtype);
        Assert.That(File.ReadAllBytes(fromSources), Is.EqualTo(File.ReadAllBytes(fromMemory)));
        Assert.That(pieces, Is.EqualTo(new[] { (0L, 1 << 20), ((long)(1 << 20), 12_345) }), "consecutive pieces in order");

        using var file = SafetensorsFile.Open(fromSources);
        float[] whole = file.ReadFloat32("z.big");
        foreach (var (start, length) in new[] { (0, 1), (1_000_003, 50_000), (big.Length - 5, 5), (77, 0) })
        {
            var range = new float[length];
            file.ReadInto("z.big", range, start);
            Assert.That(range, Is.EqualTo(whole.AsSpan(start, length).ToArray()), $"elements [{start}, {start + length})");
        }
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => file.ReadInto("z.big", new float[6], big.Length - 5));
        Assert.That(error!.ParamName, Is.EqualTo("firstElement"));
        Assert.That(error.Message, Does.Contain("z.big"));
    }

    [Test]
    public void ASourceWithANegativeDimensionIsRefusedBeforeAnyFile()
    {
        string path = Path.Combine(_dir, "bad.safetensors");
        var error = Assert.Throws<ArgumentException>(() =>
            SafetensorsWriter.Write(path, [new SafetensorsTensorSource("w", [2, -1], (_, _) => { })]));
        Assert.That(error!.Message, Does.Contain("'w'").And.Contain("negative"));
        Assert.That(File.Exists(path), Is.False);
    }

    [TestCase(SafetensorsDType.F16)]
    [TestCase(SafetensorsDType.BF16)]
    public void ReducedPrecisionWriteReadsBackRounded(SafetensorsDType dtype)
    {
        var random = TestRandom.Create();
        float[] data = TestRandom.Normal(random, 301, 5);
        string path = Path.Combine(_dir, "half.safetensors");
        SafetensorsWriter.Write(path, [T("w", [7, 43], data)], dtype: dtype);
        using var file = SafetensorsFile.Open(path);
        Assert.That(file.Get("w").DType, Is.EqualTo(dtype));
        float[] read = file.ReadFloat32("w");
        double worst = 0;
        for (int i = 0; i < data.Length; i++)
        {
            float want = dtype == SafetensorsDType.F16
                ? SafetensorsDTypes.HalfToSingle(SafetensorsDTypes.SingleToHalf(data[i]))
                : SafetensorsDTypes.BFloat16ToSingle(SafetensorsDTypes.SingleToBFloat16(data[i]));
            Assert.That(read[i], Is.EqualTo(want));
            worst = Math.Max(worst, Math.Abs(read[i] - data[i]) / Math.Max(Math.Abs(data[i]), 1e-3));
        }
        TestContext.Out.WriteLine($"{dtype} worst relative rounding error {worst:E3}");
        Assert.That(worst, Is.LessThan(dtype == SafetensorsDType.F16 ? 1e-3 : 4e-3));
    }

    [Test]
    public void HandBuiltFileReadsExactly()
    {
        const string header =
            "{\"__metadata__\":{\"format\":\"pt\"}," +
            "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," +
            "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[8,12]}," +
            "\"c\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[12,14]}}";
        byte[] data =
        [
            0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0, // F32 1.0, -2.5
            0x80, 0x3F, 0x00, 0xBF,                         // BF16 1.0, -0.5
            0x00, 0x38,                                     // F16 0.5 (scalar)
        ];
        string path = WriteBytes("tiny.safetensors", BuildFile(header, data));
        using var file = SafetensorsFile.Open(path);
        Assert.That(file.Names, Is.EquivalentTo(new[] { "a", "b", "c" }));
        Assert.That(file.Metadata["format"], Is.EqualTo("pt"));
        Assert.That(file.ReadFloat32("a"), Is.EqualTo(new[] { 1.0f, -2.5f }));
        Assert.That(file.Get("b").Shape, Is.EqualTo(new[] { 1, 2 }));
        Assert.That(file.ReadFloat32("b"), Is.EqualTo(new[] { 1.0f, -0.5f }));
        Assert.That(file.Get("c").Shape, Is.Empty);
        Assert.That(file.ReadFloat32("c"), Is.EqualTo(new[] { 0.5f }));
    }

    [Test]
    public void WriterProducesTheExactBytesHuggingFaceWrites()
    {
        string path = Path.Combine(_dir, "exact.safetensors");
        SafetensorsWriter.Write(path, [T("z", [1], [2f]), T("a", [2], [1f, -2.5f])],
            new Dictionary<string, string> { ["format"] = "pt" });
        string json = "{\"__metadata__\":{\"format\":\"pt\"}," +
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," +
                      "\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
        string padded = json.PadRight((json.Length + 7) / 8 * 8);
        byte[] expected = BuildFile(padded, [0, 0, 0x80, 0x3F, 0, 0, 0x20, 0xC0, 0, 0, 0, 0x40]);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(expected));
    }

    [Test]
    public void ShardedIndexWithTwoShardsLoads()
    {
        var random = TestRandom.Create();
        float[] wte = TestRandom.Normal(random, 12), ln = TestRandom.Normal(random, 3), fc = TestRandom.Normal(random, 6);
        SafetensorsWriter.Write(Path.Combine(_dir, "model-00001-of-00002.safetensors"), [T("transformer.wte.weight", [4, 3], wte)]);
        SafetensorsWriter.Write(Path.Combine(_dir, "model-00002-of-00002.safetensors"),
            [T("transformer.ln_f.weight", [3], ln), T("transformer.h.0.mlp.c_fc.weight", [3, 2], fc)]);
        File.WriteAllText(Path.Combine(_dir, "model.safetensors.index.json"), """
            {"metadata": {"total_size": 84},
             "weight_map": {"transformer.wte.weight": "model-00001-of-00002.safetensors",
                            "transformer.ln_f.weight": "model-00002-of-00002.safetensors",
                            "transformer.h.0.mlp.c_fc.weight": "model-00002-of-00002.safetensors"}}
            """);
        using var file = SafetensorsFile.OpenFolder(_dir);
        Assert.That(file.Names, Has.Count.EqualTo(3));
        Assert.That(file.ReadFloat32("transformer.wte.weight"), Is.EqualTo(wte));
        Assert.That(file.ReadFloat32("transformer.ln_f.weight"), Is.EqualTo(ln));
        Assert.That(file.ReadFloat32(file.Resolve("h.0.mlp.c_fc.weight")), Is.EqualTo(fc));
        Assert.That(file.Get("transformer.ln_f.weight").ShardPath, Does.EndWith("model-00002-of-00002.safetensors"));
    }

    [Test]
    public void ShardedIndexErrorsNameTheProblem()
    {
        SafetensorsWriter.Write(Path.Combine(_dir, "s1.safetensors"), [T("a", [1], [1f])]);
        string index = Path.Combine(_dir, "model.safetensors.index.json");
        File.WriteAllText(index, """{"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}}""");
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.OpenFolder(_dir));
        Assert.That(e!.Message, Does.Contain("'b'").And.Contain("s1.safetensors"));

        File.WriteAllText(index, """{"weight_map": {"a": "missing.safetensors"}}""");
        var missing = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.OpenFolder(_dir));
        Assert.That(missing!.Message, Does.Contain("missing.safetensors"));

        File.WriteAllText(index, """{"weight_map": {"a": "../s1.safetensors"}}""");
        Assert.That(Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.OpenFolder(_dir))!.Message, Does.Contain("'a'"));

        File.WriteAllText(index, """{"weight_map": {"a": """);
        Assert.That(Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.OpenFolder(_dir))!.Message, Does.Contain(index));
    }

    [Test]
    public void MissingFilesNameThePathAndTheFix()
    {
        string path = Path.Combine(_dir, "nope.safetensors");
        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open(path));
        Assert.That(e!.Message, Does.Contain(path).And.Contain("download"));
        var folder = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.OpenFolder(_dir));
        Assert.That(folder!.Message, Does.Contain("model.safetensors"));
    }

    [Test]
    public void PrefixResolutionAndParameterListSkipGpt2Buffers()
    {
        string path = Path.Combine(_dir, "gpt2.safetensors");
        SafetensorsWriter.Write(path,
        [
            T("wte.weight", [2, 2], [1, 2, 3, 4]), T("h.0.attn.bias", [1, 1, 2, 2], [1, 0, 1, 1]),
            T("h.0.attn.masked_bias", [1], [-1e4f]), T("h.0.attn.c_attn.bias", [6], new float[6]),
            T("transformer.ln_f.bias", [2], [0, 0]),
        ]);
        using var file = SafetensorsFile.Open(path);
        Assert.That(file.Resolve("transformer.wte.weight"), Is.EqualTo("wte.weight"));
        Assert.That(file.Resolve("wte.weight"), Is.EqualTo("wte.weight"));
        Assert.That(file.Resolve("ln_f.bias"), Is.EqualTo("transformer.ln_f.bias"));
        Assert.That(file.TryResolve("lm_head.weight"), Is.Null);
        Assert.That(Assert.Throws<KeyNotFoundException>(() => file.Resolve("lm_head.weight"))!.Message, Does.Contain("lm_head.weight"));
        Assert.That(file.ParameterNames, Is.EqualTo(new[] { "h.0.attn.c_attn.bias", "transformer.ln_f.bias", "wte.weight" }));
        var e = Assert.Throws<ArgumentException>(() => file.ReadInto("wte.weight", new float[3]));
        Assert.That(e!.ParamName, Is.EqualTo("destination"));
    }

    /// <summary>Memory whose span throws once armed: fails the writer after the temp file exists.</summary>
    private sealed class ExplodingMemory(int length) : MemoryManager<float>
    {
        private readonly float[] _data = new float[length];
        public override Span<float> GetSpan() => throw new IOException("disk on fire");
        public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
        public new Memory<float> Memory => CreateMemory(_data.Length);
    }

    [Test]
    public void FailedWritesLeaveThePreviousFileAndNoTempFile()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        SafetensorsWriter.Write(path, [T("a", [3], [1, 2, 3])]);
        byte[] before = File.ReadAllBytes(path);

        IEnumerable<(string, int[], ReadOnlyMemory<float>)> ThrowingMidway()
        {
            yield return T("b", [2], [4, 5]);
            throw new InvalidOperationException("enumeration failed");
        }
        Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.Write(path, ThrowingMidway()));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(_dir), Is.EqualTo(new[] { path }));

        // Failing while the data is being written (the temp file exists by then).
        var exploding = new ExplodingMemory(5);
        Assert.Throws<IOException>(() => SafetensorsWriter.Write(path, [T("b", [2], [4, 5]), ("c", [5], exploding.Memory)]));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(_dir), Is.EqualTo(new[] { path }));

        var bad = Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [T("b", [2, 2], [4, 5])]));
        Assert.That(bad!.Message, Does.Contain("'b'"));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(_dir), Is.EqualTo(new[] { path }));
    }

    private static string Tensor(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    private static IEnumerable<TestCaseData> Corruptions()
    {
        byte[] d16 = new byte[16];
        TestCaseData Case(string why, string header, byte[] data, string mentions) =>
            new TestCaseData(header, data, mentions).SetName($"Corrupt_{why}");
        yield return Case("InvalidJson", "{\"w\":{\"dtype\":", d16, "JSON");
        yield return Case("NotAnObject", "[1,2]", d16, "not an object");
        yield return Case("TensorNotObject", "{\"w\":5}", d16, "'w'");
        yield return Case("MissingDtype", "{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", d16, "'w'");
        yield return Case("MissingShape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", d16, "'w'");
        yield return Case("MissingOffsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", d16, "'w'");
        yield return Case("UnknownDtype", "{" + Tensor("w", "I64", "[2]", 0, 16) + "}", d16, "I64");
        yield return Case("NegativeShape", "{" + Tensor("w", "F32", "[-4]", 0, 16) + "}", d16, "'w'");
        yield return Case("FractionalShape", "{" + Tensor("w", "F32", "[2.5]", 0, 16) + "}", d16, "'w'");
        yield return Case("OverflowingShape", "{" + Tensor("w", "F32", "[2147483647,2147483647,2147483647]", 0, 16) + "}", d16, "overflow");
        yield return Case("SizeMismatch", "{" + Tensor("w", "F32", "[3]", 0, 16) + "}", d16, "needs 12");
        yield return Case("OffsetsPastData", "{" + Tensor("w", "F32", "[8]", 0, 32) + "}", d16, "past the end");
        yield return Case("StringOffsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[\"0\",16]}}", d16, "'w'");
        yield return Case("NegativeOffset", "{" + Tensor("w", "F32", "[4]", -16, 0) + "}", d16, "'w'");
        yield return Case("ReversedOffsets", "{" + Tensor("w", "F32", "[0]", 8, 4) + "}", d16, "'w'");
        yield return Case("Overlap", "{" + Tensor("u", "F32", "[3]", 0, 12) + "," + Tensor("w", "F32", "[2]", 8, 16) + "}", d16, "overlaps");
        yield return Case("DuplicateName", "{" + Tensor("w", "F32", "[2]", 0, 8) + "," + Tensor("w", "F32", "[2]", 8, 16) + "}", d16, "twice");
        yield return Case("MetadataNotStrings", "{\"__metadata__\":{\"a\":1}," + Tensor("w", "F32", "[4]", 0, 16) + "}", d16, "__metadata__");
        yield return Case("TooDeep", "{\"w\":" + new string('[', 100) + new string(']', 100) + "}", d16, "JSON");
    }

    [TestCaseSource(nameof(Corruptions))]
    public void CorruptHeaderThrowsCheckpointFormatException(string header, byte[] data, string mentions)
    {
        string path = WriteBytes("bad.safetensors", BuildFile(header, data));
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path).Dispose());
        TestContext.Out.WriteLine(e!.Message);
        Assert.That(e.Message, Does.Contain(path).And.Contain(mentions));
    }

    [Test]
    public void BrokenLengthsAndTruncatedDataThrowCheckpointFormatException()
    {
        string valid = Path.Combine(_dir, "valid.safetensors");
        SafetensorsWriter.Write(valid, [T("a.weight", [4], [1, 2, 3, 4]), T("b.weight", [2], [5, 6])]);
        byte[] bytes = File.ReadAllBytes(valid);

        void Expect(byte[] content, params string[] mentions)
        {
            string path = WriteBytes("broken.safetensors", content);
            var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path).Dispose());
            TestContext.Out.WriteLine(e!.Message);
            Assert.That(e.Message, Does.Contain(path));
            foreach (string m in mentions) Assert.That(e.Message, Does.Contain(m));
        }

        Expect(bytes[..5], "8-byte");
        var past = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(past, (ulong)bytes.Length);
        Expect(past, "past the end");
        var huge = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(huge, ulong.MaxValue);
        Expect(huge, "cap");
        Expect(bytes[..^4], "'b.weight'", "past the end");
    }

    [Test]
    public void RandomMutationsOnlyEverThrowCheckpointFormatException()
    {
        var random = TestRandom.Create();
        string valid = Path.Combine(_dir, "valid.safetensors");
        SafetensorsWriter.Write(valid,
        [
            T("transformer.wte.weight", [5, 3], TestRandom.Normal(random, 15)), T("h.0.attn.bias", [1, 1, 2, 2], [1, 0, 1, 1]),
            T("ln_f.weight", [3], [1, 1, 1]), T("scalar", [], [7]),
        ], new Dictionary<string, string> { ["format"] = "pt" }, SafetensorsDType.BF16);
        byte[] original = File.ReadAllBytes(valid);
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        byte[] interesting = "0123456789-[]{},:\"eE.+ "u8.ToArray();
        string path = Path.Combine(_dir, "mutant.safetensors");
        int succeeded = 0, rejected = 0;
        var clock = Stopwatch.StartNew();
        for (int iteration = 0; iteration < 2000; iteration++)
        {
            var bytes = new List<byte>(original);
            int edits = 1 + random.Next(3);
            for (int k = 0; k < edits && bytes.Count > 0; k++)
            {
                switch (random.Next(6))
                {
                    case 0: // bit flip anywhere
                        { int i = random.Next(bytes.Count); bytes[i] ^= (byte)(1 << random.Next(8)); break; }
                    case 1: // truncation
                        { int start = random.Next(bytes.Count); bytes.RemoveRange(start, bytes.Count - start); break; }
                    case 2: // header character replaced by JSON punctuation or a digit
                        { int i = 8 + random.Next(Math.Max(1, Math.Min(headerEnd, bytes.Count) - 8)); if (i < bytes.Count) bytes[i] = interesting[random.Next(interesting.Length)]; break; }
                    case 3: // header character deleted or duplicated
                        {
                            int i = 8 + random.Next(Math.Max(1, Math.Min(headerEnd, bytes.Count) - 8));
                            if (i >= bytes.Count) break;
                            if (random.Next(2) == 0) bytes.RemoveAt(i); else bytes.Insert(i, bytes[i]);
                            break;
                        }
                    case 4: // header length byte changed
                        { int i = random.Next(Math.Min(8, bytes.Count)); bytes[i] = (byte)random.Next(256); break; }
                    default: // random byte in the header
                        { int i = random.Next(Math.Min(headerEnd, bytes.Count)); bytes[i] = (byte)random.Next(256); break; }
                }
            }
            File.WriteAllBytes(path, bytes.ToArray());
            try
            {
                using var file = SafetensorsFile.Open(path);
                foreach (string name in file.Names)
                {
                    var info = file.Get(name);
                    Assert.That(file.ReadFloat32(name), Has.Length.EqualTo(info.ElementCount));
                }
                succeeded++;
            }
            catch (CheckpointFormatException e)
            {
                Assert.That(e.Message, Does.Contain(path), "the message must name the file");
                rejected++;
            }
            catch (Exception e) when (e is not AssertionException)
            {
                Assert.Fail($"iteration {iteration}: {e.GetType().Name}: {e.Message}");
            }
        }
        TestContext.Out.WriteLine($"{succeeded} mutants read, {rejected} rejected, {clock.Elapsed.TotalSeconds:F2} s");
        Assert.That(rejected, Is.GreaterThan(100), "the mutations should break most files");
    }
}

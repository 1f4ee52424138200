using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Operations;

/// <summary>SampleTokens on every backend against the double-precision reference, plus distribution and determinism checks.</summary>
public sealed class SamplingTests
{
    // Options with the spread of the random logits; the peaked case spreads z over about ±40, so most
    // tokens lie far enough below the top that the CPU backend's exact Gumbel pruning skips them.
    private static readonly Dictionary<string, (SamplingOptions Options, double Scale)> NamedOptions = new()
    {
        ["default"] = (new SamplingOptions(), 2),
        ["temperature 0.7"] = (new SamplingOptions { Temperature = 0.7f }, 2),
        ["peaked, temperature 0.5"] = (new SamplingOptions { Temperature = 0.5f }, 6),
        ["greedy"] = (new SamplingOptions { Temperature = 0 }, 2),
        ["top-k 5"] = (new SamplingOptions { TopK = 5 }, 2),
        ["top-p 0.9"] = (new SamplingOptions { TopP = 0.9f }, 2),
        ["min-p 0.05"] = (new SamplingOptions { MinP = 0.05f }, 2),
        ["all filters"] = (new SamplingOptions { Temperature = 0.8f, TopK = 50, TopP = 0.95f, MinP = 0.02f }, 2),
    };

    private static readonly (int Rows, int Vocab)[] Shapes =
        [.. from r in new[] { 1, 3, 17 } from v in new[] { 1, 2, 7, 1000, 5003 } select (r, v)];

    // chi2.isf(1e-4, df = 9): a fair sampler exceeds it one time in 10,000.
    private const double ChiSquare9DofAt1e4 = 33.72;

    public static IEnumerable<TestCaseData> KindsAndOptions() =>
        from kind in TestDevices.Kinds() from name in NamedOptions.Keys select new TestCaseData(kind, name);

    [TestCaseSource(nameof(KindsAndOptions))]
    public void MatchesTheReference(DeviceKind kind, string optionsName)
    {
        var device = TestDevices.Get(kind);
        var (options, scale) = NamedOptions[optionsName];
        var random = TestRandom.Create();
        foreach (var (rows, vocab) in Shapes)
        {
            // The ILGPU CPU simulator is slow: it skips the shapes above 5,003 elements.
            if (kind == DeviceKind.IlgpuCpu && rows * vocab > 5003) continue;
            float[] logits = TestRandom.Normal(random, rows * vocab, scale);
            ulong seed = (ulong)random.NextInt64();
            int step = random.Next(1000);
            var (tokens, logprobs) = Sample(device, logits, rows, vocab, options, seed, step);
            var expected = SamplingReference.Sample(logits, rows, vocab, options.Temperature, options.TopK,
                options.TopP, options.MinP, seed, step);

            int mismatches = 0;
            var expectedLogprobs = new double[rows];
            for (int r = 0; r < rows; r++)
            {
                expectedLogprobs[r] = SamplingReference.LogProb(logits.AsSpan(r * vocab, vocab), options.Temperature, tokens[r]);
                if (tokens[r] == expected[r].Token) continue;
                double gap = expected[r].BestScore - expected[r].RunnerUpScore;
                TestContext.Out.WriteLine(
                    $"[{rows}x{vocab}] row {r}: got {tokens[r]}, reference {expected[r].Token}, top-two score gap {gap:E2}");
                Assert.That(gap, Is.LessThan(1e-5), $"[{rows}x{vocab}] row {r}: token differs from the reference without a near-tie");
                Assert.That(expected[r].Kept[tokens[r]], Is.True, $"[{rows}x{vocab}] row {r}: token {tokens[r]} was filtered out");
                mismatches++;
            }
            Assert.That(mismatches, Is.AtMost(1), $"[{rows}x{vocab}] near-tie flips");
            Compare.WorstRelativeError($"[{rows}x{vocab}] {optionsName} log-probs", expectedLogprobs, logprobs);
        }
    }

    [Test]
    public void TheCounterRngMatchesTheSpecification()
    {
        var random = TestRandom.Create();
        double sum = 0;
        const int draws = 20000;
        for (int i = 0; i < draws; i++)
        {
            ulong seed = (ulong)random.NextInt64() ^ ((ulong)random.Next() << 40);
            int row = random.Next(), step = random.Next(), column = random.Next();
            float u = Grpo.Kernels.CounterRng.Uniform(Grpo.Kernels.CounterRng.RowKey(seed, row, step), column);
            double expected = SamplingReference.Uniform(seed, row, step, column);
            Assert.That(u, Is.EqualTo(expected), $"seed {seed}, row {row}, step {step}, column {column}");
            Assert.That(u, Is.GreaterThan(0f).And.LessThan(1f));
            sum += u;
        }
        // Mean of 20,000 uniforms: standard error 0.002, so 0.01 is five of them.
        Assert.That(sum / draws, Is.EqualTo(0.5).Within(0.01));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void SameArgumentsGiveTheSameTokensEverywhereAndNewStepsOrSeedsGiveNewOnes(DeviceKind kind)
    {
        const int vocab = 777;
        // The ILGPU CPU simulator pays heavily for every barrier of the bisections: fewer rows there.
        int rows = kind == DeviceKind.IlgpuCpu ? 12 : 33;
        var options = new SamplingOptions { Temperature = 0.8f, TopK = 400, TopP = 0.97f, MinP = 0.01f };
        var random = TestRandom.Create();
        float[] logits = TestRandom.Normal(random, rows * vocab, 0.5);
        ulong seed = (ulong)random.NextInt64();

        using var oneThread = new CpuDevice(maxDegreeOfParallelism: 1);
        var (baseline, baselineLogprobs) = Sample(oneThread, logits, rows, vocab, options, seed, 7);
        var device = TestDevices.Get(kind);
        var (tokens, logprobs) = Sample(device, logits, rows, vocab, options, seed, 7);
        Assert.That(tokens, Is.EqualTo(baseline), $"{kind} versus the managed CPU backend on one thread");
        Compare.WorstRelativeError("log-probs versus one CPU thread", Array.ConvertAll(baselineLogprobs, v => (double)v), logprobs);
        Assert.That(Sample(device, logits, rows, vocab, options, seed, 7).Tokens, Is.EqualTo(tokens), "repeat call");

        // Near-uniform rows over 777 tokens: a fresh draw repeats a row's token about 1 time in 500.
        int[] nextStep = Sample(device, logits, rows, vocab, options, seed, 8).Tokens;
        int[] otherSeed = Sample(device, logits, rows, vocab, options, seed + 1, 7).Tokens;
        int sameStep = tokens.Zip(nextStep).Count(pair => pair.First == pair.Second);
        int sameSeed = tokens.Zip(otherSeed).Count(pair => pair.First == pair.Second);
        TestContext.Out.WriteLine($"rows unchanged: next step {sameStep}/{rows}, other seed {sameSeed}/{rows}");
        Assert.That(sameStep, Is.LessThan(rows / 4), "a new step must give new draws");
        Assert.That(sameSeed, Is.LessThan(rows / 4), "a new seed must give new draws");
    }

    public static IEnumerable<TestCaseData> KindsAndDistributions() =>
        from kind in TestDevices.Kinds()
        from c in new[] { (1.0f, 0), (0.7f, 0), (1.0f, 4) }
        select new TestCaseData(kind, c.Item1, c.Item2);

    [TestCaseSource(nameof(KindsAndDistributions))]
    public void FrequenciesMatchTheSoftmaxOverTheKeptSet(DeviceKind kind, float temperature, int topK)
    {
        const int vocab = 10;
        var device = TestDevices.Get(kind);
        // The managed CPU backend draws 20,000 tokens over 20 steps; CUDA 2,000 rows in one call; the
        // slow simulator 600 rows (200 with top-k, whose bisection costs it dearly in barriers).
        int rows = kind switch { DeviceKind.Cpu => 1000, DeviceKind.IlgpuCpu => topK > 0 ? 200 : 600, _ => 2000 };
        int steps = kind == DeviceKind.Cpu ? 20 : 1;
        var options = new SamplingOptions { Temperature = temperature, TopK = topK };
        var random = TestRandom.Create();
        float[] row = TestRandom.Normal(random, vocab, 0.6);
        float[] logits = [.. Enumerable.Range(0, rows).SelectMany(_ => row)];
        ulong seed = (ulong)random.NextInt64();

        var counts = new long[vocab];
        for (int step = 0; step < steps; step++)
            foreach (int token in Sample(device, logits, rows, vocab, options, seed, step).Tokens) counts[token]++;

        double[] z = Array.ConvertAll(row, v => v / (double)temperature);
        bool[] kept = SamplingReference.KeptSet(z, topK, 1, 0);
        double zmax = z.Max();
        double[] weights = [.. z.Select((v, j) => kept[j] ? Math.Exp(v - zmax) : 0)];
        double total = weights.Sum(), draws = rows * steps, chiSquare = 0;
        int cells = 0;
        for (int j = 0; j < vocab; j++)
        {
            if (!kept[j])
            {
                Assert.That(counts[j], Is.Zero, $"token {j} is outside the top-{topK} set");
                continue;
            }
            double expected = draws * weights[j] / total;
            chiSquare += (counts[j] - expected) * (counts[j] - expected) / expected;
            cells++;
        }
        TestContext.Out.WriteLine($"counts [{string.Join(", ", counts)}], chi-square {chiSquare:F2} over {cells} cells");
        // Fewer kept cells means fewer degrees of freedom; the 9-dof bound is then only more generous.
        Assert.That(chiSquare, Is.LessThan(ChiSquare9DofAt1e4), "frequencies differ from softmax(z / T) over the kept set");
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void FiltersNeverEmitAnExcludedToken(DeviceKind kind)
    {
        const int vocab = 50;
        int rows = kind == DeviceKind.IlgpuCpu ? 30 : 200;
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        float[] row = TestRandom.Normal(random, vocab, 2.0);
        float[] logits = [.. Enumerable.Range(0, rows).SelectMany(_ => row)];
        var cases = new[]
        {
            new SamplingOptions { TopK = 5 },
            new SamplingOptions { TopP = 0.7f },
            new SamplingOptions { MinP = 0.1f },
            new SamplingOptions { Temperature = 1.5f, TopK = 20, TopP = 0.8f, MinP = 0.05f },
        };
        int steps = kind == DeviceKind.Cpu ? 5 : 1;
        foreach (var options in cases)
        {
            double[] z = Array.ConvertAll(row, v => v / (double)options.Temperature);
            bool[] kept = SamplingReference.KeptSet(z, options.TopK, options.TopP, options.MinP);
            var seen = new HashSet<int>();
            for (int step = 0; step < steps; step++)
                foreach (int token in Sample(device, logits, rows, vocab, options, (ulong)random.NextInt64(), step).Tokens)
                {
                    Assert.That(kept[token], Is.True, $"{options}: token {token} is outside the kept set");
                    seen.Add(token);
                }
            TestContext.Out.WriteLine($"{options}: kept {kept.Count(k => k)} of {vocab}, emitted {seen.Count} distinct");
            Assert.That(kept.Count(k => k), Is.LessThan(vocab), $"{options}: the case must exclude something");
            // "Still samples" only where it is near-certain: the top kept token taking every draw must
            // have probability below 1e-6 (min-p can legitimately keep one token of a random row).
            double zTop = z.Where((_, j) => kept[j]).Max();
            double pTop = 1 / z.Where((_, j) => kept[j]).Sum(x => Math.Exp(x - zTop));
            if (Math.Pow(pTop, rows * steps) < 1e-6)
                Assert.That(seen.Count, Is.GreaterThan(1), $"{options}: the sampler must still sample");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void FilterBoundariesFollowTheDefinition(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        float[] probabilities = [0.5f, 0.3f, 0.15f, 0.05f];
        float[] fromProbabilities = Array.ConvertAll(probabilities, MathF.Log);
        var cases = new (float[] Row, SamplingOptions Options, int[] Expected)[]
        {
            // Ties at the k-th value are all kept: three logits share the 2nd place.
            ([3, 2, 2, 2, 1, 0], new SamplingOptions { TopK = 2 }, [0, 1, 2, 3]),
            // Mass above token 2 is 0.8 >= 0.75, above token 1 it is 0.5 < 0.75.
            (fromProbabilities, new SamplingOptions { TopP = 0.75f }, [0, 1]),
            // 0.15 >= 0.25 * 0.5 but 0.05 < 0.125.
            (fromProbabilities, new SamplingOptions { MinP = 0.25f }, [0, 1, 2]),
        };
        foreach (var (row, options, expected) in cases)
        {
            // Every expected token has probability >= 0.15 (>= 0.375 with top-p): the simulator's 100
            // (40) draws miss one with probability < 1e-7.
            int rows = kind != DeviceKind.IlgpuCpu ? 2000 : options.TopP < 1 ? 40 : 100;
            float[] logits = [.. Enumerable.Range(0, rows).SelectMany(_ => row)];
            int[] tokens = Sample(device, logits, rows, row.Length, options, 12345, 0).Tokens;
            int[] emitted = [.. tokens.Distinct().Order()];
            Assert.That(emitted, Is.EqualTo(expected), $"{options}: emitted tokens");
            bool[] kept = SamplingReference.KeptSet(Array.ConvertAll(row, v => (double)v), options.TopK, options.TopP, options.MinP);
            Assert.That(Enumerable.Range(0, row.Length).Where(j => kept[j]), Is.EqualTo(expected), $"{options}: reference kept set");
        }
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void GreedyPicksTheArgmaxWithTheLowestIndexOnTies(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        const int vocab = 5;
        float[] logits = [1, 5, 3, 5, 5, /**/ -2, -2, -2, -2, -2, /**/ 0, 1, 2, 3, 4, /**/ 9, -1, 9, 0, 0];
        int[] expected = [1, 0, 4, 0];
        var greedy = new SamplingOptions { Temperature = 0, TopK = 1, TopP = 0.1f, MinP = 0.5f };
        for (ulong seed = 0; seed < 3; seed++)
        {
            var (tokens, logprobs) = Sample(device, logits, 4, vocab, greedy, seed, (int)seed);
            Assert.That(tokens, Is.EqualTo(expected), $"seed {seed}");
            double[] expectedLogprobs = [.. Enumerable.Range(0, 4).Select(r => SamplingReference.LogProb(logits.AsSpan(r * vocab, vocab), 1, expected[r]))];
            Compare.WorstRelativeError("greedy log-probs (temperature 1)", expectedLogprobs, logprobs);
        }
    }

    public static IEnumerable<TestCaseData> BadOptions() =>
        from kind in TestDevices.Kinds()
        from c in new (string Property, SamplingOptions Options)[]
        {
            ("Temperature", new SamplingOptions { Temperature = -0.5f }),
            ("Temperature", new SamplingOptions { Temperature = float.NaN }),
            ("Temperature", new SamplingOptions { Temperature = float.PositiveInfinity }),
            ("Temperature", new SamplingOptions { Temperature = 1e-45f }),
            ("TopK", new SamplingOptions { TopK = -1 }),
            ("TopP", new SamplingOptions { TopP = 0 }),
            ("TopP", new SamplingOptions { TopP = 1.5f }),
            ("TopP", new SamplingOptions { TopP = float.NaN }),
            ("MinP", new SamplingOptions { MinP = 1 }),
            ("MinP", new SamplingOptions { MinP = -0.1f }),
        }
        select new TestCaseData(kind, c.Property, c.Options);

    [TestCaseSource(nameof(BadOptions))]
    public void BadOptionsThrowNamingTheProperty(DeviceKind kind, string property, SamplingOptions options)
    {
        var device = TestDevices.Get(kind);
        using var logits = device.FromArray<float>([0, 1, 2, 3], 2, 2);
        using var tokens = Poison.Fill(device.Allocate<int>(2));
        using var logprobs = Poison.Fill(device.Allocate<float>(2));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            device.Operations.SampleTokens(logits, options, 1, 0, tokens, logprobs));
        Assert.That(error!.ParamName, Is.EqualTo(property));
        Assert.That(error.Message, Does.Contain(property).And.Contain("use"));
    }

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void BadShapesAndArgumentsThrowNamingTheArgument(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        var options = new SamplingOptions();
        using var logits = device.FromArray<float>([0, 1, 2, 3, 4, 5], 2, 3);
        using var flat = device.FromArray<float>([0, 1, 2], 3);
        using var tokens = device.Allocate<int>(2);
        using var logprobs = device.Allocate<float>(2);
        using var shortTokens = device.Allocate<int>(1);
        using var longLogprobs = device.Allocate<float>(3);
        using var other = new CpuDevice(1);
        using var foreignTokens = other.Allocate<int>(2);

        void Expect<TException>(string argument, TestDelegate call) where TException : ArgumentException
        {
            var error = Assert.Throws<TException>(call);
            Assert.That(error!.ParamName, Is.EqualTo(argument));
            Assert.That(error.Message, Does.Contain(argument));
        }

        Expect<ArgumentException>("logits", () => ops.SampleTokens(flat, options, 0, 0, tokens, logprobs));
        Expect<ArgumentException>("tokens", () => ops.SampleTokens(logits, options, 0, 0, shortTokens, logprobs));
        Expect<ArgumentException>("logprobs", () => ops.SampleTokens(logits, options, 0, 0, tokens, longLogprobs));
        Expect<ArgumentException>("tokens", () => ops.SampleTokens(logits, options, 0, 0, foreignTokens, logprobs));
        Expect<ArgumentOutOfRangeException>("step", () => ops.SampleTokens(logits, options, 0, -1, tokens, logprobs));
        Expect<ArgumentNullException>("options", () => ops.SampleTokens(logits, null!, 0, 0, tokens, logprobs));
        Expect<ArgumentNullException>("logits", () => ops.SampleTokens(null!, options, 0, 0, tokens, logprobs));
    }

    [TestCase(float.NaN, 1f)]
    [TestCase(float.PositiveInfinity, 1f)]
    [TestCase(float.NegativeInfinity, 0f)]
    [TestCase(3e38f, 0.1f)] // finite, but overflows once divided by the temperature
    public void TheCpuBackendRejectsNonFiniteLogitsNamingTheRow(float bad, float temperature)
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        float[] data = TestRandom.Normal(TestRandom.Create(), 4 * 6);
        data[2 * 6 + 3] = bad;
        using var logits = device.FromArray<float>(data, 4, 6);
        using var tokens = device.Allocate<int>(4);
        using var logprobs = device.Allocate<float>(4);
        var error = Assert.Throws<ArgumentException>(() => device.Operations.SampleTokens(
            logits, new SamplingOptions { Temperature = temperature }, 0, 0, tokens, logprobs));
        TestContext.Out.WriteLine(error!.Message);
        Assert.That(error.ParamName, Is.EqualTo("logits"));
        Assert.That(error.Message, Does.Contain("row 2").And.Contain("column 3"));
    }

    private static (int[] Tokens, float[] Logprobs) Sample(Device device, float[] logits, int rows, int vocab,
        SamplingOptions options, ulong seed, int step)
    {
        using var input = device.FromArray<float>(logits, rows, vocab); // (R, V)
        using var tokens = Poison.Fill(device.Allocate<int>(rows)); // (R)
        using var logprobs = Poison.Fill(device.Allocate<float>(rows)); // (R)
        device.Operations.SampleTokens(input, options, seed, step, tokens, logprobs);
        device.Synchronize();
        return (tokens.ToArray(), logprobs.ToArray());
    }
}

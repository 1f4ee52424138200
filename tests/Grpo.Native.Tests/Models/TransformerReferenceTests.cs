using Grpo.Native.Checkpoints;
using Grpo.Native.References;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Models;

/// <summary>
/// Sanity checks of the double-precision transformer reference itself, on tiny random models: the
/// properties any correct causal decoder has, which a wrong index or convention would break.
/// </summary>
public sealed class TransformerReferenceTests
{
    private static readonly string[] Families = ["gpt2", "llama", "qwen2", "qwen3"];

    private static ModelConfig Tiny(string modelType, int hidden = 8, int heads = 2, int kvHeads = 2, bool tied = true) => new()
    {
        ModelType = modelType,
        VocabSize = 11,
        HiddenSize = hidden,
        NumLayers = 2,
        NumHeads = heads,
        NumKeyValueHeads = modelType == "gpt2" ? heads : kvHeads,
        IntermediateSize = 12,
        MaxPositions = 16,
        NormEpsilon = 1e-5,
        RopeTheta = 10000,
        TieWordEmbeddings = modelType == "gpt2" || tied,
    };

    private static int[] Tokens(Random random, int count, int vocab)
    {
        var tokens = new int[count];
        for (int t = 0; t < count; t++) tokens[t] = random.Next(vocab);
        return tokens;
    }

    [TestCaseSource(nameof(Families))]
    public void ChangingALaterTokenLeavesEarlierRowsUnchanged(string family)
    {
        var random = TestRandom.Create();
        var config = Tiny(family, kvHeads: 1);
        var parameters = TransformerReference.RandomParameters(config, random);
        var tokens = Tokens(random, 7, config.VocabSize);
        var changed = (int[])tokens.Clone();
        changed[4] = (tokens[4] + 1 + random.Next(config.VocabSize - 1)) % config.VocabSize;

        var a = TransformerReference.Hidden(config, parameters, tokens);
        var b = TransformerReference.Hidden(config, parameters, changed);

        for (int t = 0; t < 4; t++) Assert.That(b[t], Is.EqualTo(a[t]), $"row {t} saw a later token");
        Assert.That(b[4], Is.Not.EqualTo(a[4]), "row 4 ignores its own token");
        Assert.That(b[6], Is.Not.EqualTo(a[6]), "row 6 ignores an earlier token");
    }

    [TestCase("gpt2")]
    [TestCase("llama")]
    [TestCase("qwen2")]
    [TestCase("qwen3")]
    public void TheFirstRowDependsOnlyOnTheFirstToken(string family)
    {
        // A one-token sequence and the first row of a longer one are the same computation: position 0
        // (RoPE is the identity there) attending only to itself.
        var random = TestRandom.Create();
        var config = Tiny(family);
        var parameters = TransformerReference.RandomParameters(config, random);
        var tokens = Tokens(random, 9, config.VocabSize);

        var alone = TransformerReference.Logits(config, parameters, tokens[..1]);
        var inSequence = TransformerReference.Logits(config, parameters, tokens);

        Assert.That(inSequence[0], Is.EqualTo(alone[0]).Within(1e-12));
        Assert.That(inSequence.SelectMany(row => row).All(double.IsFinite), Is.True);
    }

    [TestCase("llama", 8, 2, 1)]
    [TestCase("qwen2", 8, 2, 1)]
    [TestCase("llama", 16, 4, 2)]
    [TestCase("qwen2", 16, 4, 2)]
    [TestCase("qwen3", 16, 4, 2)]
    public void GroupedQueryAttentionEqualsRepeatedKeyValueHeads(string family, int hidden, int heads, int kvHeads)
    {
        // Hugging Face's repeat_kv: query head h reads kv head h / (H / KVH), i.e. kv head g serves
        // the consecutive query heads g·(H/KVH) .. (g+1)·(H/KVH) − 1.
        var random = TestRandom.Create();
        var grouped = Tiny(family, hidden, heads, kvHeads);
        var full = grouped with { NumKeyValueHeads = heads };
        var parameters = TransformerReference.RandomParameters(grouped, random);
        int d = grouped.HeadDim, c = grouped.HiddenSize, group = heads / kvHeads;

        var expanded = new Dictionary<string, double[]>(parameters);
        foreach (var (name, shape) in TransformerReference.Layout(full))
        {
            if (!name.Contains("k_proj", StringComparison.Ordinal) && !name.Contains("v_proj", StringComparison.Ordinal)) continue;
            int width = shape.Length == 2 ? c : 1; // a (KVH·D, C) weight or a (KVH·D) bias
            var source = parameters[name];
            var repeated = new double[heads * d * width];
            for (int h = 0; h < heads; h++)
                Array.Copy(source, (h / group) * d * width, repeated, h * d * width, d * width);
            expanded[name] = repeated;
        }

        var tokens = Tokens(random, 6, grouped.VocabSize);
        var a = TransformerReference.Hidden(grouped, parameters, tokens);
        var b = TransformerReference.Hidden(full, expanded, tokens);
        for (int t = 0; t < tokens.Length; t++) Assert.That(b[t], Is.EqualTo(a[t]).Within(1e-12), $"row {t}");
    }

    [Test]
    public void RopeRotatesHalvesByHuggingFaceFrequencies()
    {
        // D = 4, theta = 100: inverse frequencies 1 and 1/10. Rotate-half pairs (x_0, x_2) and (x_1, x_3),
        // not neighbours; position 0 is the identity.
        double[] x = [1, 2, 3, 4];
        Assert.That(TransformerReference.Rope(x, 1, 4, 0, 100), Is.EqualTo(x));
        var rotated = TransformerReference.Rope(x, 1, 4, 3, 100);
        double a0 = 3, a1 = (float)(3 * (float)(1.0 / 10.0));
        double[] expected =
        [
            1 * Math.Cos(a0) - 3 * Math.Sin(a0),
            2 * Math.Cos(a1) - 4 * Math.Sin(a1),
            3 * Math.Cos(a0) + 1 * Math.Sin(a0),
            4 * Math.Cos(a1) + 2 * Math.Sin(a1),
        ];
        Assert.That(rotated, Is.EqualTo(expected).Within(1e-15));
    }

    [Test]
    public void RopeScoresDependOnlyOnRelativePosition()
    {
        var random = TestRandom.Create();
        int heads = 2, d = 8;
        var q = TestRandom.ToDouble(TestRandom.Normal(random, heads * d));
        var k = TestRandom.ToDouble(TestRandom.Normal(random, heads * d));
        double Score(int qPosition, int kPosition, int head)
        {
            var rq = TransformerReference.Rope(q, heads, d, qPosition, 10000);
            var rk = TransformerReference.Rope(k, heads, d, kPosition, 10000);
            double dot = 0;
            for (int e = 0; e < d; e++) dot += rq[head * d + e] * rk[head * d + e];
            return dot;
        }
        for (int head = 0; head < heads; head++)
        {
            double reference = Score(5, 2, head);
            // The angles are fp32 (as in Hugging Face), so a shift agrees to ~1e-6, not exactly.
            Assert.That(Score(12, 9, head), Is.EqualTo(reference).Within(1e-5));
            Assert.That(Score(3, 0, head), Is.EqualTo(reference).Within(1e-5));
            // Other distances give other scores (the largest of four differences is far from zero).
            double largest = new[] { 0, 1, 3, 4 }.Max(j => Math.Abs(Score(5, j, head) - reference));
            Assert.That(largest, Is.GreaterThan(1e-3));
        }
    }

    [TestCase("llama")]
    [TestCase("qwen2")]
    [TestCase("qwen3")]
    public void AnUntiedHeadEqualToTheEmbeddingMatchesTheTiedModel(string family)
    {
        var random = TestRandom.Create();
        var tied = Tiny(family, kvHeads: 1);
        var untied = tied with { TieWordEmbeddings = false };
        var parameters = TransformerReference.RandomParameters(tied, random);
        Assert.That(parameters.ContainsKey("lm_head.weight"), Is.False);
        var withHead = new Dictionary<string, double[]>(parameters)
        {
            ["lm_head.weight"] = (double[])parameters["model.embed_tokens.weight"].Clone(),
        };
        var tokens = Tokens(random, 5, tied.VocabSize);

        var a = TransformerReference.Logits(tied, parameters, tokens);
        var b = TransformerReference.Logits(untied, withHead, tokens);
        for (int t = 0; t < tokens.Length; t++) Assert.That(b[t], Is.EqualTo(a[t]), $"row {t}");

        // And an untied head is really read: a different lm_head changes the logits.
        withHead["lm_head.weight"] = TransformerReference.RandomParameters(untied, random)["lm_head.weight"];
        Assert.That(TransformerReference.Logits(untied, withHead, tokens)[0], Is.Not.EqualTo(a[0]));
    }

    [TestCaseSource(nameof(Families))]
    public void LogProbsAreADistributionOverTheVocabulary(string family)
    {
        var random = TestRandom.Create();
        var config = Tiny(family, kvHeads: 1);
        var parameters = TransformerReference.RandomParameters(config, random);
        var tokens = Tokens(random, 6, config.VocabSize);
        const double temperature = 0.7;

        var sums = new double[tokens.Length];
        for (int v = 0; v < config.VocabSize; v++)
        {
            var logp = TransformerReference.TokenLogProbs(config, parameters, tokens, Enumerable.Repeat(v, tokens.Length).ToArray(), temperature);
            for (int t = 0; t < tokens.Length; t++)
            {
                Assert.That(logp[t], Is.LessThanOrEqualTo(0.0));
                sums[t] += Math.Exp(logp[t]);
            }
        }
        Assert.That(sums, Is.All.EqualTo(1.0).Within(1e-12));

        // The next-token variant is the same gather with targets shifted by one.
        var next = TransformerReference.NextTokenLogProbs(config, parameters, tokens, temperature);
        var shifted = TransformerReference.TokenLogProbs(config, parameters, tokens, [.. tokens[1..], 0], temperature);
        Assert.That(next, Is.EqualTo(shifted[..^1]));
    }

    [TestCaseSource(nameof(Families))]
    public void RandomParametersFollowTheLayout(string family)
    {
        var random = TestRandom.Create();
        var config = Tiny(family, kvHeads: 1, tied: false);
        var layout = TransformerReference.Layout(config);
        var parameters = TransformerReference.RandomParameters(config, random);
        Assert.That(parameters.Keys, Is.EquivalentTo(layout.Select(entry => entry.Name)));
        foreach (var (name, shape) in layout)
            Assert.That(parameters[name], Has.Length.EqualTo(shape.Aggregate(1, (a, b) => a * b)), name);
        Assert.That(layout.Any(entry => entry.Name.EndsWith(".bias", StringComparison.Ordinal)), Is.EqualTo(family is "gpt2" or "qwen2"));
        Assert.That(layout.Any(entry => entry.Name.EndsWith("q_norm.weight", StringComparison.Ordinal)), Is.EqualTo(family == "qwen3"));
        Assert.That(layout.Any(entry => entry.Name == "lm_head.weight"), Is.EqualTo(family != "gpt2"));
    }

    [Test]
    public void AnUnknownModelTypeIsRefused()
    {
        var config = Tiny("llama") with { ModelType = "mistral" };
        var e = Assert.Throws<NotSupportedException>(() => TransformerReference.Layout(config))!;
        Assert.That(e.Message, Does.Contain("mistral"));
        Assert.Throws<NotSupportedException>(() => TransformerReference.Hidden(config, new Dictionary<string, double[]>(), [0]));
    }

    [Test]
    public void AMissingParameterIsNamed()
    {
        var random = TestRandom.Create();
        var config = Tiny("qwen2");
        var parameters = TransformerReference.RandomParameters(config, random);
        parameters.Remove("model.layers.1.self_attn.k_proj.bias");
        var e = Assert.Throws<KeyNotFoundException>(() => TransformerReference.Hidden(config, parameters, [1, 2]))!;
        Assert.That(e.Message, Does.Contain("model.layers.1.self_attn.k_proj.bias"));
    }
}

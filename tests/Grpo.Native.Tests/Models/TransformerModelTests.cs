using Grpo.Native.Cpu;
using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.References;
using Grpo.Native.Tensors;
using Grpo.Native.Tests.Support;
using NUnit.Framework;

namespace Grpo.Native.Tests.Models;

/// <summary>
/// The whole hand-built transformer of each family against the double-precision reference: hidden
/// states, log-probs, and every parameter's gradient against central finite differences of the
/// reference's loss. Weights go through a Hugging Face folder on disk, so loading (and GPT-2's
/// Conv1D transposes) is part of every comparison.
/// </summary>
public sealed class TransformerModelTests
{
    // The hidden states are a final norm's output over a residual stream that two blocks built from sums of
    // terms of both signs, so an element can end near zero while keeping the absolute rounding of the row's
    // O(1) terms: no bound relative to the element itself holds for every draw (the element-wise measure
    // reached 3.5e-3 in 300 seeds). They are judged per row instead (Compare.WorstRowRelativeError):
    // fp32 rounds each product of K ≤ 40 terms (C ≤ 24, MLP ≤ 40, T ≤ 9) within γ_K ≈ K·u ≈ 2.4e-6 of the
    // sum of its terms' magnitudes (u = 2⁻²⁴); the longest chain has ≤ 23 rounded stages (per block: norm,
    // q/k/v, Qwen3's per-head q/k norm, scores, softmax, P·V, o_proj, norm, gate/up, SwiGLU, down_proj; then the
    // final norm), whose first-order errors add to ≤ 5.5e-5 of those magnitudes, and with weights of scale 0.5 the
    // terms exceed the row's largest value by at most ~5: ≤ 2.8e-4 of the row's largest value. Measured over 300 seeds (managed
    // CPU) and 40 (simulator): ≤ 1.3e-5.
    private const double HiddenTolerance = 3e-4;
    private const double LogProbTolerance = 1e-4;

    // Gradients are checked per tensor along a random direction, normwise (see the test). Each element of the fp32
    // gradient is a sum of products through the backward chain, rounded within γ_K ≈ K·u of the sum of its terms'
    // magnitudes (K ≤ 40 here, u = 2⁻²⁴); along ≤ 23 rounded stages (the gather, then per block: the MLP, the norm,
    // attention's backward, Qwen3's q/k norm, the projections) the first-order errors add to ≤ 23·γ_40 ≈ 5.5e-5 of those magnitudes, and
    // the magnitudes exceed the gradient's norm by the cancellation of the gather's and attention's sums (dz and dS
    // sum to zero), at most ~10 for these weights (scale 0.5): a normwise relative error ≤ 5.5e-4. Central differences
    // along v in double add ~1e-9. (The element-wise measure used before reached 3.6e-3 in 20 suite runs: a
    // near-zero element keeps the absolute rounding of its cancelling terms.)
    internal const double GradientTolerance = 1e-3;

    private static readonly int[] Lengths = [5, 1, 9];

    public static IEnumerable<TestCaseData> Cases() =>
        from kind in TestDevices.Kinds()
        from name in TinyModels.NamesWithRopeScaling
        select new TestCaseData(kind, name);

    private sealed class Fixture : IDisposable
    {
        public Fixture(Device device, string name, Random random, int[] lengths)
        {
            Config = TinyModels.Config(name);
            Parameters = TinyModels.Parameters(Config, random);
            Folder = TinyModels.WriteFolder(Config, Parameters);
            Model = TransformerModel.Load(device, Folder);
            Sequences = TinyModels.Sequences(random, Config.VocabSize, lengths);
            Batch = TokenBatch.Create(device, Sequences, Config.VocabSize, Config.MaxPositions);
        }

        public readonly Grpo.Native.Checkpoints.ModelConfig Config;
        public readonly Dictionary<string, double[]> Parameters;
        public readonly string Folder;
        public readonly TransformerModel Model;
        public readonly int[][] Sequences;
        public readonly TokenBatch Batch;

        public void Dispose()
        {
            Batch.Dispose();
            Model.Dispose();
            Directory.Delete(Folder, recursive: true);
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void HiddenStatesMatchTheReference(DeviceKind kind, string name)
    {
        var device = TestDevices.Get(kind);
        using var f = new Fixture(device, name, TestRandom.Create(), Lengths);
        using var activations = f.Model.CreateActivations(f.Batch.TokenCount);
        Poison.Fill(activations.Hidden);
        float[] hidden = f.Model.Forward(f.Batch, activations).ToArray();
        var expected = f.Sequences.SelectMany(s => TransformerReference.Hidden(f.Config, f.Parameters, s)).SelectMany(row => row).ToArray();
        Compare.WorstRowRelativeError($"{name} hidden (M={f.Batch.TokenCount}, C={f.Config.HiddenSize})", expected, hidden,
            f.Config.HiddenSize, HiddenTolerance);
    }

    /// <summary>
    /// The fused Q/K/V projection (one GEMM and a column split, where the weights are adjacent) against three GEMMs. Each
    /// value is the same K-term dot product either way, so the hidden states differ by at most the two runs' own rounding:
    /// twice <see cref="HiddenTolerance"/>'s bound; the layout test below checks which families fuse.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void TheFusedQkvProjectionGivesTheHiddenStatesOfThreeProjections(DeviceKind kind, string name)
    {
        var device = TestDevices.Get(kind);
        using var f = new Fixture(device, name, TestRandom.Create(), Lengths);
        using var activations = f.Model.CreateActivations(f.Batch.TokenCount);
        float[] fused = f.Model.Forward(f.Batch, activations).ToArray();
        f.Model.FusesQkv = false;
        Poison.Fill(activations.Hidden);
        float[] separate = f.Model.Forward(f.Batch, activations).ToArray();
        Compare.WorstRowRelativeError($"{name} hidden, fused against three projections", Array.ConvertAll(separate, v => (double)v), fused,
            f.Config.HiddenSize, 2 * HiddenTolerance);
    }

    /// <summary>
    /// The fused projection's backward (dq, dk and dv joined, one GEMM for d n1 over all three, one for the adjacent weight
    /// gradients, one bias sum) against three backward GEMMs. The weight gradients are the same dot products over the
    /// tokens; d n1 sums the three products in one K = H·D + 2·KVH·D sum instead of three accumulated ones, a different
    /// rounding of the same terms. Both gradients are within <see cref="GradientTolerance"/> of the exact one normwise (derived
    /// above, per tensor, hence for the whole buffer), so they differ by at most twice that.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void TheFusedQkvBackwardGivesTheGradientsOfThreeProjections(DeviceKind kind, string name)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        using var f = new Fixture(device, name, random, [4, 6]);
        int m = f.Batch.TokenCount;
        int[] targets = Enumerable.Range(0, m).Select(_ => random.Next(f.Config.VocabSize)).ToArray();
        float[] weights = TestRandom.Normal(random, m);
        float[] fused = ModelGradient(device, f.Model, f.Batch, targets, weights, 0.8f, ActivationMode.Training);
        f.Model.FusesQkv = false;
        float[] separate = ModelGradient(device, f.Model, f.Batch, targets, weights, 0.8f, ActivationMode.Training);
        Compare.NormwiseRelativeError($"{name} gradient, fused against three projections", TestRandom.ToDouble(separate), fused,
            2 * GradientTolerance);
        Assert.That(fused, Is.Not.EqualTo(new float[fused.Length]), "a gradient to compare");
    }

    // (M, C, I): a tiny model's MLP (C = 24, I = 40) over a packed batch, one decode row, and sizes past several 16×16 tiles.
    private static readonly (int M, int C, int I)[] GateUpShapes = [(15, 24, 40), (1, 32, 64), (37, 70, 53)];

    public static IEnumerable<TestCaseData> GateUpCases() => TestDevices.PlusCudaShapes(
        from kind in TestDevices.Kinds()
        from s in GateUpShapes
        select new TestCaseData(kind, s.M, s.C, s.I).SetArgDisplayNames(kind.ToString(), $"M={s.M}", $"C={s.C}", $"I={s.I}"), count: 3);

    /// <summary>
    /// The SwiGLU families' fused gate|up projection, from the ops directly: one GEMM over the adjacent (2I, C) gate_proj and
    /// up_proj rows against two GEMMs over each half, as the model ran them before. Forward: each gate or up value is the same
    /// C-term dot product either way, so the bits must match. Backward (SwiGLU's (M, 2I) gradient, then one LinearBackward
    /// against two accumulating ones, gate first): each weight gradient is the same M-term sum over the tokens, so the bits
    /// must match too; d n2 = dGateUp · W sums 2I products per element, in one accumulation fused and as two accumulated
    /// I-term sums separately, a different rounding of the same terms. Either order of summing n = 2I fp32 products is within
    /// γ_n = n·u / (1 − n·u) (u = 2⁻²⁴) of Σ_n |dGateUp[r, n]·W[n, k]| of the exact sum (the standard bound, FMA or not; the
    /// two-sum form rounds its two partial sums and their sum, ≤ γ_(I+1) ≤ γ_(2I)), so the two differ element-wise by at most
    /// 2γ_(2I) times that sum of magnitudes, and normwise by at most 2γ_(2I)·‖ |dGateUp|·|W| ‖₂. The test asserts that bound and
    /// prints the measured difference as a fraction of it.
    /// </summary>
    [TestCaseSource(nameof(GateUpCases))]
    public void TheFusedGateUpProjectionGivesTheValuesAndGradientsOfTwoProjections(DeviceKind kind, int m, int c, int i)
    {
        var device = TestDevices.Get(kind);
        var ops = device.Operations;
        var random = TestRandom.Create();
        float[] x = TestRandom.Normal(random, m * c), w = TestRandom.Normal(random, 2 * i * c, 0.5), dAct = TestRandom.Normal(random, m * i);
        using var n2 = device.FromArray<float>(x, m, c);              // (M, C)
        using var weight = device.FromArray<float>(w, 2 * i, c);      // (2I, C): gate_proj's rows, then up_proj's
        var gateWeight = weight.Slice(0, i, c);                       // (I, C)
        var upWeight = weight.Slice((long)i * c, i, c);               // (I, C)

        // Forward: one GEMM against two.
        using var gateUp = Poison.Fill(device.Allocate<float>(m, 2 * i)); // (M, 2I)
        using var gate = Poison.Fill(device.Allocate<float>(m, i));       // (M, I)
        using var up = Poison.Fill(device.Allocate<float>(m, i));         // (M, I)
        ops.LinearForward(gateUp, n2, weight, null);
        ops.LinearForward(gate, n2, gateWeight, null);
        ops.LinearForward(up, n2, upWeight, null);
        float[] fused = gateUp.ToArray(), g = gate.ToArray(), u = up.ToArray();
        float[] fusedGate = new float[m * i], fusedUp = new float[m * i];
        for (int r = 0; r < m; r++)
        {
            fused.AsSpan(2 * r * i, i).CopyTo(fusedGate.AsSpan(r * i));
            fused.AsSpan(2 * r * i + i, i).CopyTo(fusedUp.AsSpan(r * i));
        }
        Assert.That(fusedGate, Is.EqualTo(g), "gate values: one GEMM against gate_proj's own");
        Assert.That(fusedUp, Is.EqualTo(u), "up values: one GEMM against up_proj's own");

        // Backward: SwiGLU's gradient of the gate|up rows, then one LinearBackward against two.
        using var dActivation = device.FromArray<float>(dAct, m, i);  // (M, I)
        using var dGateUp = device.Allocate<float>(m, 2 * i);        // (M, 2I)
        dGateUp.Fill(0f);
        ops.SwiGluBackward(dGateUp, dActivation, gateUp);
        float[] dgu = dGateUp.ToArray();
        float[] dg = new float[m * i], du = new float[m * i];
        for (int r = 0; r < m; r++)
        {
            dgu.AsSpan(2 * r * i, i).CopyTo(dg.AsSpan(r * i));
            dgu.AsSpan(2 * r * i + i, i).CopyTo(du.AsSpan(r * i));
        }
        using var dGate = device.FromArray<float>(dg, m, i);
        using var dUp = device.FromArray<float>(du, m, i);
        using var dNormFused = device.Allocate<float>(m, c);
        using var dNormSeparate = device.Allocate<float>(m, c);
        using var dWeightFused = device.Allocate<float>(2 * i, c);
        using var dWeightSeparate = device.Allocate<float>(2 * i, c);
        foreach (var t in new[] { dNormFused, dNormSeparate, dWeightFused, dWeightSeparate }) t.Fill(0f);
        ops.LinearBackward(dNormFused, dWeightFused, null, dGateUp, n2, weight);
        ops.LinearBackward(dNormSeparate, dWeightSeparate.Slice(0, i, c), null, dGate, n2, gateWeight);
        ops.LinearBackward(dNormSeparate, dWeightSeparate.Slice((long)i * c, i, c), null, dUp, n2, upWeight);
        Assert.That(dWeightFused.ToArray(), Is.EqualTo(dWeightSeparate.ToArray()), "the gate_proj and up_proj weight gradients");

        float[] fusedDNorm = dNormFused.ToArray();
        double[] separateDNorm = TestRandom.ToDouble(dNormSeparate.ToArray());
        double gamma = 2 * i * Math.Pow(2, -24) / (1 - 2 * i * Math.Pow(2, -24)); // γ_(2I)
        double magnitudes = 0, separateNorm = 0, difference = 0;
        for (int r = 0; r < m; r++)
            for (int k = 0; k < c; k++)
            {
                double sum = 0; // Σ_n |dGateUp[r, n]·W[n, k]|
                for (int n = 0; n < 2 * i; n++) sum += Math.Abs((double)dgu[r * 2 * i + n] * w[n * c + k]);
                magnitudes += sum * sum;
                separateNorm += separateDNorm[r * c + k] * separateDNorm[r * c + k];
                double d = fusedDNorm[r * c + k] - separateDNorm[r * c + k];
                difference += d * d;
            }
        double bound = 2 * gamma * Math.Sqrt(magnitudes / separateNorm); // normwise, relative to the two-GEMM d n2
        double measured = Compare.NormwiseRelativeError($"d n2, one GEMM (K = 2I = {2 * i}) against two accumulated (K = {i} each)",
            separateDNorm, fusedDNorm, bound);
        TestContext.Out.WriteLine($"d n2: {measured:E2} normwise is {measured / bound:F3} of the bound 2γ_2I‖|dGateUp|·|W|‖/‖d n2‖ = {bound:E2}; " +
            $"{fusedDNorm.Zip(separateDNorm).Count(p => p.First != p.Second)} of {fusedDNorm.Length} elements differ in any bit");
        Assert.That(fusedDNorm, Is.Not.EqualTo(new float[fusedDNorm.Length]), "a gradient to compare");
    }

    [TestCaseSource(typeof(TinyModels), nameof(TinyModels.Names))]
    public void QkvAndGateUpAreOneMatrixEachInEveryFamily(string name)
    {
        var config = TinyModels.Config(name);
        using var device = new Grpo.Native.Cpu.CpuDevice();
        using var model = TransformerModel.CreateRandom(device, config, seed: 7);
        var weights = TransformerWeights.From(model.Parameters, config);
        for (int l = 0; l < weights.Blocks.Length; l++)
        {
            var block = weights.Blocks[l];
            float[] rows = [.. block.QueryWeight.ToArray(), .. block.KeyWeight.ToArray(), .. block.ValueWeight.ToArray()];
            Assert.That(block.QkvWeight.ToArray(), Is.EqualTo(rows), "the fused matrix is q's, k's and v's rows in order");
            Assert.That(block.QkvBias is not null, Is.EqualTo(config.HasQkvBias), "a fused bias exactly where the family has q/k/v biases");
            bool swiGlu = config.ModelType != "gpt2";
            Assert.That(block.GateUpWeight is not null, Is.EqualTo(swiGlu), "a fused gate|up matrix exactly where the family has a gate");
            if (swiGlu)
            {
                string mlp = $"model.layers.{l}.mlp.";
                float[] gateThenUp = [.. model.Parameters[mlp + "gate_proj.weight"].ToArray(), .. model.Parameters[mlp + "up_proj.weight"].ToArray()];
                Assert.That(block.GateUpWeight!.ToArray(), Is.EqualTo(gateThenUp), "the fused gate|up matrix is gate_proj's rows, then up_proj's");
            }
            if (block.QkvBias is not null)
                Assert.That(block.QkvBias.ToArray(),
                    Is.EqualTo((float[])[.. block.QueryBias!.ToArray(), .. block.KeyBias!.ToArray(), .. block.ValueBias!.ToArray()]));
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void NextTokenLogProbsMatchTheReference(DeviceKind kind, string name)
    {
        var device = TestDevices.Get(kind);
        using var f = new Fixture(device, name, TestRandom.Create(), Lengths);
        using var activations = f.Model.CreateActivations(f.Batch.TokenCount);
        var hidden = f.Model.Forward(f.Batch, activations);
        int m = f.Batch.TokenCount;
        var targets = NextTokens(f.Batch);
        using var targetTensor = device.FromArray<int>(targets, m);
        using var logprobs = Poison.Fill(device.Allocate<float>(m));
        using var lse = device.Allocate<float>(m);
        const float temperature = 0.7f;
        device.Operations.LogSoftmaxGatherForward(hidden, f.Model.LmHead, targetTensor, temperature, logprobs, lse, null);
        var expected = f.Sequences.SelectMany(s => TransformerReference.TokenLogProbs(f.Config, f.Parameters, s,
            s.Skip(1).Append(0).ToArray(), temperature)).ToArray();
        Compare.WorstRelativeError($"{name} log-probs", expected, logprobs.ToArray(), LogProbTolerance);
    }

    // Llama 3.x RoPE scaling far along the sequence: positions up to 31 (of the "llama3" tiny model's 32), where
    // the divided frequency turns a quarter as far as unscaled and the smoothed ones differ by radians.
    // Hidden states, HiddenTolerance's bound recounted for this model: sums of K ≤ 32 terms (T ≤ 32, C = 24,
    // MLP = 32) round within γ_K ≈ 32u ≈ 1.9e-6 of their terms' magnitudes (u = 2⁻²⁴); per block 11 rounded
    // stages (norm, q/k/v, RoPE: cos and sin rounded to fp32 then two products and a sum, scores, softmax, P·V,
    // o_proj, norm, gate/up, SwiGLU, down_proj), two blocks and the final norm: 23 stages, ≤ 4.4e-5 of those
    // magnitudes, which exceed the row's largest value at most ~5 times: ≤ 2.2e-4 of it, within HiddenTolerance.
    // The angles themselves are no source of error: backend and reference round the same fp32 angle.
    //
    // Log-probs: log p_y = z_y − LSE(z) with z_j = Σ_k h_k W_jk / τ. The hidden row's error, |δh_k| ≤ ε_h·max|h|
    // (ε_h = HiddenTolerance, the bound just checked), moves z_j by ≤ ε_h·max|h|·Σ_k |W_jk| / τ and log p by at
    // most |δz_y| + max_j |δz_j|; the logit sums (C terms) round within C·u of max|h|·Σ_k |W_jk| / τ, and the
    // log-sum-exp within (V + 2)·u absolute (V terms of the sum, the exp and the log) plus u of |z|. So every
    // log-prob is within ε_h + (C + V + 4)·u of scale = max|h|·(Σ_k |W_yk| + max_j Σ_k |W_jk|) / τ + 1.
    private static readonly int[] FarLengths = [32, 17];

    [TestCaseSource(typeof(TestDevices), nameof(TestDevices.Kinds))]
    public void Llama3RopeScalingMatchesTheReferenceFarAlongTheSequence(DeviceKind kind)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        using var f = new Fixture(device, "llama3", random, FarLengths);
        var config = f.Config;
        var regimes = TransformerReference.RopeFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling).Select(r => r.Regime).ToArray();
        TestContext.Out.WriteLine($"D = {config.HeadDim}: regimes {string.Join(", ", regimes)}");
        Assert.That(regimes.Distinct().Order(), Is.EqualTo(Enum.GetValues<TransformerReference.RopeRegime>()),
            "the config must put frequencies in all three regimes: unchanged, smoothed and divided");

        int m = f.Batch.TokenCount, c = config.HiddenSize, v = config.VocabSize;
        using var activations = f.Model.CreateActivations(m);
        Poison.Fill(activations.Hidden);
        var hidden = f.Model.Forward(f.Batch, activations);
        var expectedRows = f.Sequences.SelectMany(s => TransformerReference.Hidden(config, f.Parameters, s)).ToArray();
        var expected = expectedRows.SelectMany(row => row).ToArray();
        Compare.WorstRowRelativeError($"llama3 hidden (M={m}, C={c}, positions to {FarLengths.Max() - 1})", expected, hidden.ToArray(), c,
            HiddenTolerance);

        // The comparison can tell: without the scaling the reference is far off.
        var unscaled = f.Sequences.SelectMany(s => TransformerReference.Hidden(config with { RopeScaling = null }, f.Parameters, s))
            .SelectMany(row => row).Select(x => (float)x).ToArray();
        var (apart, _) = ErrorMeasure.WorstRowRelativeError(expected, unscaled, c);
        TestContext.Out.WriteLine($"unscaled reference against scaled: worst per-row error {apart:E2}");
        Assert.That(apart, Is.GreaterThan(100 * HiddenTolerance), "RoPE scaling should change the hidden states far beyond the tolerance");

        var targets = NextTokens(f.Batch);
        using var targetTensor = device.FromArray<int>(targets, m);
        using var logprobs = Poison.Fill(device.Allocate<float>(m));
        using var lse = device.Allocate<float>(m);
        const float temperature = 0.7f;
        device.Operations.LogSoftmaxGatherForward(hidden, f.Model.LmHead, targetTensor, temperature, logprobs, lse, null);
        var expectedLogProbs = f.Sequences.SelectMany(s => TransformerReference.TokenLogProbs(config, f.Parameters, s,
            s.Skip(1).Append(0).ToArray(), temperature)).ToArray();
        double[] head = f.Parameters["lm_head.weight"]; // (V, C): untied
        double RowSum(int j) => Enumerable.Range(0, c).Sum(k => Math.Abs(head[j * c + k]));
        double largestRowSum = Enumerable.Range(0, v).Max(RowSum);
        var scale = new double[m];
        for (int r = 0; r < m; r++)
            scale[r] = expectedRows[r].Max(Math.Abs) * (RowSum(targets[r]) + largestRowSum) / temperature + 1;
        double logProbBound = HiddenTolerance + (c + v + 4) * Math.Pow(2, -24);
        Compare.WorstScaledError("llama3 log-probs", expectedLogProbs, scale, logprobs.ToArray(), logProbBound);

        // And here too the scaling matters beyond the bound.
        var unscaledLogProbs = f.Sequences.SelectMany(s => TransformerReference.TokenLogProbs(config with { RopeScaling = null }, f.Parameters, s,
            s.Skip(1).Append(0).ToArray(), temperature)).ToArray();
        double logProbsApart = Enumerable.Range(0, m).Max(r => Math.Abs(unscaledLogProbs[r] - expectedLogProbs[r]) / scale[r]);
        TestContext.Out.WriteLine($"unscaled reference log-probs against scaled: worst error / scale {logProbsApart:E2}");
        Assert.That(logProbsApart, Is.GreaterThan(logProbBound), "RoPE scaling should change some log-prob beyond the bound");
    }

    /// <summary>Row m's target: the next token of its sequence (0 for a sequence's last row).</summary>
    private static int[] NextTokens(TokenBatch batch)
    {
        var targets = new int[batch.TokenCount];
        for (int b = 0; b < batch.SequenceCount; b++)
            for (int row = batch.HostStarts[b]; row < batch.HostStarts[b + 1] - 1; row++)
                targets[row] = batch.HostIds[row + 1];
        return targets;
    }

    /// <summary>
    /// loss = Σ_m w_m · log p(target_m) at temperature 0.8, the GRPO-shaped scalar (a weighted sum of
    /// per-token log-probs); its gradient with respect to every tensor against central differences.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void GradientsMatchFiniteDifferencesOfTheReference(DeviceKind kind, string name)
    {
        var device = TestDevices.Get(kind);
        var random = TestRandom.Create();
        using var f = new Fixture(device, name, random, [4, 6]);
        int m = f.Batch.TokenCount;
        const float temperature = 0.8f;
        int[] targets = Enumerable.Range(0, m).Select(_ => random.Next(f.Config.VocabSize)).ToArray();
        float[] weights = TestRandom.Normal(random, m);

        float[] gradient = ModelGradient(device, f.Model, f.Batch, targets, weights, temperature, ActivationMode.Training);
        var actualByName = f.Model.ToHuggingFace(gradient).ToDictionary(t => t.name, t => t.data.ToArray());

        // L = Σ_t w_t·logp_t in the batch's row order, the weights exact (no fp32 objective in between).
        double[] LogProbs(Dictionary<string, double[]> p)
        {
            var all = new double[m];
            int row = 0;
            foreach (var s in f.Sequences)
            {
                TransformerReference.TokenLogProbs(f.Config, p, s, targets.AsSpan(row, s.Length).ToArray(), temperature).CopyTo(all, row);
                row += s.Length;
            }
            return all;
        }
        DirectionalGradientCheck.Run($"{name} gradient", f.Config, f.Parameters, actualByName, LogProbs, TestRandom.ToDouble(weights),
            GradientTolerance, weightErrors: null, random);
    }

    /// <summary>Forward, gather, weighted log-prob loss, backward: the whole gradient buffer.</summary>
    private static float[] ModelGradient(Device device, TransformerModel model, TokenBatch batch, int[] targets, float[] weights,
        float temperature, ActivationMode mode)
    {
        int m = batch.TokenCount, c = model.Config.HiddenSize;
        using var activations = model.CreateActivations(m, mode);
        using var targetTensor = device.FromArray<int>(targets, m);
        using var dLogprobs = device.FromArray<float>(weights, m);
        using var logprobs = device.Allocate<float>(m);
        using var lse = device.Allocate<float>(m);
        using var dHidden = device.Allocate<float>(m, c);
        dHidden.Fill(0f);
        model.ZeroGradients();
        var hidden = model.Forward(batch, activations);
        device.Operations.LogSoftmaxGatherForward(hidden, model.LmHead, targetTensor, temperature, logprobs, lse, null);
        device.Operations.LogSoftmaxGatherBackward(hidden, model.LmHead, targetTensor, temperature, lse, dLogprobs, dHidden, model.LmHeadGradient);
        model.Backward(batch, activations, dHidden);
        return model.Gradients.Buffer.ToArray();
    }

    [TestCase("gpt2")]
    [TestCase("qwen2")]
    [TestCase("qwen3-bias")]
    public void GradientsDoNotDependOnTheThreadCountOrOnRecomputation(string name)
    {
        var random = TestRandom.Create();
        var config = TinyModels.Config(name);
        var parameters = TinyModels.Parameters(config, random);
        string folder = TinyModels.WriteFolder(config, parameters);
        try
        {
            var sequences = TinyModels.Sequences(random, config.VocabSize, 7, 3, 11);
            int m = sequences.Sum(s => s.Length);
            int[] targets = Enumerable.Range(0, m).Select(_ => random.Next(config.VocabSize)).ToArray();
            float[] weights = TestRandom.Normal(random, m);
            float[] Run(int threads, ActivationMode mode)
            {
                using var device = new CpuDevice(threads);
                using var model = TransformerModel.Load(device, folder);
                using var batch = TokenBatch.Create(device, sequences, config.VocabSize, config.MaxPositions);
                return ModelGradient(device, model, batch, targets, weights, 1f, mode);
            }
            float[] one = Run(1, ActivationMode.Training);
            Assert.That(Run(4, ActivationMode.Training), Is.EqualTo(one), "1 thread vs 4 threads");
            Assert.That(Run(2, ActivationMode.TrainingWithRecompute), Is.EqualTo(one), "recomputed activations");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void RecomputationPlansLessMemory()
    {
        using var model = TransformerModel.CreateRandom(TestDevices.Get(DeviceKind.Cpu), TinyModels.Config("llama", layers: 3), seed: 1);
        using var full = model.CreateActivations(64);
        using var lean = model.CreateActivations(64, ActivationMode.TrainingWithRecompute);
        using var inference = model.CreateActivations(64, ActivationMode.Inference);
        TestContext.Out.WriteLine($"training {full.Memory}; recompute {lean.Memory}; inference {inference.Memory}");
        Assert.That(full.Memory.SavedBytes - lean.Memory.SavedBytes, Is.EqualTo(full.Memory.RecomputeSavesBytes));
        Assert.That(inference.Memory.TotalBytes, Is.LessThan(lean.Memory.TotalBytes));
    }

    [Test]
    public void BadBatchesAndActivationsAreRefusedWithTheReason()
    {
        var device = TestDevices.Get(DeviceKind.Cpu);
        var config = TinyModels.Config("gpt2");
        var outOfVocabulary = Assert.Throws<ArgumentOutOfRangeException>(() =>
            TokenBatch.Create(device, [[1, 2], [3, config.VocabSize]], config.VocabSize, config.MaxPositions));
        Assert.That(outOfVocabulary!.Message, Does.Contain("'sequences'[1][1]").And.Contain("vocabulary"));
        var tooLong = Assert.Throws<ArgumentException>(() =>
            TokenBatch.Create(device, [new int[config.MaxPositions + 1]], config.VocabSize, config.MaxPositions));
        Assert.That(tooLong!.Message, Does.Contain("context"));
        Assert.Throws<ArgumentException>(() => TokenBatch.Create(device, [Array.Empty<int>()], config.VocabSize, config.MaxPositions));

        using var model = TransformerModel.CreateRandom(device, config, seed: 3);
        using var batch = TokenBatch.Create(device, [[1, 2, 3, 4]], config.VocabSize, config.MaxPositions);
        using var small = model.CreateActivations(3);
        var tooSmall = Assert.Throws<ArgumentException>(() => model.Forward(batch, small));
        Assert.That(tooSmall!.Message, Does.Contain("planned for 3").And.Contain("micro-batches"));
        using var inference = model.CreateActivations(4, ActivationMode.Inference);
        var hidden = model.Forward(batch, inference);
        var noBackward = Assert.Throws<ArgumentException>(() => model.Backward(batch, inference, hidden));
        Assert.That(noBackward!.Message, Does.Contain("inference"));
    }
}

using Grpo.Native.Checkpoints;

namespace Grpo.Native.References;

/// <summary>
/// The forward pass of a whole decoder-only transformer (Hugging Face gpt2, llama, qwen2, qwen3), in double,
/// one token and one head at a time, straight from the Hugging Face modelling code. Parameters are
/// keyed by their Hugging Face names in the on-disk layout (see <see cref="Layout"/>):
/// <list type="bullet">
/// <item>gpt2: x = wte[t] + wpe[pos]; per layer x += c_proj(attn(ln_1(x))), x += mlp(ln_2(x)) with
/// mlp = c_proj(gelu_new(c_fc(·))); hidden = ln_f(x). Conv1D weights are (in, out): y = x·W + b; c_attn's
/// output columns are q | k | v. LayerNorm uses the biased variance.</item>
/// <item>llama / qwen2: x = embed_tokens[t]; per layer x += o_proj(attn(rope(q_proj h), rope(k_proj h), v_proj h))
/// with h = input_layernorm(x), then x += down_proj(silu(gate_proj h) ⊙ up_proj h) with h = post_attention_layernorm(x);
/// hidden = norm(x). nn.Linear weights are (out, in): y = W·x (+ b, qwen2's q/k/v only). RMSNorm:
/// x / sqrt(mean(x²) + eps) ⊙ w. Query head h reads key-value head h / (H / KVH).</item>
/// <item>qwen3: as llama, with each head's q and k vector (D) RMS-normalised by q_norm / k_norm (weights (D),
/// eps = rms_norm_eps) after the projection and before RoPE (Qwen3Attention); D is the config's head_dim,
/// so q_proj is (H·D, C) and o_proj (C, H·D) whatever C is; q/k/v/o_proj biases when attention_bias is true.</item>
/// </list>
/// Attention is causal within the one sequence, positions count from 0, scores are scaled by 1/sqrt(D).
/// A config's rope_scaling (Llama 3.x's) rescales the RoPE frequencies (<see cref="RopeFrequencies"/>).
/// The LM head is wte / embed_tokens when tied, lm_head otherwise.
/// </summary>
public static class TransformerReference
{
    /// <summary>Final hidden states (T, C) after the final norm.</summary>
    public static double[][] Hidden(ModelConfig config, IReadOnlyDictionary<string, double[]> parameters, IReadOnlyList<int> sequence)
    {
        CheckInputs(config, parameters, sequence);
        return config.ModelType == "gpt2" ? Gpt2Hidden(config, parameters, sequence) : LlamaHidden(config, parameters, sequence);
    }

    /// <summary>Logits (T, V) = hidden · lm_headᵀ.</summary>
    public static double[][] Logits(ModelConfig config, IReadOnlyDictionary<string, double[]> parameters, IReadOnlyList<int> sequence)
    {
        var hidden = Hidden(config, parameters, sequence);
        string headName = config.ModelType == "gpt2" ? "wte.weight"
            : config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
        var head = parameters[headName];
        var logits = new double[hidden.Length][];
        for (int t = 0; t < hidden.Length; t++) logits[t] = Linear(head, null, hidden[t], config.VocabSize, config.HiddenSize);
        return logits;
    }

    /// <summary>(T − 1): log softmax(logits_t / temperature)[sequence[t + 1]], the log-probability of each next token.</summary>
    public static double[] NextTokenLogProbs(ModelConfig config, IReadOnlyDictionary<string, double[]> parameters,
        IReadOnlyList<int> sequence, double temperature)
    {
        var targets = new int[Math.Max(sequence.Count - 1, 0)];
        for (int t = 0; t < targets.Length; t++) targets[t] = sequence[t + 1];
        return Gather(config, parameters, sequence, targets, temperature);
    }

    /// <summary>(T): log softmax(logits_t / temperature)[targets[t]]: row t predicts targets[t].</summary>
    public static double[] TokenLogProbs(ModelConfig config, IReadOnlyDictionary<string, double[]> parameters,
        IReadOnlyList<int> sequence, IReadOnlyList<int> targets, double temperature)
    {
        if (targets.Count != sequence.Count)
            throw new ArgumentException($"{targets.Count} targets for {sequence.Count} tokens; there is one target per token.", nameof(targets));
        return Gather(config, parameters, sequence, targets, temperature);
    }

    /// <summary>log softmax(logits_t / temperature)[targets[t]] for the first targets.Count rows.</summary>
    private static double[] Gather(ModelConfig config, IReadOnlyDictionary<string, double[]> parameters,
        IReadOnlyList<int> sequence, IReadOnlyList<int> targets, double temperature)
    {
        if (!(temperature > 0) || !double.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature must be finite and positive.");
        var logits = Logits(config, parameters, sequence);
        var result = new double[targets.Count];
        for (int t = 0; t < result.Length; t++)
        {
            if (targets[t] < 0 || targets[t] >= config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(targets), $"targets[{t}] = {targets[t]} is outside the vocabulary [0, {config.VocabSize}).");
            var z = new double[config.VocabSize];
            for (int j = 0; j < z.Length; j++) z[j] = logits[t][j] / temperature;
            result[t] = z[targets[t]] - ReferenceMath.LogSumExp(z);
        }
        return result;
    }

    /// <summary>Every tensor of the family with its on-disk shape, in a fixed order: embeddings, each layer, the final norm, lm_head when untied.</summary>
    /// <exception cref="NotSupportedException">the model type is not gpt2, llama or qwen2</exception>
    public static IReadOnlyList<(string Name, int[] Shape)> Layout(ModelConfig config)
    {
        int v = config.VocabSize, c = config.HiddenSize, i = config.IntermediateSize;
        var layout = new List<(string, int[])>();
        switch (config.ModelType)
        {
            case "gpt2":
                layout.Add(("wte.weight", [v, c]));
                layout.Add(("wpe.weight", [config.MaxPositions, c]));
                for (int l = 0; l < config.NumLayers; l++)
                {
                    string p = $"h.{l}.";
                    layout.Add((p + "ln_1.weight", [c]));
                    layout.Add((p + "ln_1.bias", [c]));
                    layout.Add((p + "attn.c_attn.weight", [c, 3 * c]));
                    layout.Add((p + "attn.c_attn.bias", [3 * c]));
                    layout.Add((p + "attn.c_proj.weight", [c, c]));
                    layout.Add((p + "attn.c_proj.bias", [c]));
                    layout.Add((p + "ln_2.weight", [c]));
                    layout.Add((p + "ln_2.bias", [c]));
                    layout.Add((p + "mlp.c_fc.weight", [c, i]));
                    layout.Add((p + "mlp.c_fc.bias", [i]));
                    layout.Add((p + "mlp.c_proj.weight", [i, c]));
                    layout.Add((p + "mlp.c_proj.bias", [c]));
                }
                layout.Add(("ln_f.weight", [c]));
                layout.Add(("ln_f.bias", [c]));
                break;
            case "llama" or "qwen2" or "qwen3":
                int q = config.NumHeads * config.HeadDim, kv = config.NumKeyValueHeads * config.HeadDim;
                layout.Add(("model.embed_tokens.weight", [v, c]));
                for (int l = 0; l < config.NumLayers; l++)
                {
                    string p = $"model.layers.{l}.";
                    layout.Add((p + "input_layernorm.weight", [c]));
                    layout.Add((p + "self_attn.q_proj.weight", [q, c]));
                    if (HasQkvBias(config)) layout.Add((p + "self_attn.q_proj.bias", [q]));
                    layout.Add((p + "self_attn.k_proj.weight", [kv, c]));
                    if (HasQkvBias(config)) layout.Add((p + "self_attn.k_proj.bias", [kv]));
                    layout.Add((p + "self_attn.v_proj.weight", [kv, c]));
                    if (HasQkvBias(config)) layout.Add((p + "self_attn.v_proj.bias", [kv]));
                    layout.Add((p + "self_attn.o_proj.weight", [c, q]));
                    if (config.ModelType == "qwen3" && config.AttentionBias) layout.Add((p + "self_attn.o_proj.bias", [c]));
                    if (config.ModelType == "qwen3")
                    {
                        layout.Add((p + "self_attn.q_norm.weight", [config.HeadDim]));
                        layout.Add((p + "self_attn.k_norm.weight", [config.HeadDim]));
                    }
                    layout.Add((p + "post_attention_layernorm.weight", [c]));
                    layout.Add((p + "mlp.gate_proj.weight", [i, c]));
                    layout.Add((p + "mlp.up_proj.weight", [i, c]));
                    layout.Add((p + "mlp.down_proj.weight", [c, i]));
                }
                layout.Add(("model.norm.weight", [c]));
                if (!config.TieWordEmbeddings) layout.Add(("lm_head.weight", [v, c]));
                break;
            default:
                throw new NotSupportedException(
                    $"TransformerReference has no forward pass for model type '{config.ModelType}'; it knows gpt2, llama, qwen2 and qwen3.");
        }
        return layout;
    }

    /// <summary>
    /// Every tensor of <see cref="Layout"/> filled with N(0, 1)·<paramref name="scale"/>, except norm weights,
    /// which are 1 + 0.1·N(0, 1) so that they are non-trivial yet keep the activations in range.
    /// </summary>
    public static Dictionary<string, double[]> RandomParameters(ModelConfig config, Random random, double scale = 0.5)
    {
        var parameters = new Dictionary<string, double[]>();
        foreach (var (name, shape) in Layout(config))
        {
            int count = 1;
            foreach (int n in shape) count *= n;
            bool normWeight = name.EndsWith(".weight", StringComparison.Ordinal)
                && (name.Contains("ln_", StringComparison.Ordinal) || name.Contains("layernorm", StringComparison.Ordinal)
                    || name.EndsWith("_norm.weight", StringComparison.Ordinal) || name == "model.norm.weight");
            var values = new double[count];
            for (int k = 0; k < count; k++) values[k] = normWeight ? 1 + 0.1 * Normal(random) : scale * Normal(random);
            parameters[name] = values;
        }
        return parameters;
    }

    /// <summary>Which of Llama 3.x's rescaling regimes (rope_type "llama3") a RoPE frequency falls in.</summary>
    public enum RopeRegime
    {
        /// <summary>No scaling, or a high frequency (wavelength below original / high_freq_factor): kept.</summary>
        Unchanged,

        /// <summary>Between the two wavelength thresholds: interpolated between kept and divided.</summary>
        Smoothed,

        /// <summary>A low frequency (wavelength above original / low_freq_factor): divided by the factor.</summary>
        Divided,
    }

    /// <summary>
    /// The RoPE inverse frequency of each pair i &lt; D/2 and its Llama 3.x regime, as Hugging Face computes
    /// them in float32 tensors on the CPU: <c>_compute_default_rope_parameters</c>, inv_freq =
    /// 1 / θ^(2i/D), then, with <paramref name="scaling"/>, <c>_compute_llama3_parameters</c>:
    /// wavelen = 2π / inv_freq; kept where wavelen &lt; original / high_freq_factor; inv_freq / factor where
    /// wavelen &gt; original / low_freq_factor; otherwise (1 − s)·inv_freq / factor + s·inv_freq with
    /// s = (original / wavelen − low_freq_factor) / (high_freq_factor − low_freq_factor).
    /// Every value is computed in double and rounded to float wherever torch produces a float32 tensor;
    /// a double holds the exact product of two floats, and a double sum, difference or quotient of two
    /// floats rounded to float is the correctly rounded fp32 result, so each step equals torch's fp32
    /// operation. Python numbers meet the tensors as floats (torch keeps the tensor's dtype); number /
    /// tensor is torch's tensor.reciprocal() · number (two roundings); tensor / number is one fp32 division.
    /// </summary>
    public static (double InverseFrequency, RopeRegime Regime)[] RopeFrequencies(int headDim, double theta, RopeScaling? scaling)
    {
        static double F(double x) => (float)x; // one fp32 rounding
        int half = headDim / 2;
        var unscaled = new double[half];
        for (int i = 0; i < half; i++)
        {
            double exponent = F((double)(2 * i) / headDim);    // arange(0, dim, 2).float() / dim
            double power = F(Math.Pow(F(theta), exponent));    // base ** (...)
            unscaled[i] = F(F(1.0 / power) * 1.0);             // 1.0 / (...): reciprocal, times 1.0
        }
        var result = new (double, RopeRegime)[half];
        if (scaling is null)
        {
            for (int i = 0; i < half; i++) result[i] = (unscaled[i], RopeRegime.Unchanged);
            return result;
        }
        double factor = F(scaling.Factor), low = F(scaling.LowFrequencyFactor), original = F(scaling.OriginalMaxPositions);
        double lowFrequencyWavelength = F(scaling.OriginalMaxPositions / scaling.LowFrequencyFactor);   // a Python float
        double highFrequencyWavelength = F(scaling.OriginalMaxPositions / scaling.HighFrequencyFactor); // compared as float
        double span = F(scaling.HighFrequencyFactor - scaling.LowFrequencyFactor);
        double twoPi = F(2 * Math.PI);
        for (int i = 0; i < half; i++)
        {
            double inverse = unscaled[i];
            double wavelength = F(F(1.0 / inverse) * twoPi);
            // The candidates of the two torch.where calls, each in torch's order of operations.
            double divided = F(inverse / factor);
            double smooth = F(F(F(F(1.0 / wavelength) * original) - low) / span);
            double smoothed = F(F(F(F(1 - smooth) * inverse) / factor) + F(smooth * inverse));
            bool isLow = wavelength > lowFrequencyWavelength, isHigh = wavelength < highFrequencyWavelength;
            result[i] = isHigh ? (inverse, RopeRegime.Unchanged)
                : isLow ? (divided, RopeRegime.Divided)
                : (smoothed, RopeRegime.Smoothed);
        }
        return result;
    }

    /// <summary>
    /// Hugging Face rotary embedding (rotate-half) of one token's (heads, D) vector at <paramref name="position"/>:
    /// angle_i = fp32(position · inv_freq_i) with inv_freq_i from <see cref="RopeFrequencies"/> (float32 as
    /// Hugging Face rounds it, rescaled by <paramref name="scaling"/> when given), then in double
    /// (x_i, x_{i+D/2}) ← (x_i cos − x_{i+D/2} sin, x_{i+D/2} cos + x_i sin). Returns a new array.
    /// </summary>
    public static double[] Rope(double[] vector, int heads, int headDim, int position, double theta, RopeScaling? scaling = null)
    {
        int half = headDim / 2;
        var frequencies = RopeFrequencies(headDim, theta, scaling);
        var result = (double[])vector.Clone();
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
            {
                // The fp32 rounding is Hugging Face's (position · inv_freq is a float32 tensor; attention scaling 1).
                double angle = (float)(position * frequencies[i].InverseFrequency);
                double cos = Math.Cos(angle), sin = Math.Sin(angle);
                double a = vector[h * headDim + i], b = vector[h * headDim + i + half];
                result[h * headDim + i] = a * cos - b * sin;
                result[h * headDim + i + half] = b * cos + a * sin;
            }
        return result;
    }

    private static double[][] Gpt2Hidden(ModelConfig config, IReadOnlyDictionary<string, double[]> w, IReadOnlyList<int> sequence)
    {
        int c = config.HiddenSize, n = config.IntermediateSize, tokens = sequence.Count;
        double eps = config.NormEpsilon;
        var x = new double[tokens][];
        for (int t = 0; t < tokens; t++)
        {
            x[t] = new double[c];
            for (int k = 0; k < c; k++) x[t][k] = w["wte.weight"][sequence[t] * c + k] + w["wpe.weight"][t * c + k];
        }
        for (int l = 0; l < config.NumLayers; l++)
        {
            string p = $"h.{l}.";
            var q = new double[tokens][];
            var key = new double[tokens][];
            var value = new double[tokens][];
            for (int t = 0; t < tokens; t++)
            {
                var h = LayerNorm(x[t], w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps);
                var qkv = Conv1D(w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"], h, c, 3 * c);
                q[t] = qkv[..c];
                key[t] = qkv[c..(2 * c)];
                value[t] = qkv[(2 * c)..];
            }
            var attention = CausalAttention(q, key, value, config.NumHeads, config.NumKeyValueHeads, config.HeadDim);
            for (int t = 0; t < tokens; t++)
                Add(x[t], Conv1D(w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"], attention[t], c, c));
            for (int t = 0; t < tokens; t++)
            {
                var h = LayerNorm(x[t], w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps);
                var inner = Conv1D(w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"], h, c, n);
                for (int k = 0; k < n; k++) inner[k] = GeluNew(inner[k]);
                Add(x[t], Conv1D(w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"], inner, n, c));
            }
        }
        for (int t = 0; t < tokens; t++) x[t] = LayerNorm(x[t], w["ln_f.weight"], w["ln_f.bias"], eps);
        return x;
    }

    private static double[][] LlamaHidden(ModelConfig config, IReadOnlyDictionary<string, double[]> w, IReadOnlyList<int> sequence)
    {
        int c = config.HiddenSize, n = config.IntermediateSize, tokens = sequence.Count;
        int heads = config.NumHeads, kvHeads = config.NumKeyValueHeads, d = config.HeadDim;
        double eps = config.NormEpsilon;
        var x = new double[tokens][];
        for (int t = 0; t < tokens; t++) x[t] = w["model.embed_tokens.weight"][(sequence[t] * c)..((sequence[t] + 1) * c)];
        for (int l = 0; l < config.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var q = new double[tokens][];
            var key = new double[tokens][];
            var value = new double[tokens][];
            bool qkNorm = config.ModelType == "qwen3";
            for (int t = 0; t < tokens; t++)
            {
                var h = RmsNorm(x[t], w[p + "input_layernorm.weight"], eps);
                var qProjected = Linear(w[p + "self_attn.q_proj.weight"], Bias(config, w, p + "self_attn.q_proj.bias"), h, heads * d, c);
                var kProjected = Linear(w[p + "self_attn.k_proj.weight"], Bias(config, w, p + "self_attn.k_proj.bias"), h, kvHeads * d, c);
                if (qkNorm)
                {
                    qProjected = PerHeadRmsNorm(qProjected, heads, d, w[p + "self_attn.q_norm.weight"], eps);
                    kProjected = PerHeadRmsNorm(kProjected, kvHeads, d, w[p + "self_attn.k_norm.weight"], eps);
                }
                q[t] = Rope(qProjected, heads, d, t, config.RopeTheta, config.RopeScaling);
                key[t] = Rope(kProjected, kvHeads, d, t, config.RopeTheta, config.RopeScaling);
                value[t] = Linear(w[p + "self_attn.v_proj.weight"], Bias(config, w, p + "self_attn.v_proj.bias"), h, kvHeads * d, c);
            }
            var attention = CausalAttention(q, key, value, heads, kvHeads, d);
            for (int t = 0; t < tokens; t++)
                Add(x[t], Linear(w[p + "self_attn.o_proj.weight"], OutputBias(config, w, p + "self_attn.o_proj.bias"), attention[t], c, heads * d));
            for (int t = 0; t < tokens; t++)
            {
                var h = RmsNorm(x[t], w[p + "post_attention_layernorm.weight"], eps);
                var gate = Linear(w[p + "mlp.gate_proj.weight"], null, h, n, c);
                var up = Linear(w[p + "mlp.up_proj.weight"], null, h, n, c);
                var inner = new double[n];
                for (int k = 0; k < n; k++) inner[k] = gate[k] / (1 + Math.Exp(-gate[k])) * up[k];
                Add(x[t], Linear(w[p + "mlp.down_proj.weight"], null, inner, c, n));
            }
        }
        for (int t = 0; t < tokens; t++) x[t] = RmsNorm(x[t], w["model.norm.weight"], eps);
        return x;
    }

    /// <summary>A q/k/v_proj bias: qwen2 always, qwen3 when attention_bias is true.</summary>
    private static double[]? Bias(ModelConfig config, IReadOnlyDictionary<string, double[]> w, string name) =>
        HasQkvBias(config) ? w[name] : null;

    private static bool HasQkvBias(ModelConfig config) =>
        config.ModelType == "qwen2" || (config.ModelType == "qwen3" && config.AttentionBias);

    /// <summary>o_proj's bias: qwen3 with attention_bias only.</summary>
    private static double[]? OutputBias(ModelConfig config, IReadOnlyDictionary<string, double[]> w, string name) =>
        config.ModelType == "qwen3" && config.AttentionBias ? w[name] : null;

    /// <summary>Qwen3's q_norm / k_norm: RMSNorm of each of the <paramref name="heads"/> D-vectors of a (heads·D) row, with one (D) weight.</summary>
    private static double[] PerHeadRmsNorm(double[] row, int heads, int d, double[] weight, double eps)
    {
        var result = new double[row.Length];
        for (int head = 0; head < heads; head++)
            RmsNorm(row[(head * d)..((head + 1) * d)], weight, eps).CopyTo(result, head * d);
        return result;
    }

    /// <summary>Per query head h (kv head h / (H / KVH)): o_i = Σ_{j ≤ i} softmax_j(q_i·k_j / sqrt(D)) v_j. Rows are (heads·D).</summary>
    private static double[][] CausalAttention(double[][] q, double[][] k, double[][] v, int heads, int kvHeads, int d)
    {
        int tokens = q.Length;
        var output = new double[tokens][];
        for (int i = 0; i < tokens; i++)
        {
            output[i] = new double[heads * d];
            for (int h = 0; h < heads; h++)
            {
                int g = h / (heads / kvHeads);
                var scores = new double[i + 1];
                for (int j = 0; j <= i; j++)
                {
                    double dot = 0;
                    for (int e = 0; e < d; e++) dot += q[i][h * d + e] * k[j][g * d + e];
                    scores[j] = dot / Math.Sqrt(d);
                }
                double lse = ReferenceMath.LogSumExp(scores);
                for (int j = 0; j <= i; j++)
                {
                    double weight = Math.Exp(scores[j] - lse);
                    for (int e = 0; e < d; e++) output[i][h * d + e] += weight * v[j][g * d + e];
                }
            }
        }
        return output;
    }

    /// <summary>nn.Linear: y_o = Σ_i W[o, i] x_i (+ b_o), W stored (outputs, inputs).</summary>
    private static double[] Linear(double[] weight, double[]? bias, double[] x, int outputs, int inputs)
    {
        var y = new double[outputs];
        for (int o = 0; o < outputs; o++)
        {
            double sum = bias?[o] ?? 0;
            for (int i = 0; i < inputs; i++) sum += weight[o * inputs + i] * x[i];
            y[o] = sum;
        }
        return y;
    }

    /// <summary>GPT-2's Conv1D: y_o = Σ_i x_i W[i, o] + b_o, W stored (inputs, outputs).</summary>
    private static double[] Conv1D(double[] weight, double[] bias, double[] x, int inputs, int outputs)
    {
        var y = new double[outputs];
        for (int o = 0; o < outputs; o++)
        {
            double sum = bias[o];
            for (int i = 0; i < inputs; i++) sum += x[i] * weight[i * outputs + o];
            y[o] = sum;
        }
        return y;
    }

    private static double[] LayerNorm(double[] x, double[] weight, double[] bias, double eps)
    {
        double mean = 0, variance = 0;
        foreach (double value in x) mean += value;
        mean /= x.Length;
        foreach (double value in x) variance += (value - mean) * (value - mean);
        variance /= x.Length; // biased, as torch.nn.LayerNorm
        var y = new double[x.Length];
        for (int k = 0; k < x.Length; k++) y[k] = (x[k] - mean) / Math.Sqrt(variance + eps) * weight[k] + bias[k];
        return y;
    }

    private static double[] RmsNorm(double[] x, double[] weight, double eps)
    {
        double meanSquare = 0;
        foreach (double value in x) meanSquare += value * value;
        meanSquare /= x.Length;
        var y = new double[x.Length];
        for (int k = 0; k < x.Length; k++) y[k] = x[k] / Math.Sqrt(meanSquare + eps) * weight[k];
        return y;
    }

    /// <summary>gelu_new: 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))).</summary>
    private static double GeluNew(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    private static void Add(double[] x, double[] delta)
    {
        for (int k = 0; k < x.Length; k++) x[k] += delta[k];
    }

    private static double Normal(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>A valid config, every tensor present with its on-disk size, tokens in the vocabulary and (gpt2) within the position table.</summary>
    private static void CheckInputs(ModelConfig config, IReadOnlyDictionary<string, double[]> parameters, IReadOnlyList<int> sequence)
    {
        var layout = Layout(config); // throws first for an unknown model type
        config.Validate();
        if (config.ModelType != "gpt2" && config.HeadDim % 2 != 0)
            throw new ArgumentException($"Head dimension {config.HeadDim} is odd; rotary embeddings need an even one.", nameof(config));
        foreach (var (name, shape) in layout)
        {
            int count = 1;
            foreach (int n in shape) count *= n;
            if (!parameters.TryGetValue(name, out var values))
                throw new KeyNotFoundException($"Parameter '{name}' ({string.Join(" x ", shape)}) is missing.");
            if (values.Length != count)
                throw new ArgumentException($"Parameter '{name}' has {values.Length} values; its shape ({string.Join(", ", shape)}) needs {count}.", nameof(parameters));
        }
        if (sequence.Count == 0) throw new ArgumentException("The sequence is empty.", nameof(sequence));
        if (config.ModelType == "gpt2" && sequence.Count > config.MaxPositions)
            throw new ArgumentException($"{sequence.Count} tokens exceed gpt2's {config.MaxPositions} learned positions.", nameof(sequence));
        for (int t = 0; t < sequence.Count; t++)
            if (sequence[t] < 0 || sequence[t] >= config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(sequence), $"sequence[{t}] = {sequence[t]} is outside the vocabulary [0, {config.VocabSize}).");
    }
}

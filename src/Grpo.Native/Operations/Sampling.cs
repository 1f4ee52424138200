using Grpo.Kernels;
using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

public partial interface IGrpoOperations
{
    /// <summary>
    /// Samples one token per row of logits.
    /// </summary>
    /// <remarks>
    /// <para>Semantics (identical on every backend): scaled logits z_j = logits_j · (1/T), with 1/T
    /// rounded to float. T = 0 is greedy: the argmax of the logits (lowest index on ties), filters
    /// ignored, log-prob at T = 1.</para>
    /// <para>Filters, in this order, define the kept set K (the top token is always kept):
    /// top-k keeps z_j ≥ the k-th largest z (ties at the boundary all kept); top-p, on the
    /// distribution renormalised over the top-k set, keeps j iff the mass of tokens strictly more
    /// probable than j is below TopP; min-p keeps z_j ≥ z_max + ln(MinP).</para>
    /// <para>The draw is Gumbel-max: the argmax over K of z_j − ln(−ln u_j), lowest index on ties,
    /// an exact sample from softmax(z) restricted to K. u_j comes from <see cref="CounterRng"/>, a
    /// pure function of (seed, row, step, j): the same arguments give the same tokens on every
    /// backend and thread count, and a new step or seed gives fresh draws.</para>
    /// <para>The returned log-prob is z_token − logsumexp(z) over the FULL vocabulary (no filter),
    /// i.e. exactly what the trainer computes from the same logits and temperature, so sampler
    /// and trainer never disagree about old log-probs.</para>
    /// <para>Logits must be finite. The managed CPU backend checks and throws naming the row; the
    /// ILGPU backend does not pay for a scan, and a NaN or infinity gives an unspecified token id in [0, V)
    /// (token 0 with a NaN log-prob when the row has no candidate at all).</para>
    /// </remarks>
    /// <param name="logits">(R, V) logits, one row per sequence being generated.</param>
    /// <param name="options">Temperature and filters; see <see cref="SamplingOptions"/>.</param>
    /// <param name="seed">The generator seed.</param>
    /// <param name="step">The decoding step (≥ 0); use a new step for every token position.</param>
    /// <param name="tokens">(R) output: the sampled token ids.</param>
    /// <param name="logprobs">(R) output: log softmax(z)[token] over the full vocabulary.</param>
    /// <param name="firstRow">The generator's index of row 0 (≥ 0): row r draws as row firstRow + r, so a data-parallel rank
    /// sampling rows F.. of a step's batch draws exactly what one process sampling the whole batch would.</param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or device, or (CPU) a logit is not finite.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option, <paramref name="step"/> or <paramref name="firstRow"/> is out of range.</exception>
    void SampleTokens(Tensor<float> logits /* (R, V) */, SamplingOptions options, ulong seed, int step,
                      Tensor<int> tokens /* (R) out */, Tensor<float> logprobs /* (R) out */, int firstRow = 0);
}

/// <summary>How <see cref="IGrpoOperations.SampleTokens"/> turns logits into a distribution.</summary>
public sealed record SamplingOptions
{
    /// <summary>Divides the logits; 0 means greedy (argmax). Must be finite and ≥ 0.</summary>
    public float Temperature { get; init; } = 1;

    /// <summary>Keep only the k most likely tokens (ties at the boundary kept); 0 turns it off.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keep the smallest most-likely set with this much mass; 1 turns it off. In (0, 1].</summary>
    public float TopP { get; init; } = 1;

    /// <summary>Keep tokens at least this fraction as likely as the most likely one; 0 turns it off. In [0, 1).</summary>
    public float MinP { get; init; }

    /// <summary>Throws unless every option is in range; the message names the property and the fix.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public void Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0)
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature,
                $"{nameof(SamplingOptions)}.{nameof(Temperature)} must be finite and >= 0; use 0 for greedy decoding or e.g. 1.");
        if (Temperature > 0 && !float.IsFinite(1f / Temperature))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature,
                $"{nameof(SamplingOptions)}.{nameof(Temperature)} is so small that 1/T overflows; use 0 for greedy decoding.");
        if (TopK < 0)
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK,
                $"{nameof(SamplingOptions)}.{nameof(TopK)} must be >= 0; use 0 to turn top-k off.");
        if (!(TopP > 0 && TopP <= 1))
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP,
                $"{nameof(SamplingOptions)}.{nameof(TopP)} must be in (0, 1]; use 1 to turn top-p off.");
        if (!(MinP >= 0 && MinP < 1))
            throw new ArgumentOutOfRangeException(nameof(MinP), MinP,
                $"{nameof(SamplingOptions)}.{nameof(MinP)} must be in [0, 1); use 0 to turn min-p off.");
    }
}

/// <summary>The checks both backends run before sampling, and the resolution of options into kernel parameters.</summary>
internal static class SamplingValidation
{
    /// <summary>Checks shapes and options and returns (R, the resolved parameters).</summary>
    public static (int Rows, SamplingParameters Parameters) Validate(Tensor<float> logits /* (R, V) */,
        SamplingOptions options, ulong seed, int step, Tensor<int> tokens /* (R) */, Tensor<float> logprobs /* (R) */,
        int firstRow = 0)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Guard.Rank(logits, nameof(logits), 2, "(rows, vocabulary)");
        int rows = logits.Shape[0], vocab = logits.Shape[1];
        Guard.Shape(tokens, nameof(tokens), rows);
        Guard.Shape(logprobs, nameof(logprobs), rows);
        if (step < 0)
            throw new ArgumentOutOfRangeException(nameof(step), step,
                "'step' must be >= 0; count decoding steps from 0.");
        if (firstRow < 0 || firstRow > int.MaxValue - rows)
            throw new ArgumentOutOfRangeException(nameof(firstRow), firstRow,
                $"'firstRow' must be >= 0 and leave room for the {rows} rows; it is the global index of row 0.");

        bool greedy = options.Temperature == 0;
        // Filters that keep everything are turned off here, so the backends never pay for them.
        bool topK = !greedy && options.TopK > 0 && options.TopK < vocab;
        bool topP = !greedy && options.TopP < 1;
        bool minP = !greedy && options.MinP > 0;
        var parameters = new SamplingParameters(
            vocab,
            greedy ? 1 : 0,
            greedy ? 1f : 1f / options.Temperature,
            topK ? options.TopK : 0,
            topP ? options.TopP : 1f,
            minP ? 1 : 0,
            minP ? (float)Math.Log(options.MinP) : 0f,
            seed,
            step,
            firstRow);
        return (rows, parameters);
    }
}

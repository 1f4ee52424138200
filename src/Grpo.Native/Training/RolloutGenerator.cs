using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Training;

/// <summary>The completions of one rollout: N = B·G, completion n of prompt n / G.</summary>
/// <param name="Prompts">(B) prompt token ids.</param>
/// <param name="Completions">(N) completion token ids, the stop token included when one was sampled.</param>
/// <param name="Logprobs">(N) the sampler's log-prob of each completion token (of logits / temperature).</param>
/// <param name="Truncated">(N) true when a completion reached the length limit without a stop token.</param>
public sealed record Rollout(int[][] Prompts, int[][] Completions, float[][] Logprobs, bool[] Truncated);

/// <summary>
/// Samples G completions for each of B prompts with the KV-cache decoder: one prefill of the prompts,
/// then one decode step per completion token for all B·G sequences at once. Sampling is counter-based
/// (seed, row, step), so the same seed gives the same completions on every backend and thread count.
/// </summary>
public sealed class RolloutGenerator : IDisposable
{
    private readonly TransformerModel _model;
    private readonly KvCacheDecoder _decoder;
    private readonly Tensor<int> _tokens;     // (S)
    private readonly Tensor<float> _logprobs; // (S)

    /// <summary>Allocates the decoder for up to <paramref name="maxSlots"/> sequences of prompt + completion.</summary>
    public RolloutGenerator(TransformerModel model, int maxSlots, int maxPromptLength, int maxCompletionLength, int maxPromptTokens)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        if (maxPromptLength + maxCompletionLength > model.Config.MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(maxCompletionLength), maxCompletionLength,
                $"The longest prompt ({maxPromptLength}) plus the longest completion ({maxCompletionLength}) exceeds the model's context of " +
                $"{model.Config.MaxPositions} tokens; lower one of them.");
        _decoder = new KvCacheDecoder(model, maxSlots, maxPromptLength + maxCompletionLength, maxPromptTokens);
        _tokens = model.Device.Allocate<int>(maxSlots);
        _logprobs = model.Device.Allocate<float>(maxSlots);
    }

    /// <summary>Bytes of the key/value cache.</summary>
    public long CacheBytes => _decoder.CacheBytes;

    /// <summary>Samples <paramref name="groupSize"/> completions per prompt.</summary>
    /// <param name="prompts">B prompts, each shorter than the context.</param>
    /// <param name="groupSize">G.</param>
    /// <param name="maxCompletionLength">Most tokens per completion.</param>
    /// <param name="sampling">Temperature and filters.</param>
    /// <param name="stopTokens">Tokens that end a completion (kept in it).</param>
    /// <param name="seed">The rollout's seed: vary it per step.</param>
    /// <param name="firstRow">The step's row index of this rollout's first completion (a data-parallel rank's share starts past 0),
    /// so that completion n is drawn as completion firstRow + n of the whole step.</param>
    public Rollout Generate(IReadOnlyList<int[]> prompts, int groupSize, int maxCompletionLength, SamplingOptions sampling,
        IReadOnlyCollection<int> stopTokens, ulong seed, int firstRow = 0)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(sampling);
        ArgumentNullException.ThrowIfNull(stopTokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCompletionLength, 1);
        var stop = stopTokens as IReadOnlySet<int> ?? new HashSet<int>(stopTokens);
        using var batch = TokenBatch.Create(_model.Device, prompts.Select(p => (IReadOnlyList<int>)p).ToList(),
            _model.Config.VocabSize, _model.Config.MaxPositions);
        int n = prompts.Count * groupSize;
        var completions = Enumerable.Range(0, n).Select(_ => new List<int>(maxCompletionLength)).ToArray();
        var logprobs = Enumerable.Range(0, n).Select(_ => new List<float>(maxCompletionLength)).ToArray();
        var finished = new bool[n];
        int open = n;
        var tokens = _tokens.Slice(0, n);    // (N)
        var sampled = _logprobs.Slice(0, n); // (N)

        var logits = _decoder.Prefill(batch, groupSize);
        for (int step = 0; step < maxCompletionLength; step++)
        {
            _model.Device.Operations.SampleTokens(logits, sampling, seed, step, tokens, sampled, firstRow);
            int[] t = tokens.ToArray();
            float[] lp = sampled.ToArray();
            for (int i = 0; i < n; i++)
            {
                if (finished[i]) continue;
                completions[i].Add(t[i]);
                logprobs[i].Add(lp[i]);
                if (stop.Contains(t[i]))
                {
                    finished[i] = true;
                    open--;
                }
            }
            if (open == 0 || step == maxCompletionLength - 1) break;
            logits = _decoder.Step(tokens); // finished sequences keep decoding; their tokens are ignored
        }
        return new Rollout(prompts.Select(p => p.ToArray()).ToArray(), completions.Select(c => c.ToArray()).ToArray(),
            logprobs.Select(l => l.ToArray()).ToArray(), finished.Select(f => !f).ToArray());
    }

    /// <summary>Frees the decoder.</summary>
    public void Dispose()
    {
        _decoder.Dispose();
        _tokens.Dispose();
        _logprobs.Dispose();
    }
}

using Grpo.Native.Devices;
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
/// Sampled tokens and log-probs stay on the device, one row per step: on a GPU the host reads the new
/// tokens back every <see cref="StopCheckInterval"/> steps to see which completions stopped, and the
/// log-probs once at the end, so a decode step itself copies nothing. Finished sequences keep decoding
/// (their tokens are ignored), so checking late changes no completion, only how many steps run.
/// </summary>
public sealed class RolloutGenerator : IDisposable
{
    /// <summary>
    /// Decode steps between two reads of the sampled tokens on an accelerator (the managed CPU backend reads them every
    /// step, which costs it nothing). Each read waits for the device; up to this many − 1 steps run after the last stop.
    /// </summary>
    public const int StopCheckInterval = 8;

    private readonly TransformerModel _model;
    private readonly KvCacheDecoder _decoder;
    private readonly int _maxSlots;
    private Tensor<int> _tokens;     // (steps, S) the tokens sampled at each step, row-major by step
    private Tensor<float> _logprobs; // (steps, S) their log-probs

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
        _maxSlots = maxSlots;
        _tokens = model.Device.Allocate<int>(maxCompletionLength, maxSlots);
        _logprobs = model.Device.Allocate<float>(maxCompletionLength, maxSlots);
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
        EnsureSteps(maxCompletionLength);
        var hostTokens = new int[maxCompletionLength * n]; // (steps, N) filled as the stop checks read them
        var length = new int[n];                            // tokens each completion keeps, its stop token included
        var finished = new bool[n];
        int open = n, read = 0, steps = 0;
        int interval = _model.Device.Kind == DeviceKind.Cpu ? 1 : StopCheckInterval;

        var logits = _decoder.Prefill(batch, groupSize);
        for (int step = 0; step < maxCompletionLength; step++)
        {
            var tokens = _tokens.Slice((long)step * n, n);    // (N)
            var sampled = _logprobs.Slice((long)step * n, n); // (N)
            _model.Device.Operations.SampleTokens(logits, sampling, seed, step, tokens, sampled, firstRow);
            steps = step + 1;
            bool last = step == maxCompletionLength - 1;
            if (last || steps - read == interval)
            {
                // One read of the steps since the last check: which completions stopped.
                _tokens.Slice((long)read * n, steps - read, n).CopyTo(hostTokens.AsSpan(read * n, (steps - read) * n));
                for (; read < steps; read++)
                    for (int i = 0; i < n; i++)
                    {
                        if (finished[i]) continue;
                        length[i]++;
                        if (stop.Contains(hostTokens[read * n + i]))
                        {
                            finished[i] = true;
                            open--;
                        }
                    }
                if (open == 0) break;
            }
            if (last) break;
            logits = _decoder.Step(tokens); // finished sequences keep decoding; their tokens are ignored
        }

        var hostLogprobs = new float[steps * n]; // (steps, N): one read for the whole rollout
        _logprobs.Slice(0, steps, n).CopyTo(hostLogprobs);
        var completions = new int[n][];
        var logprobs = new float[n][];
        for (int i = 0; i < n; i++)
        {
            completions[i] = new int[length[i]];
            logprobs[i] = new float[length[i]];
            for (int k = 0; k < length[i]; k++)
            {
                completions[i][k] = hostTokens[k * n + i];
                logprobs[i][k] = hostLogprobs[k * n + i];
            }
        }
        return new Rollout(prompts.Select(p => p.ToArray()).ToArray(), completions, logprobs, finished.Select(f => !f).ToArray());
    }

    /// <summary>Grows the per-step token and log-prob buffers when a call asks for more steps than the constructor planned.</summary>
    private void EnsureSteps(int steps)
    {
        if (_tokens.Shape[0] >= steps) return;
        _tokens.Dispose();
        _logprobs.Dispose();
        _tokens = _model.Device.Allocate<int>(steps, _maxSlots);
        _logprobs = _model.Device.Allocate<float>(steps, _maxSlots);
    }

    /// <summary>Frees the decoder.</summary>
    public void Dispose()
    {
        _decoder.Dispose();
        _tokens.Dispose();
        _logprobs.Dispose();
    }
}

using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Models;

/// <summary>
/// Batched decoding with a key/value cache, for GRPO rollouts: <see cref="Prefill"/> runs B prompts of
/// different lengths once (packed, no padding) and fans each prompt's cached keys and values out to
/// the G slots of its group; every <see cref="Step"/> then feeds one new token per slot and attends
/// over that slot's cache, so a step costs O(slots × context) attention instead of a full forward.
/// The logits it returns are exactly those a full forward gives at the same position (tested).
/// Every index a prefill and the steps after it need (cache writes, positions, attended lengths) is
/// uploaded once by <see cref="Prefill"/>, so a step copies nothing between host and device.
/// </summary>
public sealed class KvCacheDecoder : IDisposable
{
    private readonly TransformerModel _model;
    private readonly IGrpoOperations _ops;
    private readonly Tensor<float>[] _keyCache;   // L layers × (S, capacity, KVH, D)
    private readonly Tensor<float>[] _valueCache; // L layers × (S, capacity, KVH, D)
    private readonly TransformerActivations _activations;
    private readonly Tensor<float> _logits;       // (S, V)
    private readonly Tensor<float> _lastHidden;   // (S, C)
    private readonly Tensor<int> _slotIds;        // (S) 0, 1, ..., S−1
    // One upload per prefill: [source rows (W) | slots (W) | positions (W) | last rows (R) | step positions (L + 1, R)],
    // where row k of the step positions holds each slot's prompt length + k: the position step k writes, and
    // (row k + 1) the length it attends to. W ≤ S·(L − 1) as every prompt is shorter than the capacity.
    private readonly Tensor<int> _indices;
    private readonly int[] _hostIndices;                // the host staging of _indices, kept between prefills
    private readonly int[] _lengths;              // (S) tokens cached per slot
    private int _activeSlots;
    private int _stepPositionsAt;                 // where the (L + 1, R) step positions start in _indices
    private int _steps;                           // steps since the last prefill

    /// <summary>Allocates the caches and buffers.</summary>
    /// <param name="model">The model to decode with.</param>
    /// <param name="maxSlots">S: the most sequences decoded at once (B × G).</param>
    /// <param name="capacity">Tokens per slot, prompt and completion together; at most the model's context.</param>
    /// <param name="maxPromptTokens">The most packed prompt tokens one <see cref="Prefill"/> receives.</param>
    public KvCacheDecoder(TransformerModel model, int maxSlots, int capacity, int maxPromptTokens)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSlots, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPromptTokens, 1);
        var config = model.Config;
        if (capacity > config.MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity,
                $"'{nameof(capacity)}' is {capacity} but the model's context is {config.MaxPositions}; prompt plus completion must fit in it.");
        _model = model;
        _ops = model.Device.Operations;
        MaxSlots = maxSlots;
        Capacity = capacity;
        var device = model.Device;
        _keyCache = new Tensor<float>[config.NumLayers];
        _valueCache = new Tensor<float>[config.NumLayers];
        try
        {
            for (int l = 0; l < config.NumLayers; l++)
            {
                _keyCache[l] = device.Allocate<float>(maxSlots, capacity, config.NumKeyValueHeads, config.HeadDim);
                _valueCache[l] = device.Allocate<float>(maxSlots, capacity, config.NumKeyValueHeads, config.HeadDim);
            }
            _activations = model.CreateActivations(Math.Max(maxSlots, maxPromptTokens), ActivationMode.Inference);
            _logits = device.Allocate<float>(maxSlots, config.VocabSize);
            _lastHidden = device.Allocate<float>(maxSlots, config.HiddenSize);
            _slotIds = device.FromArray<int>(Enumerable.Range(0, maxSlots).ToArray(), maxSlots);
            _indices = device.Allocate<int>(IndexCapacity(maxSlots, capacity));
        }
        catch
        {
            Dispose();
            throw;
        }
        _lengths = new int[maxSlots];
        _hostIndices = new int[_indices.Length];
    }

    /// <summary>Ints of the index buffer: three lists of at most S·(L − 1) cache writes, S last rows, (L + 1, S) step positions.</summary>
    private static int IndexCapacity(int slots, int capacity) => checked(3 * slots * (capacity - 1) + slots + (capacity + 1) * slots);

    /// <summary>S: the most sequences decoded at once.</summary>
    public int MaxSlots { get; }

    /// <summary>Tokens per slot, prompt and completion together.</summary>
    public int Capacity { get; }

    /// <summary>Slots filled by the last <see cref="Prefill"/>.</summary>
    public int ActiveSlots => _activeSlots;

    /// <summary>Tokens cached in each active slot.</summary>
    public ReadOnlySpan<int> Lengths => _lengths.AsSpan(0, _activeSlots);

    /// <summary>Bytes of the key/value caches.</summary>
    public long CacheBytes => 2L * _keyCache.Length * MaxSlots * Capacity * _model.Config.NumKeyValueHeads * _model.Config.HeadDim * sizeof(float);

    /// <summary>
    /// Runs the prompts and fills slots b·G .. b·G + G − 1 with prompt b's keys and values.
    /// </summary>
    /// <param name="prompts">B packed prompts.</param>
    /// <param name="groupSize">G: completions per prompt.</param>
    /// <returns>(B·G, V) logits of each slot's next token (a view, valid until the next call).</returns>
    public Tensor<float> Prefill(TokenBatch prompts, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        int b = prompts.SequenceCount, m = prompts.TokenCount, slots = checked(b * groupSize);
        if (slots > MaxSlots)
            throw new ArgumentException($"{b} prompts × group size {groupSize} = {slots} slots, but the decoder has {MaxSlots}.", nameof(prompts));
        if (m > _activations.MaxTokens)
            throw new ArgumentException($"The prompts hold {m} tokens but the decoder was made for at most {_activations.MaxTokens}.", nameof(prompts));

        int writes = 0;
        for (int p = 0; p < b; p++)
        {
            int length = prompts.HostStarts[p + 1] - prompts.HostStarts[p];
            if (length >= Capacity)
                throw new ArgumentException(
                    $"Prompt {p} has {length} tokens but each slot holds {Capacity}: no room is left for a completion.", nameof(prompts));
            writes += length * groupSize;
        }

        // Each prompt row is written to the G slots of its group.
        var host = _hostIndices;
        int sourceAt = 0, slotAt = writes, positionAt = 2 * writes, lastAt = 3 * writes, w = 0;
        _stepPositionsAt = lastAt + slots;
        for (int p = 0; p < b; p++)
        {
            int start = prompts.HostStarts[p], length = prompts.HostStarts[p + 1] - start;
            for (int g = 0; g < groupSize; g++)
            {
                int s = p * groupSize + g;
                _lengths[s] = length;
                host[lastAt + s] = start + length - 1;
                for (int t = 0; t < length; t++, w++)
                {
                    host[sourceAt + w] = start + t;
                    host[slotAt + w] = s;
                    host[positionAt + w] = t;
                }
                for (int k = 0; k <= Capacity; k++) host[_stepPositionsAt + k * slots + s] = length + k;
            }
        }
        _activeSlots = slots;
        _steps = 0;

        int used = _stepPositionsAt + (Capacity + 1) * slots;
        var indices = _indices.Slice(0, used);
        indices.CopyFrom(host.AsSpan(0, used));                                   // the one upload until the next prefill
        var sourceRows = _indices.Slice(sourceAt, writes);                        // (W)
        var writeSlots = _indices.Slice(slotAt, writes);                          // (W)
        var writePositions = _indices.Slice(positionAt, writes);                  // (W)
        var lastRows = _indices.Slice(lastAt, slots);                             // (B·G)
        float scale = 1f / MathF.Sqrt(_model.Config.HeadDim);
        var hidden = _model.RunForward(prompts.Ids, prompts.Positions, m, _activations, (layer, q, k, v, att, lse) =>
        {
            _ops.AttentionForward(att, lse, q, k!, v!, prompts.SeqStarts, scale);
            _ops.KvCacheWrite(_keyCache[layer], _valueCache[layer], k!, v!, sourceRows, writeSlots, writePositions);
        });
        var last = _lastHidden.Slice(0, slots, _model.Config.HiddenSize);                // (B·G, C)
        _ops.EmbeddingForward(last, lastRows, hidden, null, null);                        // gathers each slot's last prompt row
        return Logits(last, slots);
    }

    /// <summary>
    /// Appends one token to every active slot and returns the logits of the token after it.
    /// </summary>
    /// <param name="tokens">(slots) the new token of each active slot, e.g. straight from SampleTokens.</param>
    /// <returns>(slots, V) logits (a view, valid until the next call).</returns>
    /// <exception cref="InvalidOperationException">No prefill yet, or a slot's cache is full.</exception>
    public Tensor<float> Step(Tensor<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        int r = _activeSlots;
        if (r == 0) throw new InvalidOperationException("Call Prefill before Step: no slot holds a prompt.");
        Guard.Shape(tokens, nameof(tokens), r);
        for (int s = 0; s < r; s++)
        {
            if (_lengths[s] >= Capacity)
                throw new InvalidOperationException(
                    $"Slot {s} already holds {Capacity} tokens, the decoder's capacity; stop decoding or create it with a larger capacity.");
        }
        // Rows k and k + 1 of the step positions the prefill uploaded: no copy per step.
        var positionTensor = _indices.Slice(_stepPositionsAt + _steps * r, r);      // (R) each slot's length
        var attendTensor = _indices.Slice(_stepPositionsAt + (_steps + 1) * r, r);  // (R) that length + 1
        var slotTensor = _slotIds.Slice(0, r);           // (R)
        float scale = 1f / MathF.Sqrt(_model.Config.HeadDim);
        // Row r decodes slot r, so the slot ids are also the rows' own indices; each block caches its keys and values at the
        // row's position before attending over the cache.
        var cache = new DecodeCache(_keyCache, _valueCache, Slots: slotTensor, Rows: slotTensor);
        var hidden = _model.RunForward(tokens, positionTensor, r, _activations,
            (layer, q, _, _, att, _) => _ops.AttentionDecode(att, q, _keyCache[layer], _valueCache[layer], slotTensor, attendTensor, scale),
            cache);
        for (int s = 0; s < r; s++) _lengths[s]++;
        _steps++;
        return Logits(hidden, r);
    }

    private Tensor<float> Logits(Tensor<float> hidden, int rows)
    {
        var logits = _logits.Slice(0, rows, _model.Config.VocabSize); // (R, V)
        _ops.LinearForward(logits, hidden, _model.LmHead, null);
        return logits;
    }

    /// <summary>Frees the caches and buffers.</summary>
    public void Dispose()
    {
        foreach (var t in _keyCache) t?.Dispose();
        foreach (var t in _valueCache) t?.Dispose();
        _activations?.Dispose();
        _logits?.Dispose();
        _lastHidden?.Dispose();
        _slotIds?.Dispose();
        _indices?.Dispose();
    }
}

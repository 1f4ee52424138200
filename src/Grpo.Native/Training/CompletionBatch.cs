using Grpo.Native.Devices;
using Grpo.Native.Models;
using Grpo.Native.Tensors;

namespace Grpo.Native.Training;

/// <summary>
/// N = B·G completions with their prompts, packed for the policy's forward pass: sequence n is
/// prompt n / G followed by completion n (positions from 0, no padding). The completion tokens are
/// also laid out as an (N, T) grid, T the longest completion, with a mask, and for each grid cell the
/// packed row whose hidden state predicts it (the row before the token), so the per-token loss can
/// gather exactly those rows.
/// </summary>
public sealed class CompletionBatch : IDisposable
{
    private CompletionBatch(TokenBatch sequences, Tensor<int> completionTokens, Tensor<float> mask, Tensor<int> predictingRows,
        int[] completionLengths, int longest, float[] hostMask)
    {
        Sequences = sequences;
        CompletionTokens = completionTokens;
        Mask = mask;
        PredictingRows = predictingRows;
        CompletionLengths = completionLengths;
        CompletionSlots = longest;
        _hostMask = hostMask;
    }

    private readonly float[] _hostMask; // (N, T)

    /// <summary>The N packed prompt + completion sequences.</summary>
    public TokenBatch Sequences { get; }

    /// <summary>(N, T) completion token ids; 0 in padding cells.</summary>
    public Tensor<int> CompletionTokens { get; }

    /// <summary>(N, T) 1 for completion tokens, 0 for padding.</summary>
    public Tensor<float> Mask { get; }

    /// <summary>(N·T) the packed row whose hidden state predicts each cell (any valid row for padding).</summary>
    public Tensor<int> PredictingRows { get; }

    /// <summary>N: completions.</summary>
    public int Count => CompletionLengths.Count;

    /// <summary>T: the longest completion (the grid's width).</summary>
    public int CompletionSlots { get; }

    /// <summary>|o_n|: each completion's length.</summary>
    public IReadOnlyList<int> CompletionLengths { get; }

    /// <summary>Σ |o_n|: completion tokens in the batch.</summary>
    public int CompletionTokenCount => CompletionLengths.Sum();

    /// <summary>Σ mask: the completion tokens the loss counts (fewer than <see cref="CompletionTokenCount"/> after <see cref="MaskOut"/>).</summary>
    public int MaskedTokenCount => (int)_hostMask.Sum();

    /// <summary>Leaves the chosen completions out of the loss (their mask becomes 0): DAPO's overlong filtering of truncated completions.</summary>
    /// <param name="exclude">(N) true for each completion to leave out.</param>
    public void MaskOut(IReadOnlyList<bool> exclude)
    {
        ArgumentNullException.ThrowIfNull(exclude);
        if (exclude.Count != Count)
            throw new ArgumentException($"'{nameof(exclude)}' has {exclude.Count} flags but the batch has {Count} completions.", nameof(exclude));
        for (int i = 0; i < Count; i++)
            if (exclude[i]) _hostMask.AsSpan(i * CompletionSlots, CompletionSlots).Clear();
        Mask.CopyFrom(_hostMask);
    }
    /// <summary>Packs prompts and completions on <paramref name="device"/>.</summary>
    /// <param name="device">Where the tensors live.</param>
    /// <param name="prompts">B prompts, each non-empty.</param>
    /// <param name="completions">N = B·G completions; completion n belongs to prompt n / G.</param>
    /// <param name="groupSize">G ≥ 1.</param>
    /// <param name="vocabularySize">Token ids must lie in [0, V).</param>
    /// <param name="maxPositions">Prompt plus completion must fit in the model's context.</param>
    /// <exception cref="ArgumentException">The counts do not match, a sequence is too long or empty, or a token is out of range.</exception>
    public static CompletionBatch Create(Device device, IReadOnlyList<IReadOnlyList<int>> prompts,
        IReadOnlyList<IReadOnlyList<int>> completions, int groupSize, int vocabularySize, int maxPositions)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(completions);
        if (groupSize < 1)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, "'groupSize' (G, completions per prompt) must be at least 1.");
        if (prompts.Count == 0)
            throw new ArgumentException("'prompts' is empty; pass at least one prompt.", nameof(prompts));
        if (completions.Count != prompts.Count * groupSize)
            throw new ArgumentException(
                $"'completions' has {completions.Count} entries but {prompts.Count} prompts × group size {groupSize} = {prompts.Count * groupSize} are needed " +
                "(completion n belongs to prompt n / G).", nameof(completions));
        var promptOfEach = Enumerable.Range(0, completions.Count).Select(i => prompts[i / groupSize]).ToArray();
        return Create(device, promptOfEach, completions, vocabularySize, maxPositions);
    }

    /// <summary>Packs completions, each with its own prompt (a micro-batch cut from a larger batch, say).</summary>
    /// <param name="device">Where the tensors live.</param>
    /// <param name="promptOfEach">(N) the prompt of each completion.</param>
    /// <param name="completions">(N) the completions.</param>
    /// <param name="vocabularySize">Token ids must lie in [0, V).</param>
    /// <param name="maxPositions">Prompt plus completion must fit in the model's context.</param>
    public static CompletionBatch Create(Device device, IReadOnlyList<IReadOnlyList<int>> promptOfEach,
        IReadOnlyList<IReadOnlyList<int>> completions, int vocabularySize, int maxPositions)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(promptOfEach);
        ArgumentNullException.ThrowIfNull(completions);
        if (completions.Count == 0 || promptOfEach.Count != completions.Count)
            throw new ArgumentException(
                $"'{nameof(completions)}' has {completions.Count} entries and '{nameof(promptOfEach)}' {promptOfEach.Count}; pass one prompt per completion, at least one.",
                nameof(completions));
        int n = completions.Count;
        int longest = Math.Max(1, completions.Max(c => c?.Count ?? 0));
        var sequences = new List<IReadOnlyList<int>>(n);
        var lengths = new int[n];
        for (int i = 0; i < n; i++)
        {
            var prompt = promptOfEach[i] ?? throw new ArgumentNullException(nameof(promptOfEach), $"The prompt of completion {i} is null.");
            if (prompt.Count == 0)
                throw new ArgumentException($"The prompt of completion {i} is empty; every prompt needs at least one token (a BOS token, say).", nameof(promptOfEach));
            var completion = completions[i] ?? throw new ArgumentNullException(nameof(completions), $"'completions'[{i}] is null.");
            lengths[i] = completion.Count;
            sequences.Add([.. prompt, .. completion]);
        }

        var tokens = new int[n * longest];    // (N, T)
        var mask = new float[n * longest];    // (N, T)
        var rows = new int[n * longest];      // (N·T)
        var packed = TokenBatch.Create(device, sequences, vocabularySize, maxPositions);
        Tensor<int>? tokenTensor = null, rowTensor = null;
        Tensor<float>? maskTensor = null;
        try
        {
            for (int i = 0; i < n; i++)
            {
                int start = packed.HostStarts[i], promptLength = promptOfEach[i].Count;
                for (int t = 0; t < longest; t++)
                {
                    int cell = i * longest + t;
                    if (t < lengths[i])
                    {
                        tokens[cell] = completions[i][t];
                        mask[cell] = 1;
                        rows[cell] = start + promptLength - 1 + t; // the state after the previous token predicts token t
                    }
                    else rows[cell] = start; // padding: any valid row; its loss is masked out
                }
            }
            tokenTensor = device.FromArray<int>(tokens, n, longest);
            maskTensor = device.FromArray<float>(mask, n, longest);
            rowTensor = device.FromArray<int>(rows, n * longest);
            return new CompletionBatch(packed, tokenTensor, maskTensor, rowTensor, lengths, longest, mask);
        }
        catch
        {
            packed.Dispose(); // out of memory part-way: free what was allocated
            tokenTensor?.Dispose();
            maskTensor?.Dispose();
            rowTensor?.Dispose();
            throw;
        }
    }

    /// <summary>Frees the device tensors.</summary>
    public void Dispose()
    {
        Sequences.Dispose();
        CompletionTokens.Dispose();
        Mask.Dispose();
        PredictingRows.Dispose();
    }
}

using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Grpo.Native.Distributed;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Training;

/// <summary>
/// Data parallelism over an <see cref="ICommunicator"/> of K ranks, each holding the same policy, reference and optimizer:
/// <list type="number">
/// <item>rank r generates and scores prompts [r·B/K, (r+1)·B/K) of every prompt batch (completion rows drawn under their row
/// in the whole batch), and the shares are gathered, so every rank holds the whole batch: advantages, dynamic sampling and
/// every metric are then computed from the same numbers one process would have;</item>
/// <item>rank r runs the micro-batches of its subtree of the <see cref="FixedOrderSum"/> tree, sums their gradients by that
/// tree, and the ranks' sums are added by the same tree over ranks: the additions one process forms over all micro-batches;</item>
/// <item>the micro-batches' losses and statistics are gathered and accumulated in micro-batch order, as one process does;</item>
/// <item>every rank then clips and steps AdamW on the identical gradient, so the weights stay identical without a broadcast.</item>
/// </list>
/// </summary>
public sealed partial class GrpoTrainer
{
    private readonly ICommunicator _communicator;
    private readonly List<Tensor<float>> _treeSums = []; // (P) per tree depth: a left subtree's gradient while the right one runs
    private GradientAllReduce? _gradientAllReduce;      // chosen at the first all-reduce, by every rank together
    private bool _ranksAgreed;

    /// <summary>The ranks this trainer runs with (<see cref="SingleProcess"/> when none was given).</summary>
    public ICommunicator Communicator => _communicator;

    /// <summary>Throws unless <paramref name="options"/> can run on <paramref name="communicator"/>'s ranks (the trainer checks this too).</summary>
    /// <exception cref="ArgumentException">PromptsPerStep is not a multiple of the rank count.</exception>
    public static void CheckDataParallel(GrpoTrainerOptions options, ICommunicator communicator)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(communicator);
        if (options.PromptsPerStep % communicator.Size != 0)
            throw new ArgumentException(
                $"PromptsPerStep (grpo train --prompts) is {options.PromptsPerStep}, not a multiple of the {communicator.Size} ranks: groups never straddle ranks, " +
                $"so each rank needs a whole number of prompts. Use a prompt count divisible by {communicator.Size}, or another rank count.",
                nameof(communicator));
    }

    /// <summary>
    /// Refuses to train when the ranks differ in options, step, weights (policy and reference) or optimizer state, compared by
    /// a SHA-256 digest: a rank started with other arguments or another model would silently train something else.
    /// </summary>
    private void CheckRanksAgree()
    {
        if (_communicator.Size > 1)
        {
            var digests = _communicator.AllGather(StateDigest());
            var differing = Enumerable.Range(1, digests.Length - 1).Where(r => !digests[r].AsSpan().SequenceEqual(digests[0])).ToArray();
            if (differing.Length > 0)
                throw new InvalidOperationException(
                    $"Rank(s) {string.Join(", ", differing)} differ from rank 0 in options, step, model weights or optimizer state; " +
                    "start every rank with the same arguments and the same model and run folders.");
        }
        _ranksAgreed = true;
    }

    private static readonly JsonSerializerOptions DigestJson = new()
    {
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private byte[] StateDigest()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { Options, Step, Optimizer.StepCount, Rewards = _rewards.Select(r => (r.Name, r.Weight)) }, DigestJson)));
        foreach (var tensor in new[] { _policy.Parameters.Buffer, _reference?.Parameters.Buffer, Optimizer.FirstMoment, Optimizer.SecondMoment })
            if (tensor is not null) hash.AppendData(MemoryMarshal.AsBytes(tensor.ToArray().AsSpan()));
        return hash.GetHashAndReset();
    }

    /// <summary>
    /// Leaves in the policy's gradients the sum over micro-batches [lo, hi) as the <see cref="FixedOrderSum"/> tree: a leaf
    /// is one micro-batch's backward from zero, a node its left subtree's gradient + its right subtree's. Zero when empty.
    /// </summary>
    private void SumGradientTree(int lo, int hi, Action<int> runMicroBatch, int depth = 0)
    {
        if (hi - lo <= 1)
        {
            _policy.ZeroGradients();
            if (hi - lo == 1) runMicroBatch(lo);
            return;
        }
        int mid = FixedOrderSum.Split(lo, hi);
        SumGradientTree(lo, mid, runMicroBatch, depth + 1);
        var gradients = _policy.Gradients.Buffer;                                      // (P)
        while (_treeSums.Count <= depth) _treeSums.Add(_policy.Device.Allocate<float>(checked((int)gradients.Length)));
        var left = _treeSums[depth];                                                   // (P)
        left.Fill(0f);
        _policy.Device.Operations.Add(left, left, gradients); // a copy: 0 + g is g
        SumGradientTree(mid, hi, runMicroBatch, depth + 1);
        _policy.Device.Operations.Add(gradients, left, gradients);
    }

    /// <summary>
    /// Every rank's gradient replaced by the sum over ranks: NCCL on CUDA GPUs where every rank has it, else the tree over
    /// ranks through host memory (<see cref="GradientAllReduce.For"/>).
    /// </summary>
    private void SumGradientsAcrossRanks()
    {
        _gradientAllReduce ??= GradientAllReduce.For(_communicator, _policy.Device);
        _gradientAllReduce.Sum(_policy.Gradients.Buffer); // (P)
    }

    /// <summary>Seconds in collectives: the communicator's waits plus a device all-reduce's own time.</summary>
    private double CommunicationSeconds => _communicator.CommunicationSeconds + (_gradientAllReduce?.Seconds ?? 0);

    /// <summary>
    /// Fills the other ranks' rows of one update's objective scalars (this rank's are [first, end)): one read of the rows,
    /// an all-gather, one write back, so every rank's gate and metrics see the whole batch.
    /// </summary>
    /// <param name="objectives">(M, ObjectiveScalars.Count) the update's scalars on the device.</param>
    /// <param name="first">This rank's first micro-batch.</param>
    /// <param name="end">One past its last.</param>
    private void GatherObjectiveScalars(Tensor<float> objectives, int first, int end)
    {
        int width = ObjectiveScalars.Count, calls = objectives.Shape[0];
        float[] rows = objectives.ToArray(); // (M, width)
        var all = _communicator.AllGather(MemoryMarshal.AsBytes(rows.AsSpan(first * width, (end - first) * width)));
        for (int rank = 0; rank < all.Length; rank++)
        {
            var (rankFirst, rankEnd) = FixedOrderSum.RangeOfRank(rank, _communicator.Size, calls);
            var values = MemoryMarshal.Cast<byte, float>(all[rank].AsSpan());
            if (values.Length != (rankEnd - rankFirst) * width)
                throw new InvalidOperationException($"Rank {rank} sent {values.Length} loss values for {rankEnd - rankFirst} micro-batches; the ranks disagree.");
            values.CopyTo(rows.AsSpan(rankFirst * width));
        }
        objectives.CopyFrom(rows);
    }

    /// <summary>The whole batch's rollout and scores from every rank's share (in rank order, i.e. prompt order).</summary>
    private (Rollout Rollout, RewardScores Scores) GatherGeneration(Rollout local, RewardScores scores, IReadOnlyList<int[]> prompts)
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(local.Completions.Length);
            for (int i = 0; i < local.Completions.Length; i++)
            {
                writer.Write(local.Completions[i].Length);
                foreach (int token in local.Completions[i]) writer.Write(token);
                foreach (float logprob in local.Logprobs[i]) writer.Write(logprob);
                writer.Write(local.Truncated[i]);
            }
            foreach (float score in scores.Scores) writer.Write(score);
            foreach (int failures in scores.Failures) writer.Write(failures);
        }
        var completions = new List<int[]>();
        var logprobs = new List<float[]>();
        var truncated = new List<bool>();
        var allScores = new List<float>();
        var allFailures = new int[scores.Failures.Length];
        foreach (var part in _communicator.AllGather(buffer.ToArray()))
        {
            using var reader = new BinaryReader(new MemoryStream(part));
            int rows = reader.ReadInt32();
            for (int i = 0; i < rows; i++)
            {
                int length = reader.ReadInt32();
                completions.Add(Enumerable.Range(0, length).Select(_ => reader.ReadInt32()).ToArray());
                logprobs.Add(Enumerable.Range(0, length).Select(_ => reader.ReadSingle()).ToArray());
                truncated.Add(reader.ReadBoolean());
            }
            for (int k = 0; k < rows * allFailures.Length; k++) allScores.Add(reader.ReadSingle());
            for (int j = 0; j < allFailures.Length; j++) allFailures[j] += reader.ReadInt32();
        }
        if (completions.Count != prompts.Count * Options.GroupSize)
            throw new InvalidOperationException($"The ranks generated {completions.Count} completions for {prompts.Count} prompts x {Options.GroupSize}; they disagree.");
        return (new Rollout(prompts.Select(p => p.ToArray()).ToArray(), completions.ToArray(), logprobs.ToArray(), truncated.ToArray()),
            new RewardScores(allScores.ToArray(), allFailures));
    }

    private void DisposeDataParallel()
    {
        foreach (var sum in _treeSums) sum.Dispose();
        _treeSums.Clear();
        _gradientAllReduce?.Dispose();
    }
}

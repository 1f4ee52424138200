using System.Diagnostics;
using Grpo.Native.Distributed;
using Grpo.Native.Training;
using Spectre.Console;

namespace Grpo.Cli;

/// <summary>
/// The part of every <c>grpo train</c> run that does not depend on where prompts come from: steps until the
/// run's last, each logged to metrics.jsonl, a live progress bar on a terminal or a line every ten steps
/// otherwise, and checkpoints every so many steps and at the end, pruned to the newest complete ones; at the end, the
/// mean time of each phase of a step and the process's peak working set.
/// </summary>
internal static class TrainLoop
{
    /// <summary>How many complete checkpoints a run folder keeps.</summary>
    public const int CheckpointsKept = 2;

    /// <summary>Runs steps until <see cref="GrpoTrainerOptions.TotalSteps"/>.</summary>
    /// <param name="log">metrics.jsonl; null on the ranks other than 0 of a data-parallel run.</param>
    /// <param name="trainOneStep">Draws the next step's prompts and trains on them.</param>
    /// <param name="checkpoint">Saves a checkpoint of the step just finished (rank 0 only, once every rank has finished the step).</param>
    public static void Run(IAnsiConsole console, GrpoTrainer trainer, MetricsLog? log, TextWriter output, int checkpointEvery,
        Func<GrpoStepMetrics> trainOneStep, Action checkpoint)
    {
        var ranks = trainer.Communicator;
        int total = trainer.Options.TotalSteps;
        var steps = new List<GrpoStepMetrics>();
        void RunSteps(Action<GrpoStepMetrics> report)
        {
            while (trainer.Step < total)
            {
                var metrics = trainOneStep();
                steps.Add(metrics);
                log?.Append(metrics);
                report(metrics);
                if (metrics.Step % checkpointEvery == 0 || metrics.Step == total)
                {
                    ranks.Barrier(); // every rank finished the step before its checkpoint is committed
                    if (ranks.Rank == 0) checkpoint();
                }
            }
        }

        if (console.Profile.Capabilities.Interactive)
        {
            console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(context =>
                {
                    var bar = context.AddTask("training", maxValue: total);
                    bar.Value = trainer.Step;
                    RunSteps(m =>
                    {
                        bar.Description = $"step {m.Step}/{total}  reward {m.Reward:F3}  len {m.MeanLength:F1}  kl {m.Kl:F4}";
                        bar.Value = m.Step;
                    });
                });
        }
        else
        {
            // Redirected output (CI, a log file): a plain line every tenth step instead of a redrawn bar.
            RunSteps(m =>
            {
                if (m.Step % 10 == 0 || m.Step == total)
                    output.WriteLine($"step {m.Step}/{total}  reward {m.Reward:F3}  reward_std {m.RewardStd:F3}  " +
                                      $"len {m.MeanLength:F1}  entropy {m.Entropy:F3}  kl {m.Kl:F4}  {m.StepTime * 1000:F0} ms");
            });
        }
        if (steps.Count > 0) output.WriteLine(PhaseSummary(steps));
    }

    /// <summary>
    /// One line: the mean seconds per step of each phase (the first step included, so on a GPU kernel compilation too) and
    /// the peak working set (Linux: VmHWM) of the whole process so far, loading and checkpoints included.
    /// </summary>
    public static string PhaseSummary(IReadOnlyList<GrpoStepMetrics> steps)
    {
        string Mean(Func<GrpoStepMetrics, double> pick) => $"{steps.Average(pick):F3} s";
        return $"time per step (mean of {steps.Count}): rollout {Mean(m => m.Phases.Rollout)}, rewards {Mean(m => m.Phases.Rewards)}, " +
               $"reference/old log-probs {Mean(m => m.Phases.ReferenceLogprobs)}, policy forward+backward {Mean(m => m.Phases.PolicyForwardBackward)}, " +
               $"optimizer {Mean(m => m.Phases.Optimizer)}, whole step {Mean(m => m.StepTime)}; " +
               $"peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / (double)(1 << 30):F2} GiB";
    }

    /// <summary>
    /// Saves the trainer's checkpoint for its current step, then lets <paramref name="completeModelFolder"/> add files
    /// to its model/ folder (the tokenizer, say; each written atomically), then keeps the newest few complete
    /// checkpoints and removes older ones and leftovers of interrupted saves.
    /// </summary>
    public static string Checkpoint(GrpoTrainer trainer, string runFolder, Action<string> completeModelFolder)
    {
        string folder = GrpoCheckpoint.FolderFor(runFolder, trainer.Step);
        GrpoCheckpoint.Save(trainer, folder);
        completeModelFolder(Path.Combine(folder, GrpoCheckpoint.ModelFolderName));
        // Only now that the new one is complete.
        var all = Directory.GetDirectories(runFolder, "checkpoint-*")
            .Select(d => (Folder: d, Step: int.TryParse(Path.GetFileName(d)["checkpoint-".Length..], out int n) ? n : -1))
            .Where(x => x.Step >= 0 && x.Step <= trainer.Step).OrderByDescending(x => x.Step).ToList();
        var kept = all.Where(x => File.Exists(Path.Combine(x.Folder, GrpoCheckpoint.StateFileName))).Take(CheckpointsKept)
            .Select(x => x.Folder).ToHashSet();
        foreach (var (oldFolder, _) in all.Where(x => !kept.Contains(x.Folder))) Directory.Delete(oldFolder, recursive: true);
        return folder;
    }
}

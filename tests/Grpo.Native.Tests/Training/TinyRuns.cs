using Grpo.Native.Tasks;
using Grpo.Native.Training;

namespace Grpo.Native.Tests.Training;

/// <summary>The small GRPO set-up the trainer tests share: the built-in reverse task, 4 prompts × 4 completions.</summary>
internal static class TinyRuns
{
    public static readonly StringTransformTask Reverse = StringTransformTask.Get("reverse");

    public static GrpoTrainerOptions Options(int seed = 3) => new()
    {
        GroupSize = 4, PromptsPerStep = 4, MaxPromptLength = Reverse.MaxPromptLength, MaxCompletionLength = Reverse.MaxCompletionLength,
        StopTokens = [Reverse.Tokenizer.Eos], LearningRate = 1e-3f, TotalSteps = 50, MicroBatchSize = 16, Seed = seed,
    };

    /// <summary>The prompts of <paramref name="step"/>, as a run draws them.</summary>
    public static int[][] Prompts(GrpoTrainerOptions o, int step) =>
        Reverse.TrainingWords(o.Seed, step, o.PromptsPerStep).Select(Reverse.PromptTokens).ToArray();

    /// <summary>The task's reward is nearly always 0 for an untrained policy; this one varies, so every step has a gradient.</summary>
    public static readonly RewardFunction Varied = RewardFunction.Create("varied", input => input.CompletionTokens.Count % 3);
}

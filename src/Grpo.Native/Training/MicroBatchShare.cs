using Grpo.Native.Operations;

namespace Grpo.Native.Training;

/// <summary>
/// How a micro-batch's loss enters the step's loss when a batch of completions is split into M micro-batches
/// whose gradients accumulate, exactly as TRL's <c>GRPOTrainer._compute_loss</c> composes them. Each micro-batch's
/// objective aggregates over that micro-batch alone (its own completions, its own mask sum); the step's loss is
/// Σ_mb share_mb · loss_mb with
/// <list type="bullet">
/// <item><c>dapo</c>, <c>cispo</c>: the micro-batch's masked tokens / the whole batch's (TRL normalises by
/// <c>num_items_in_batch</c>, the token count of the whole accumulated batch), so the result is the batch's token mean;</item>
/// <item><c>grpo</c>, <c>sapo</c>, <c>bnpo</c>, <c>dr_grpo</c>: 1 / M (TRL divides each micro-batch's own mean by
/// <c>current_gradient_accumulation_steps</c>). For <c>bnpo</c> that is the mean over micro-batches of each one's
/// token mean, which differs from <c>dapo</c> when micro-batches hold different numbers of tokens; for <c>grpo</c>,
/// <c>sapo</c> and <c>dr_grpo</c> it equals the whole batch's value when the micro-batches are of equal size.</item>
/// </list>
/// </summary>
public static class MicroBatchShare
{
    /// <summary>The weight of one micro-batch's loss (and gradient) in the step's.</summary>
    /// <param name="lossType">The aggregation.</param>
    /// <param name="microBatchTokens">Masked completion tokens of this micro-batch.</param>
    /// <param name="totalTokens">Masked completion tokens of the whole batch.</param>
    /// <param name="microBatchCount">M, the number of micro-batches of the step.</param>
    public static float Of(LossType lossType, int microBatchTokens, int totalTokens, int microBatchCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(microBatchCount, 1);
        return lossType switch
        {
            LossType.Dapo or LossType.Cispo => totalTokens == 0 ? 0f : (float)microBatchTokens / totalTokens,
            _ => 1f / microBatchCount,
        };
    }
}

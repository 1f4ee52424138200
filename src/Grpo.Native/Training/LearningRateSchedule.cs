namespace Grpo.Native.Training;

/// <summary>The shape of a <see cref="LearningRateSchedule"/>.</summary>
public enum LearningRateScheduleKind
{
    /// <summary>The peak learning rate at every step (no warmup).</summary>
    Constant,

    /// <summary>Linear from 0 to the peak over the warmup steps, then constant (HF get_constant_schedule_with_warmup).</summary>
    LinearWarmup,

    /// <summary>Linear warmup, then cosine decay to MinRatio·peak at TotalSteps (HF get_cosine_schedule_with_warmup / ..._with_min_lr).</summary>
    Cosine,

    /// <summary>Linear warmup, then linear decay to 0 at TotalSteps (HF get_linear_schedule_with_warmup).</summary>
    LinearDecay,
}

/// <summary>
/// A host-side learning-rate schedule with Hugging Face transformers semantics; <see cref="At"/> takes
/// the 0-based count of optimizer steps already taken (HF's scheduler step).
/// </summary>
/// <param name="Kind">The shape.</param>
/// <param name="PeakLearningRate">The learning rate after warmup; finite and >= 0.</param>
/// <param name="TotalSteps">Optimizer steps in the run; > 0.</param>
/// <param name="WarmupSteps">Steps of linear warmup; in [0, TotalSteps]. Ignored by <see cref="LearningRateScheduleKind.Constant"/>.</param>
/// <param name="MinRatio">Cosine only: the final learning rate as a fraction of the peak; in [0, 1].</param>
public sealed record LearningRateSchedule(
    LearningRateScheduleKind Kind, float PeakLearningRate, int TotalSteps, int WarmupSteps = 0, float MinRatio = 0f)
{
    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the first field that is out of range.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Kind))
            throw new ArgumentOutOfRangeException(nameof(Kind), Kind, $"'{nameof(Kind)}' must be Constant, LinearWarmup, Cosine or LinearDecay.");
        if (!(float.IsFinite(PeakLearningRate) && PeakLearningRate >= 0))
            throw new ArgumentOutOfRangeException(nameof(PeakLearningRate), PeakLearningRate, $"'{nameof(PeakLearningRate)}' must be finite and >= 0.");
        if (TotalSteps <= 0)
            throw new ArgumentOutOfRangeException(nameof(TotalSteps), TotalSteps, $"'{nameof(TotalSteps)}' must be > 0: the number of optimizer steps in the run.");
        if (WarmupSteps < 0 || WarmupSteps > TotalSteps)
            throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, $"'{nameof(WarmupSteps)}' must be in [0, {nameof(TotalSteps)} = {TotalSteps}].");
        if (!(MinRatio >= 0 && MinRatio <= 1))
            throw new ArgumentOutOfRangeException(nameof(MinRatio), MinRatio, $"'{nameof(MinRatio)}' must be in [0, 1]: the final learning rate as a fraction of the peak.");
    }

    /// <summary>
    /// The learning rate after <paramref name="step"/> optimizer steps (0-based). Past TotalSteps the
    /// decaying schedules stay at their final value.
    /// </summary>
    /// <param name="step">Steps already taken; >= 0.</param>
    public float At(int step)
    {
        Validate();
        if (step < 0)
            throw new ArgumentOutOfRangeException(nameof(step), step, $"'{nameof(step)}' counts the optimizer steps taken so far and must be >= 0.");
        return (float)(PeakLearningRate * Factor(step));
    }

    private double Factor(int step)
    {
        if (Kind == LearningRateScheduleKind.Constant) return 1;
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        // Clamped at 1 so the cosine does not climb back up past TotalSteps.
        double progress = Math.Min(1.0, (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps));
        return Kind switch
        {
            LearningRateScheduleKind.LinearWarmup => 1,
            LearningRateScheduleKind.LinearDecay => 1 - progress,
            _ => MinRatio + (1 - MinRatio) * 0.5 * (1 + Math.Cos(Math.PI * progress)),
        };
    }
}

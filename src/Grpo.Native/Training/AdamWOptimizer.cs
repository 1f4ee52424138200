using Grpo.Native.Devices;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Training;

/// <summary>
/// AdamW over a model's one parameter buffer: the two moments are buffers of the same length, so
/// one kernel launch updates every parameter (llm.c's layout). Keeps the step count for the bias
/// correction; the moments and the step are what a checkpoint must save to resume exactly.
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    private readonly IGrpoOperations _ops;

    /// <summary>Allocates zeroed moments for <paramref name="parameterCount"/> parameters.</summary>
    public AdamWOptimizer(Device device, long parameterCount, AdamWOptions options)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (parameterCount < 1 || parameterCount > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(parameterCount), parameterCount, "Pass the model's parameter count (1 to 2^31 − 1).");
        _ops = device.Operations;
        Options = options;
        FirstMoment = device.Allocate<float>((int)parameterCount);
        SecondMoment = device.Allocate<float>((int)parameterCount);
        FirstMoment.Fill(0f);
        SecondMoment.Fill(0f);
    }

    /// <summary>β1, β2, ε and the weight decay.</summary>
    public AdamWOptions Options { get; }

    /// <summary>Updates taken so far (t of the bias correction is StepCount + 1 for the next one).</summary>
    public int StepCount { get; private set; }

    /// <summary>(P) first moment m.</summary>
    public Tensor<float> FirstMoment { get; }

    /// <summary>(P) second moment v.</summary>
    public Tensor<float> SecondMoment { get; }

    /// <summary>One AdamW update of <paramref name="parameters"/> with <paramref name="gradients"/> at <paramref name="learningRate"/>.</summary>
    /// <param name="parameters">(P) parameters, updated in place.</param>
    /// <param name="gradients">(P) gradients (already clipped, if clipping is on).</param>
    /// <param name="learningRate">This step's learning rate.</param>
    /// <param name="gate">
    /// Optional (<see cref="UpdateGateSlots.Count"/>) gate from <see cref="IGrpoOperations.UpdateGate"/>, read on the device:
    /// the gradients are multiplied by its clip factor, and a refused update changes nothing. The step count advances either
    /// way, since the host does not know yet; once it has read the gate, a caller whose update was refused calls
    /// <see cref="RestoreStepCount"/>.
    /// </param>
    public void Step(Tensor<float> parameters, Tensor<float> gradients, float learningRate, Tensor<float>? gate = null)
    {
        _ops.AdamWStep(parameters, gradients, FirstMoment, SecondMoment, StepCount + 1, learningRate, Options, gate);
        StepCount++;
    }

    /// <summary>Restores the step count (when resuming; the moments are restored by copying into them).</summary>
    /// <param name="stepCount">Updates already taken; ≥ 0.</param>
    public void RestoreStepCount(int stepCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        StepCount = stepCount;
    }

    /// <summary>Frees the moments.</summary>
    public void Dispose()
    {
        FirstMoment.Dispose();
        SecondMoment.Dispose();
    }
}

using Grpo.Kernels;
using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

/// <summary>Hyper-parameters of <see cref="IGrpoOperations.AdamWStep"/>, with PyTorch's torch.optim.AdamW defaults.</summary>
public sealed record AdamWOptions
{
    /// <summary>Decay rate of the first moment (mean of the gradients); in [0, 1).</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>Decay rate of the second moment (mean of the squared gradients); in [0, 1).</summary>
    public float Beta2 { get; init; } = 0.999f;

    /// <summary>Added to the bias-corrected root second moment before dividing; finite and >= 0.</summary>
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>Decoupled weight decay: every step multiplies the parameters by 1 − lr·WeightDecay; finite and >= 0.</summary>
    public float WeightDecay { get; init; } = 0.01f;

    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the first field that is out of range.</summary>
    public void Validate()
    {
        if (!(Beta1 >= 0 && Beta1 < 1))
            throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, $"'{nameof(Beta1)}' must be in [0, 1); 0.9 is the usual value.");
        if (!(Beta2 >= 0 && Beta2 < 1))
            throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, $"'{nameof(Beta2)}' must be in [0, 1); 0.999 or 0.95 are usual values.");
        if (!(float.IsFinite(Epsilon) && Epsilon >= 0))
            throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, $"'{nameof(Epsilon)}' must be finite and >= 0; 1e-8 is the usual value.");
        if (!(float.IsFinite(WeightDecay) && WeightDecay >= 0))
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, $"'{nameof(WeightDecay)}' must be finite and >= 0; use 0 for no decay.");
    }
}

public partial interface IGrpoOperations
{
    /// <summary>
    /// Σ x_i² over every element (for the global gradient norm), in a deterministic order: fp32
    /// partial sums over fixed blocks of <see cref="OptimizerValidation.SumOfSquaresBlock"/> elements,
    /// then the block sums added in order in double on the host. The result does not depend on the
    /// thread count. Reads the result back, so on an asynchronous device it synchronises.
    /// </summary>
    /// <param name="values">(P) the values, any shape (read as flat).</param>
    /// <returns>The sum of squares in double.</returns>
    double SumOfSquares(Tensor<float> values);

    /// <summary>In place: values *= scale (gradient clipping).</summary>
    /// <param name="values">(P) the values, any shape; overwritten.</param>
    /// <param name="scale">The factor; finite.</param>
    void Scale(Tensor<float> values, float scale);

    /// <summary>
    /// One AdamW step over all parameters held in one contiguous buffer (llm.c style), with exactly
    /// PyTorch's torch.optim.AdamW order of operations:
    /// p ← p·(1 − lr·wd); m ← m + (1 − β1)(g − m); v ← β2·v + (1 − β2)·g²;
    /// p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε).
    /// </summary>
    /// <param name="parameters">(P) parameters, updated in place.</param>
    /// <param name="gradients">(P) gradients, same shape; read only.</param>
    /// <param name="firstMoment">(P) first moment m, same shape; zero before step 1; updated in place.</param>
    /// <param name="secondMoment">(P) second moment v, same shape; zero before step 1; updated in place.</param>
    /// <param name="step">t, the 1-based step number (for the bias correction).</param>
    /// <param name="learningRate">lr for this step; finite and >= 0.</param>
    /// <param name="options">β1, β2, ε and the weight decay.</param>
    /// <param name="gate">
    /// Optional (<see cref="UpdateGateSlots.Count"/>) gate from <see cref="UpdateGate"/>, read on the device: when its apply
    /// slot is 0 nothing changes (parameters and moments keep their bits), otherwise every gradient is first multiplied by its
    /// factor, one rounding, exactly as clipping the gradients in place with <see cref="Scale"/> would. Null: no gate.
    /// </param>
    /// <exception cref="ArgumentException">A shape, the step, the learning rate or an option is not acceptable; the message names it.</exception>
    void AdamWStep(Tensor<float> parameters, Tensor<float> gradients, Tensor<float> firstMoment, Tensor<float> secondMoment,
        int step, float learningRate, AdamWOptions options, Tensor<float>? gate = null);

    /// <summary>
    /// Decides on the device whether an optimizer update applies and how its gradients are clipped, so the host reads neither
    /// the gradient norm nor the loss back before it (PyTorch's clip_grad_norm_ and a finite-loss check, without the sync).
    /// Writes <paramref name="gate"/>: the clip factor maxNorm / (norm + 1e-6) when the global norm exceeds
    /// <paramref name="maxNorm"/> (1 otherwise); apply = 1 only when the previous gate applied, no objective call reported a
    /// bad input, the loss Σ share·loss (float, in order) is finite and Σ g² (the block sums of <see cref="SumOfSquares"/>
    /// added in order in double) is finite; the norm √Σ g² rounded to float; and that loss. Every value equals what the host
    /// computes from <see cref="SumOfSquares"/> and the calls' results, bit for bit.
    /// </summary>
    /// <param name="gradients">(P) the update's gradients.</param>
    /// <param name="objectiveScalars">(M, <see cref="ObjectiveScalars.Count"/>) the scalars of the update's objective calls (<see cref="GrpoObjectiveToDevice"/>).</param>
    /// <param name="shares">(M) each call's share of the loss; 0 marks a call that did not run (its row is not read).</param>
    /// <param name="maxNorm">The largest allowed global norm, finite and &gt; 0, or +∞ for no clipping.</param>
    /// <param name="previousGate">(<see cref="UpdateGateSlots.Count"/>) the gate of the step's previous update, or null for its first: once an update is refused, the rest of the step's are too.</param>
    /// <param name="gate">(<see cref="UpdateGateSlots.Count"/>) output.</param>
    /// <exception cref="ArgumentException">A shape or <paramref name="maxNorm"/> is not acceptable; the message names it.</exception>
    void UpdateGate(Tensor<float> gradients, Tensor<float> objectiveScalars, Tensor<float> shares, float maxNorm,
        Tensor<float>? previousGate, Tensor<float> gate);
}

/// <summary>The slots of an update gate (<see cref="IGrpoOperations.UpdateGate"/>), as the device writes them.</summary>
public static class UpdateGateSlots
{
    /// <summary>The factor every gradient is multiplied by (the clip); 1 when the norm is within the limit.</summary>
    public const int Scale = OptimizerKernels.GateScale;

    /// <summary>1 when the update applies, 0 when it changes nothing.</summary>
    public const int Apply = OptimizerKernels.GateApply;

    /// <summary>The global gradient norm before clipping.</summary>
    public const int Norm = OptimizerKernels.GateNorm;

    /// <summary>The update's loss, Σ share·loss over its objective calls.</summary>
    public const int Loss = OptimizerKernels.GateLoss;

    /// <summary>Floats per gate.</summary>
    public const int Count = OptimizerKernels.GateCount;
}

/// <summary>Per-step scalars of AdamW, computed once on the host in double.</summary>
/// <param name="Beta1">β1.</param>
/// <param name="Beta2">β2.</param>
/// <param name="Epsilon">ε.</param>
/// <param name="DecayFactor">1 − lr·wd.</param>
/// <param name="StepSize">lr / (1 − β1^t).</param>
/// <param name="BiasCorrection2Sqrt">√(1 − β2^t).</param>
internal readonly record struct AdamWScalars(
    float Beta1, float Beta2, float Epsilon, float DecayFactor, float StepSize, float BiasCorrection2Sqrt);

/// <summary>Argument checks for the optimizer operations, shared by both backends.</summary>
internal static class OptimizerValidation
{
    /// <summary>Elements per fp32 partial sum of <see cref="IGrpoOperations.SumOfSquares"/>; fixed so the order never changes.</summary>
    public const int SumOfSquaresBlock = 4096;

    /// <summary>Checks the tensor; returns the number of blocks.</summary>
    public static int SumOfSquares(Device device, Tensor<float> values)
    {
        Guard.OnDevice(values, device, nameof(values));
        return (int)((values.Length + SumOfSquaresBlock - 1) / SumOfSquaresBlock);
    }

    /// <summary>Checks the update gate's arguments; returns M, the number of objective calls.</summary>
    public static int UpdateGate(Device device, Tensor<float> gradients, Tensor<float> objectiveScalars, Tensor<float> shares,
        float maxNorm, Tensor<float>? previousGate, Tensor<float> gate)
    {
        Guard.OnDevice(gradients, device, nameof(gradients));
        Guard.OnDevice(shares, device, nameof(shares));
        Guard.Rank(shares, nameof(shares), 1, "(M) one share per objective call");
        int calls = shares.Shape[0];
        Guard.OnDevice(objectiveScalars, device, nameof(objectiveScalars));
        Guard.Shape(objectiveScalars, nameof(objectiveScalars), calls, ObjectiveScalars.Count);
        if (previousGate is not null)
        {
            Guard.OnDevice(previousGate, device, nameof(previousGate));
            Guard.Shape(previousGate, nameof(previousGate), UpdateGateSlots.Count);
        }
        Guard.OnDevice(gate, device, nameof(gate));
        Guard.Shape(gate, nameof(gate), UpdateGateSlots.Count);
        if (!(maxNorm > 0)) // NaN fails too
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, $"'{nameof(maxNorm)}' must be > 0 (1.0 is usual), or +∞ for no clipping.");
        return calls;
    }

    /// <summary>Checks the tensor and the factor.</summary>
    public static void Scale(Device device, Tensor<float> values, float scale)
    {
        Guard.OnDevice(values, device, nameof(values));
        Guard.Finite(scale, nameof(scale), "clip with a finite factor.");
    }

    /// <summary>Checks every argument; returns the step's scalars.</summary>
    public static AdamWScalars AdamW(Device device, Tensor<float> parameters, Tensor<float> gradients,
        Tensor<float> firstMoment, Tensor<float> secondMoment, int step, float learningRate, AdamWOptions options, Tensor<float>? gate)
    {
        if (gate is not null)
        {
            Guard.OnDevice(gate, device, nameof(gate));
            Guard.Shape(gate, nameof(gate), UpdateGateSlots.Count);
        }
        Guard.OnDevice(parameters, device, nameof(parameters));
        SameShape(device, gradients, nameof(gradients), parameters);
        SameShape(device, firstMoment, nameof(firstMoment), parameters);
        SameShape(device, secondMoment, nameof(secondMoment), parameters);
        if (step < 1)
            throw new ArgumentOutOfRangeException(nameof(step), step, $"'{nameof(step)}' is the 1-based step number t; pass 1 for the first step.");
        if (!(float.IsFinite(learningRate) && learningRate >= 0))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, $"'{nameof(learningRate)}' must be finite and >= 0.");
        ArgumentNullException.ThrowIfNull(options, nameof(options));
        options.Validate();
        double lr = learningRate;
        return new AdamWScalars(options.Beta1, options.Beta2, options.Epsilon,
            (float)(1 - lr * options.WeightDecay),
            (float)(lr / (1 - Math.Pow(options.Beta1, step))),
            (float)Math.Sqrt(1 - Math.Pow(options.Beta2, step)));
    }

    private static void SameShape(Device device, Tensor<float> tensor, string argumentName, Tensor<float> parameters)
    {
        Guard.OnDevice(tensor, device, argumentName);
        if (!tensor.Shape.Equals(parameters.Shape))
            throw new ArgumentException(
                $"'{argumentName}' has shape {tensor.Shape} but '{nameof(parameters)}' has shape {parameters.Shape}; every optimizer tensor must match the parameters.",
                argumentName);
    }
}

/// <summary>Global gradient-norm clipping, PyTorch's torch.nn.utils.clip_grad_norm_.</summary>
public static class GradientClipping
{
    /// <summary>
    /// Computes the L2 norm of every gradient (one contiguous buffer) and, when it exceeds
    /// <paramref name="maxNorm"/>, scales the gradients by maxNorm / (norm + 1e-6). Below the limit
    /// the gradients are left untouched (bit-identical).
    /// </summary>
    /// <param name="ops">The backend.</param>
    /// <param name="gradients">(P) gradients; scaled in place when clipped.</param>
    /// <param name="maxNorm">The largest allowed norm; finite and > 0.</param>
    /// <returns>The norm before clipping.</returns>
    /// <exception cref="ArgumentException">The norm is NaN or infinite (skip this step), or <paramref name="maxNorm"/> is not acceptable.</exception>
    public static float ClipGlobalNorm(IGrpoOperations ops, Tensor<float> gradients, float maxNorm)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (!(float.IsFinite(maxNorm) && maxNorm > 0))
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, $"'{nameof(maxNorm)}' must be finite and > 0; 1.0 is usual.");
        double norm = Math.Sqrt(ops.SumOfSquares(gradients));
        if (!double.IsFinite(norm))
            throw new ArgumentException(
                $"'{nameof(gradients)}' has a non-finite global norm ({norm}); a gradient holds NaN or infinity, so skip this optimizer step.",
                nameof(gradients));
        if (norm > maxNorm)
            ops.Scale(gradients, (float)(maxNorm / (norm + 1e-6)));
        return (float)norm;
    }
}

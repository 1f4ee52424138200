using Grpo.Native.Checkpoints;

namespace Grpo.Native.Models;

/// <summary>
/// Counts the floating-point operations of the model's passes, to turn timings into GFLOP/s.
/// A multiply-add is 2 flops. Per token: the linear layers, 2 · (weights they touch); attention,
/// 4 · H · D per visible key (scores and the weighted sum of values); the LM head, 2 · V · C.
/// The backward costs twice the forward for every product (input and weight gradients), the usual
/// convention, so a training step is 3 × the forward.
/// </summary>
public static class TransformerCost
{
    /// <summary>Forward flops over sequences of the given lengths, LM head over every token included.</summary>
    public static double ForwardFlops(ModelConfig config, IEnumerable<int> sequenceLengths)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(sequenceLengths);
        double c = config.HiddenSize, i = config.IntermediateSize, v = config.VocabSize;
        double qDim = config.NumHeads * config.HeadDim, kvDim = config.NumKeyValueHeads * config.HeadDim;
        double mlpMatrices = config.ModelType == "gpt2" ? 2 : 3;
        double linearPerToken = 2 * (c * qDim + 2 * c * kvDim + qDim * c + mlpMatrices * c * i);
        double flops = 0;
        foreach (int length in sequenceLengths)
        {
            double visibleKeys = length * (length + 1) / 2.0; // Σ_t (t + 1): causal
            flops += config.NumLayers * (length * linearPerToken + 4 * qDim * visibleKeys) + length * 2 * v * c;
        }
        return flops;
    }

    /// <summary>Forward + backward flops (3 × forward).</summary>
    public static double TrainingFlops(ModelConfig config, IEnumerable<int> sequenceLengths) => 3 * ForwardFlops(config, sequenceLengths);
}

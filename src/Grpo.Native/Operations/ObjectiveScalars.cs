using Grpo.Kernels;
using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

/// <summary>
/// The scalars one GRPO objective call leaves on the device (<see cref="IGrpoOperations.GrpoObjectiveToDevice"/>), one row
/// of <see cref="Count"/> floats in the ILGPU kernels' layout, and how the host turns a row it read back into a result or
/// into the error a bad input deserves. Both backends write the result slots and the input-check slots; the other slots are
/// the ILGPU kernels' working totals (the managed backend leaves them NaN).
/// </summary>
public static class ObjectiveScalars
{
    /// <summary>Floats per call.</summary>
    public const int Count = ObjectiveKernels.ScalarCount;

    /// <summary>The result the row reports; call <see cref="ThrowOnBadInputs"/> first when its inputs may have been refused.</summary>
    /// <param name="row">(Count) one call's scalars.</param>
    public static GrpoObjectiveResult Decode(ReadOnlySpan<float> row)
    {
        CheckLength(row.Length);
        return new GrpoObjectiveResult(row[ObjectiveKernels.ResultLoss], row[ObjectiveKernels.ResultLow],
            row[ObjectiveKernels.ResultHigh], row[ObjectiveKernels.ResultRegion], row[ObjectiveKernels.ResultKl],
            row[ObjectiveKernels.ResultDual], row[ObjectiveKernels.ResultCispo], row[ObjectiveKernels.ResultEntropy]);
    }

    /// <summary>Writes a result computed on the host as a row that reports no bad input (the managed backend's).</summary>
    /// <param name="result">The call's result.</param>
    /// <param name="row">(Count) output.</param>
    internal static void Encode(GrpoObjectiveResult result, Span<float> row)
    {
        CheckLength(row.Length);
        row.Fill(float.NaN);
        row[ObjectiveKernels.ResultLoss] = result.Loss;
        row[ObjectiveKernels.ResultLow] = result.ClipRatioLow;
        row[ObjectiveKernels.ResultHigh] = result.ClipRatioHigh;
        row[ObjectiveKernels.ResultRegion] = result.ClipRatioRegion;
        row[ObjectiveKernels.ResultKl] = result.MeanKl;
        row[ObjectiveKernels.ResultDual] = result.DualClipRatio;
        row[ObjectiveKernels.ResultCispo] = result.CispoClipRatio;
        row[ObjectiveKernels.ResultEntropy] = result.MeanEntropy;
        row[ObjectiveKernels.TotalBadMask] = 0;
        row[ObjectiveKernels.TotalBadOld] = 0;
        row[ObjectiveKernels.FirstBadAdvantageRow] = float.PositiveInfinity; // +∞: none
        row[ObjectiveKernels.TotalBadEntropy] = 0;
    }

    /// <summary>True when the row reports an input the objective refuses (a bad mask value, old log-prob, advantage or masking entropy).</summary>
    /// <param name="row">(Count) one call's scalars.</param>
    public static bool ReportsBadInput(ReadOnlySpan<float> row) =>
        row[ObjectiveKernels.TotalBadMask] > 0 || row[ObjectiveKernels.TotalBadOld] > 0 || float.IsFinite(row[ObjectiveKernels.FirstBadAdvantageRow])
        || row[ObjectiveKernels.TotalBadEntropy] > 0;

    /// <summary>
    /// Raises the error the managed backend raises before its work when the row reports a bad input, in its order:
    /// advantages, old log-probs, entropies (under entropy masking), mask. Only an error reads the offending value back (a bad
    /// entropy's value comes with the row).
    /// </summary>
    /// <param name="row">(Count) one call's scalars.</param>
    /// <param name="advantages">(N) the call's advantages.</param>
    /// <param name="oldLogprobs">(N, T) the call's old log-probs, or null (the value is then reported as NaN).</param>
    /// <param name="tokensPerCompletion">T.</param>
    public static void ThrowOnBadInputs(ReadOnlySpan<float> row, Tensor<float> advantages, Tensor<float>? oldLogprobs, int tokensPerCompletion)
    {
        CheckLength(row.Length);
        if (float.IsFinite(row[ObjectiveKernels.FirstBadAdvantageRow]))
        {
            int bad = (int)row[ObjectiveKernels.FirstBadAdvantageRow];
            throw GrpoObjectiveValidation.NonFiniteAdvantage(bad, advantages.ToArray()[bad]);
        }
        if (row[ObjectiveKernels.TotalBadOld] > 0)
        {
            int bad = (int)row[ObjectiveKernels.FirstBadOldRow], column = (int)row[ObjectiveKernels.FirstBadOldColumn];
            float value = oldLogprobs is null ? float.NaN : oldLogprobs.ToArray()[bad * tokensPerCompletion + column];
            throw GrpoObjectiveValidation.NonFiniteOldLogprob(bad, column, value);
        }
        if (row[ObjectiveKernels.TotalBadEntropy] > 0)
            throw GrpoObjectiveValidation.NonFiniteEntropy((int)row[ObjectiveKernels.FirstBadEntropyRow],
                (int)row[ObjectiveKernels.FirstBadEntropyColumn], row[ObjectiveKernels.FirstBadEntropyValue]);
        if (row[ObjectiveKernels.TotalBadMask] > 0)
            throw GrpoObjectiveValidation.BadMask((long)row[ObjectiveKernels.TotalBadMask], (int)row[ObjectiveKernels.FirstBadRow]);
    }

    private static void CheckLength(int length)
    {
        if (length != Count)
            throw new ArgumentException($"An objective's scalars are {Count} floats, not {length}.", "row");
    }
}

namespace Grpo.Native.References;

/// <summary>
/// Embedding lookup, in double, straight from the definition: y[m, c] = table[ids[m], c]
/// (+ positionTable[positions[m], c]). Backward (fresh gradients): dTable[v, c] = Σ_{m: ids[m] = v} dy[m, c]
/// and dPositionTable[p, c] = Σ_{m: positions[m] = p} dy[m, c]. Layouts: table (V, C), positionTable (P, C), y (M, C).
/// </summary>
public static class EmbeddingReference
{
    /// <summary>The forward: output (M, C); <paramref name="positions"/> and <paramref name="positionTable"/> may be null.</summary>
    public static double[] Forward(int[] ids, double[] table, int[]? positions, double[]? positionTable, int c)
    {
        int m = ids.Length;
        var output = new double[m * c];
        for (int row = 0; row < m; row++)
            for (int channel = 0; channel < c; channel++)
            {
                double value = table[ids[row] * c + channel];
                if (positionTable is not null) value += positionTable[positions![row] * c + channel];
                output[row * c + channel] = value;
            }
        return output;
    }

    /// <summary>The gradient of a table with <paramref name="rows"/> rows indexed by <paramref name="indices"/>: (rows, C).</summary>
    public static double[] Backward(int[] indices, double[] dOutput, int rows, int c)
    {
        var dTable = new double[rows * c];
        for (int row = 0; row < indices.Length; row++)
            for (int channel = 0; channel < c; channel++)
                dTable[indices[row] * c + channel] += dOutput[row * c + channel];
        return dTable;
    }

    /// <summary>L = Σ weights ⊙ output, for finite differences.</summary>
    public static double WeightedLoss(int[] ids, double[] table, int[]? positions, double[]? positionTable, int c, double[] weights)
    {
        var output = Forward(ids, table, positions, positionTable, c);
        double loss = 0;
        for (int i = 0; i < output.Length; i++) loss += weights[i] * output[i];
        return loss;
    }
}

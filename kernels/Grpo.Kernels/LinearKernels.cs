using ILGPU;

namespace Grpo.Kernels;

/// <summary>
/// The bias parts of the linear layer; the products themselves are <see cref="MatmulKernels.Matmul"/>.
/// The bias gradient is a column sum over up to thousands of rows, done in two deterministic passes
/// without atomics: fixed blocks of <see cref="BiasRowBlock"/> rows give partial sums, which are
/// then added block after block. The order depends only on the sizes, never on the device.
/// </summary>
public static class LinearKernels
{
    /// <summary>Rows one thread of <see cref="BiasPartialSums"/> sums.</summary>
    public const int BiasRowBlock = 64;

    /// <summary>output[m, n] = bias[n]: the starting value the forward's product is accumulated onto.</summary>
    /// <param name="index">Thread i of <paramref name="threads"/>: elements i, i + threads, … of the flat (M·N) output.
    /// One flat dimension, not (N, M): CUDA's grid Y stops at 65,535, fewer rows than a packed batch can hold.</param>
    /// <param name="output">(M, N) rows to fill.</param>
    /// <param name="bias">(N) the bias.</param>
    /// <param name="columns">N.</param>
    /// <param name="elements">M·N.</param>
    /// <param name="threads">Threads launched; each strides by it.</param>
    public static void BroadcastBias(Index1D index, ArrayView<float> output, ArrayView<float> bias, int columns, long elements, int threads)
    {
        for (long i = index; i < elements; i += threads)
            output[i] = bias[(int)(i % columns)];
    }

    /// <summary>
    /// Copies between a fused projection's (M, A + B + C) rows and three row-major parts: fused[m, c] is first[m, c] for
    /// c &lt; A, second[m, c − A] for c &lt; A + B, else third[m, c − A − B] (Q, K and V of one GEMM). Splits the fused rows
    /// into the parts when <paramref name="join"/> is 0 (the forward), joins the parts into them otherwise (the backward).
    /// </summary>
    /// <param name="index">Thread i of <paramref name="threads"/>: elements i, i + threads, … of the flat (M·(A + B + C)) fused rows.</param>
    /// <param name="fused">(M, A + B + C) the fused projection's output or its gradient.</param>
    /// <param name="first">(M, A).</param>
    /// <param name="second">(M, B).</param>
    /// <param name="third">(M, C).</param>
    /// <param name="firstWidth">A.</param>
    /// <param name="secondWidth">B.</param>
    /// <param name="thirdWidth">C.</param>
    /// <param name="elements">M·(A + B + C).</param>
    /// <param name="threads">Threads launched; each strides by it.</param>
    /// <param name="join">0: fused → parts; 1: parts → fused.</param>
    /// <param name="bias">(A + B + C) added to each fused column on the way to its part when <paramref name="addsBias"/> is 1 (split only).</param>
    /// <param name="addsBias">1 to add the bias, 0 to copy.</param>
    public static void CopyColumns(Index1D index, ArrayView<float> fused, ArrayView<float> first, ArrayView<float> second,
        ArrayView<float> third, int firstWidth, int secondWidth, int thirdWidth, long elements, int threads, int join,
        ArrayView<float> bias, int addsBias)
    {
        int width = firstWidth + secondWidth + thirdWidth;
        for (long i = index; i < elements; i += threads)
        {
            long row = i / width;
            int column = (int)(i - row * width);
            if (column < firstWidth)
            {
                long at = row * firstWidth + column;
                if (join != 0) fused[i] = first[at]; else first[at] = Split(fused[i], bias, column, addsBias);
            }
            else if (column < firstWidth + secondWidth)
            {
                long at = row * secondWidth + column - firstWidth;
                if (join != 0) fused[i] = second[at]; else second[at] = Split(fused[i], bias, column, addsBias);
            }
            else
            {
                long at = row * thirdWidth + column - firstWidth - secondWidth;
                if (join != 0) fused[i] = third[at]; else third[at] = Split(fused[i], bias, column, addsBias);
            }
        }
    }

    // A fused value on its way to its part: plus its column's bias when there is one (the GEMM ran without it).
    private static float Split(float value, ArrayView<float> bias, int column, int addsBias) =>
        addsBias != 0 ? value + bias[column] : value;

    /// <summary>partial[b, n] = Σ_{m in block b, increasing} dOutput[m, n].</summary>
    /// <param name="index">X: column n, Y: row block b.</param>
    /// <param name="dOutput">(M, N) output gradient.</param>
    /// <param name="partial">(⌈M / BiasRowBlock⌉, N) block sums, overwritten.</param>
    /// <param name="rows">M.</param>
    /// <param name="columns">N.</param>
    public static void BiasPartialSums(Index2D index, ArrayView<float> dOutput, ArrayView<float> partial, int rows, int columns)
    {
        int n = index.X, block = index.Y;
        int first = block * BiasRowBlock, end = first + BiasRowBlock < rows ? first + BiasRowBlock : rows;
        float sum = 0;
        for (int m = first; m < end; m++) sum += dOutput[(long)m * columns + n];
        partial[(long)block * columns + n] = sum;
    }

    /// <summary>dBias[n] += Σ_b partial[b, n], blocks in increasing order.</summary>
    /// <param name="n">The column.</param>
    /// <param name="partial">(blocks, N) block sums from <see cref="BiasPartialSums"/>.</param>
    /// <param name="dBias">(N) bias gradient, accumulated.</param>
    /// <param name="blocks">Row blocks.</param>
    /// <param name="columns">N.</param>
    public static void BiasAddPartials(Index1D n, ArrayView<float> partial, ArrayView<float> dBias, int blocks, int columns)
    {
        float sum = 0;
        for (int b = 0; b < blocks; b++) sum += partial[(long)b * columns + n];
        dBias[n] += sum;
    }
}

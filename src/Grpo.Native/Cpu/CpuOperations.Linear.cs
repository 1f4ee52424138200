using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>Columns of dBias one work item sums: wide enough for SIMD, narrow enough to spread N ≥ 512 over threads.</summary>
    private const int BiasColumnChunk = 128;

    /// <summary>About this many output elements per work item of the bias broadcast: whole rows, enough to amortise the scheduling.</summary>
    private const int BiasItemElements = 16 * 1024;

    public void SplitColumns(Tensor<float> source, Tensor<float> first, Tensor<float> second, Tensor<float> third, Tensor<float>? bias = null) =>
        CopyColumns(source, nameof(source), first, second, third, join: false, bias);

    public void JoinColumns(Tensor<float> destination, Tensor<float> first, Tensor<float> second, Tensor<float> third) =>
        CopyColumns(destination, nameof(destination), first, second, third, join: true, bias: null);

    /// <summary>Fused (M, A + B + C) rows to or from their three parts (adding a split's bias), whole rows per work item.</summary>
    private void CopyColumns(Tensor<float> fused, string fusedName, Tensor<float> first, Tensor<float> second, Tensor<float> third, bool join,
        Tensor<float>? bias)
    {
        var (m, a, b, c) = LinearValidation.FusedColumns(fused, fusedName, first, second, third, bias);
        CpuBuffer<float> s = Data(fused, fusedName);        // (M, A + B + C)
        CpuBuffer<float> x = Data(first, nameof(first));    // (M, A)
        CpuBuffer<float> y = Data(second, nameof(second));  // (M, B)
        CpuBuffer<float> z = Data(third, nameof(third));    // (M, C)
        CpuBuffer<float>? columnBias = bias is null ? null : Data(bias, nameof(bias)); // (A + B + C)
        int width = a + b + c, rowsPerItem = Math.Max(1, BiasItemElements / Math.Max(width, 1));
        Parallel.For(0, (m + rowsPerItem - 1) / rowsPerItem, Device.Parallelism, item =>
        {
            for (int row = item * rowsPerItem; row < Math.Min(m, (item + 1) * rowsPerItem); row++)
            {
                Span<float> fusedRow = s.AsSpan(row * width, width);
                Span<float> firstPart = x.AsSpan(row * a, a), secondPart = y.AsSpan(row * b, b), thirdPart = z.AsSpan(row * c, c);
                if (join)
                {
                    firstPart.CopyTo(fusedRow[..a]);
                    secondPart.CopyTo(fusedRow.Slice(a, b));
                    thirdPart.CopyTo(fusedRow[(a + b)..]);
                }
                else SplitRow(fusedRow, columnBias is { } rowBias ? rowBias : default, firstPart, secondPart, thirdPart);
            }
        });
    }

    /// <summary>
    /// One fused (A + B + C) row into its three parts, each value plus its column's bias (one fp32 addition) or copied when
    /// <paramref name="bias"/> is empty. SplitColumns and SplitIntoKvCache both split this way, so they give the same bits.
    /// </summary>
    private static void SplitRow(ReadOnlySpan<float> fusedRow, ReadOnlySpan<float> bias, Span<float> first, Span<float> second, Span<float> third)
    {
        int a = first.Length, b = second.Length;
        CopyWithBias(fusedRow[..a], bias.IsEmpty ? bias : bias[..a], first);
        CopyWithBias(fusedRow.Slice(a, b), bias.IsEmpty ? bias : bias.Slice(a, b), second);
        CopyWithBias(fusedRow[(a + b)..], bias.IsEmpty ? bias : bias[(a + b)..], third);
    }

    /// <summary>destination = source + bias, or a copy when bias is empty.</summary>
    private static void CopyWithBias(ReadOnlySpan<float> source, ReadOnlySpan<float> bias, Span<float> destination)
    {
        if (bias.IsEmpty) source.CopyTo(destination);
        else TensorPrimitives.Add(source, bias, destination);
    }

    public void LinearForward(Tensor<float> output, Tensor<float> input, Tensor<float> weight, Tensor<float>? bias)
    {
        var (m, k, n) = LinearValidation.Forward(output, input, weight, bias);
        CpuBuffer<float> y = Data(output, nameof(output)); // (M, N)
        CpuBuffer<float> x = Data(input, nameof(input));   // (M, K)
        CpuBuffer<float> w = Data(weight, nameof(weight)); // (N, K)
        if (bias is null)
        {
            CpuGemm.MultiplyTransposedB(Device.Parallelism, m, n, k, x, k, w, k, y, n, accumulate: false);
            return;
        }
        CpuBuffer<float> b = Data(bias, nameof(bias)); // (N)
        // Every row starts as the bias and the GEMM adds x·Wᵀ to it: one pass over the output instead of two.
        int rowsPerItem = Math.Max(1, BiasItemElements / n);
        Parallel.For(0, (m + rowsPerItem - 1) / rowsPerItem, Device.Parallelism, item =>
        {
            ReadOnlySpan<float> row = b;
            for (int r = item * rowsPerItem; r < Math.Min(m, (item + 1) * rowsPerItem); r++) row.CopyTo(y.AsSpan(r * n, n));
        });
        CpuGemm.MultiplyTransposedB(Device.Parallelism, m, n, k, x, k, w, k, y, n, accumulate: true);
    }

    public void LinearBackward(Tensor<float>? dInput, Tensor<float> dWeight, Tensor<float>? dBias,
        Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight)
    {
        var (m, k, n) = LinearValidation.Backward(dInput, dWeight, dBias, dOutput, input, weight);
        CpuBuffer<float> dW = Data(dWeight, nameof(dWeight)); // (N, K)
        CpuBuffer<float> dO = Data(dOutput, nameof(dOutput)); // (M, N)
        CpuBuffer<float> x = Data(input, nameof(input));      // (M, K)
        CpuBuffer<float> w = Data(weight, nameof(weight));    // (N, K)
        if (dInput is not null)
        {
            CpuBuffer<float> dX = Data(dInput, nameof(dInput)); // (M, K)
            // dX (M, K) += dO (M, N) · W (N, K)
            CpuGemm.Multiply(Device.Parallelism, m, k, n, dO, n, w, k, dX, k, accumulate: true);
        }
        // dW (N, K) += dOᵀ (N, M) · X (M, K); CpuGemm sums every element in a fixed k order.
        CpuGemm.MultiplyTransposedA(Device.Parallelism, n, k, m, dO, n, x, k, dW, k, accumulate: true);
        if (dBias is not null) ColumnSums(Data(dBias, nameof(dBias)), dO, m, n);
    }

    /// <summary>
    /// dBias (N) += Σ_rows dO (M, N): each chunk of columns is summed by one thread over the rows in
    /// increasing order, so every column has the same summation order for any thread count.
    /// </summary>
    private void ColumnSums(CpuBuffer<float> dBias, CpuBuffer<float> dO, int m, int n)
    {
        Parallel.For(0, (n + BiasColumnChunk - 1) / BiasColumnChunk, Device.Parallelism, chunk =>
        {
            int first = chunk * BiasColumnChunk, width = Math.Min(BiasColumnChunk, n - first);
            Span<float> sum = stackalloc float[width]; // (width) this chunk's column sums
            sum.Clear();
            for (int r = 0; r < m; r++) TensorPrimitives.Add(sum, dO.AsSpan(r * n + first, width), sum);
            var target = dBias.AsSpan(first, width);
            TensorPrimitives.Add(target, sum, target);
        });
    }
}

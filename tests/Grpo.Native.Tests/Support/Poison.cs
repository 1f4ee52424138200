using Grpo.Native.Tensors;

namespace Grpo.Native.Tests.Support;

/// <summary>Fills outputs with values no operation writes, so an element left unwritten fails the comparison.</summary>
public static class Poison
{
    public const int TokenSentinel = int.MinValue + 7;

    public static Tensor<float> Fill(Tensor<float> tensor)
    {
        tensor.Fill(float.NaN);
        return tensor;
    }

    public static Tensor<int> Fill(Tensor<int> tensor)
    {
        tensor.Fill(TokenSentinel);
        return tensor;
    }
}

using Grpo.Native.Devices;
using Grpo.Native.Tensors;

namespace Grpo.Native.Operations;

/// <summary>Argument checks shared by every operation, with messages that name the argument and the fix.</summary>
internal static class Guard
{
    public static void OnDevice<T>(Tensor<T> tensor, Device device, string argumentName) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor, argumentName);
        if (tensor.IsDisposed)
            throw new ObjectDisposedException(argumentName, $"'{argumentName}' was disposed before the operation ran.");
        if (!ReferenceEquals(tensor.Device, device))
            throw new ArgumentException(
                $"'{argumentName}' lives on {tensor.Device} but the operation runs on {device}; allocate it on the same device.",
                argumentName);
    }

    /// <summary>Throws unless <paramref name="tensor"/> has exactly the shape <paramref name="expected"/>.</summary>
    public static void Shape<T>(Tensor<T> tensor, string argumentName, params int[] expected) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor, argumentName);
        var want = new TensorShape(expected);
        if (!tensor.Shape.Equals(want))
            throw new ArgumentException(
                $"'{argumentName}' has shape {tensor.Shape} but {want} was expected.", argumentName);
    }

    /// <summary>Throws unless <paramref name="tensor"/> has rank <paramref name="rank"/>.</summary>
    public static void Rank<T>(Tensor<T> tensor, string argumentName, int rank, string meaning) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor, argumentName);
        if (tensor.Shape.Rank != rank)
            throw new ArgumentException(
                $"'{argumentName}' has shape {tensor.Shape} but a rank-{rank} tensor {meaning} was expected.", argumentName);
    }

    public static void Finite(float value, string argumentName, string fix)
    {
        if (!float.IsFinite(value))
            throw new ArgumentOutOfRangeException(argumentName, value, $"'{argumentName}' must be finite; {fix}");
    }
}

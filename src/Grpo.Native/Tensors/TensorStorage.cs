namespace Grpo.Native.Tensors;

/// <summary>Device memory behind a tensor; each backend supplies its own kind.</summary>
internal abstract class TensorStorage<T> : IDisposable where T : unmanaged
{
    public abstract void CopyFrom(ReadOnlySpan<T> source);
    public abstract void CopyTo(Span<T> destination);
    public abstract void Fill(T value);
    public abstract void Dispose();
}

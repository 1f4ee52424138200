namespace Grpo.Native.Tensors;

/// <summary>Device memory behind a tensor; each backend supplies its own kind. Offsets and lengths are in elements.</summary>
internal abstract class TensorStorage<T> : IDisposable where T : unmanaged
{
    public abstract void CopyFrom(long offset, ReadOnlySpan<T> source);
    public abstract void CopyTo(long offset, Span<T> destination);
    public abstract void Fill(long offset, long length, T value);
    public abstract void Dispose();
}

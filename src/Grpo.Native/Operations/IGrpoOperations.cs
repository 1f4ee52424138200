namespace Grpo.Native.Operations;

/// <summary>
/// The GRPO operations one device runs. Every backend implements all of them with the same
/// semantics; the CPU references in the tests define those semantics. The interface is partial:
/// each family of operations (sampling, advantages, log-softmax-gather, objective) is declared in
/// its own file beside its option records.
/// </summary>
public partial interface IGrpoOperations
{
}

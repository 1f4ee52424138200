// TEMPORARY, never merged: lets the model branch compile before the operation branches land.
using Grpo.Native.Tensors;
namespace Grpo.Native.Ilgpu;
internal sealed partial class IlgpuOperations
{
    public void LinearForward(Tensor<float> output, Tensor<float> input, Tensor<float> weight, Tensor<float>? bias) => throw new NotImplementedException("TEMPORARY: arrives with the LinearForward branch");
    public void LinearBackward(Tensor<float>? dInput, Tensor<float> dWeight, Tensor<float>? dBias, Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight) => throw new NotImplementedException("TEMPORARY: arrives with the LinearBackward branch");
    public void EmbeddingForward(Tensor<float> output, Tensor<int> ids, Tensor<float> table, Tensor<int>? positions, Tensor<float>? positionTable) => throw new NotImplementedException("TEMPORARY: arrives with the EmbeddingForward branch");
    public void EmbeddingBackward(Tensor<float> dTable, Tensor<float>? dPositionTable, Tensor<float> dOutput, Tensor<int> ids, Tensor<int>? positions) => throw new NotImplementedException("TEMPORARY: arrives with the EmbeddingBackward branch");
    public void LayerNormForward(Tensor<float> output, Tensor<float> mean, Tensor<float> rstd, Tensor<float> input, Tensor<float> weight, Tensor<float> bias, float epsilon) => throw new NotImplementedException("TEMPORARY: arrives with the LayerNormForward branch");
    public void LayerNormBackward(Tensor<float> dInput, Tensor<float> dWeight, Tensor<float> dBias, Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> mean, Tensor<float> rstd) => throw new NotImplementedException("TEMPORARY: arrives with the LayerNormBackward branch");
    public void RmsNormForward(Tensor<float> output, Tensor<float> rstd, Tensor<float> input, Tensor<float> weight, float epsilon) => throw new NotImplementedException("TEMPORARY: arrives with the RmsNormForward branch");
    public void RmsNormBackward(Tensor<float> dInput, Tensor<float> dWeight, Tensor<float> dOutput, Tensor<float> input, Tensor<float> weight, Tensor<float> rstd) => throw new NotImplementedException("TEMPORARY: arrives with the RmsNormBackward branch");
    public void GeluForward(Tensor<float> output, Tensor<float> input) => throw new NotImplementedException("TEMPORARY: arrives with the GeluForward branch");
    public void GeluBackward(Tensor<float> dInput, Tensor<float> dOutput, Tensor<float> input) => throw new NotImplementedException("TEMPORARY: arrives with the GeluBackward branch");
    public void SwiGluForward(Tensor<float> output, Tensor<float> gate, Tensor<float> up) => throw new NotImplementedException("TEMPORARY: arrives with the SwiGluForward branch");
    public void SwiGluBackward(Tensor<float> dGate, Tensor<float> dUp, Tensor<float> dOutput, Tensor<float> gate, Tensor<float> up) => throw new NotImplementedException("TEMPORARY: arrives with the SwiGluBackward branch");
    public void Add(Tensor<float> output, Tensor<float> a, Tensor<float> b) => throw new NotImplementedException("TEMPORARY: arrives with the Add branch");
    public void Rope(Tensor<float> values, Tensor<int> positions, float theta, bool inverse) => throw new NotImplementedException("TEMPORARY: arrives with the Rope branch");
    public void KvCacheWrite(Tensor<float> keyCache, Tensor<float> valueCache, Tensor<float> key, Tensor<float> value, Tensor<int> sourceRows, Tensor<int> slots, Tensor<int> positions) => throw new NotImplementedException("TEMPORARY: arrives with the KvCacheWrite branch");
    public void AttentionDecode(Tensor<float> output, Tensor<float> query, Tensor<float> keyCache, Tensor<float> valueCache, Tensor<int> slots, Tensor<int> lengths, float scale) => throw new NotImplementedException("TEMPORARY: arrives with the AttentionDecode branch");
}

namespace Grpo.Native.Devices;

/// <summary>
/// How the CUDA backend runs its GEMMs (<see cref="Device.Create(DeviceKind, CudaOptions?)"/>). An unset value is read from the
/// environment: <c>GRPO_CUBLAS=1</c> and <c>GRPO_TF32=1</c> (the command line's way to set them).
/// </summary>
/// <remarks>
/// TF32 rounds each GEMM input to 10 explicit significand bits (unit roundoff u = 2⁻¹¹) and accumulates in fp32, so an
/// element of C = A·B is within (2⁻¹⁰ + K·2⁻²⁴)·Σ_k |a_ik·b_kj| of the exact product to first order: about 1e-3 of that
/// sum for K up to a few thousand, ten times the fp32 bounds the tests and <c>grpo selfcheck</c> hold the GEMMs to (K·2⁻²⁴).
/// It is faster on tensor cores; use it where a training run tolerates that error, and verify kernels without it.
/// </remarks>
public sealed record CudaOptions
{
    /// <summary>Environment variable: 1 sends the GEMMs to cuBLAS where it loads; otherwise the ILGPU kernel runs them.</summary>
    public const string UseCuBlasVariable = "GRPO_CUBLAS";

    /// <summary>Environment variable: 1 turns TF32 tensor-core math on for the cuBLAS GEMMs (needs cuBLAS).</summary>
    public const string Tf32Variable = "GRPO_TF32";

    /// <summary>True: GEMMs through cuBLAS when it loads (the ILGPU kernel otherwise, with a message). Null: <see cref="UseCuBlasVariable"/>.</summary>
    public bool? UseCuBlas { get; init; }

    /// <summary>True: cuBLAS GEMMs in TF32 (see the remarks for its bound); requires <see cref="UseCuBlas"/>. Null: <see cref="Tf32Variable"/>.</summary>
    public bool? Tf32 { get; init; }

    /// <summary>The settings with unset values read from the environment.</summary>
    /// <exception cref="ArgumentException">TF32 without cuBLAS: the ILGPU GEMM computes in fp32 only.</exception>
    public (bool UseCuBlas, bool Tf32) Resolve()
    {
        bool cuBlas = UseCuBlas ?? Environment.GetEnvironmentVariable(UseCuBlasVariable) == "1";
        bool tf32 = Tf32 ?? Environment.GetEnvironmentVariable(Tf32Variable) == "1";
        if (tf32 && !cuBlas)
            throw new ArgumentException(
                $"TF32 was asked for ({(Tf32 is null ? $"{Tf32Variable}=1" : "Tf32 = true")}) without cuBLAS, but only cuBLAS computes in TF32 " +
                $"(the ILGPU GEMM is fp32): set {(UseCuBlas is null ? $"{UseCuBlasVariable}=1" : "UseCuBlas = true")} as well, or leave TF32 off.",
                nameof(Tf32));
        return (cuBlas, tf32);
    }

    /// <summary>True when the options ask for something only CUDA does (cuBLAS or TF32), counting the environment.</summary>
    internal bool AsksForCuda() => Resolve() is (true, _) or (_, true);
}

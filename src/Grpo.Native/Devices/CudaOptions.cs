namespace Grpo.Native.Devices;

/// <summary>
/// How the CUDA backend runs its GEMMs (<see cref="Device.Create(DeviceKind, CudaOptions?)"/>): through cuBLAS in fp32 where it
/// loads (the ILGPU kernel otherwise, with a message saying where cuBLAS was looked for), TF32 only when asked. An unset value
/// is read from the environment: <c>GRPO_CUBLAS=0</c> keeps the GEMMs on the ILGPU kernel, <c>GRPO_TF32=1</c> turns TF32 on
/// (the command line's way to set them).
/// </summary>
/// <remarks>
/// TF32 rounds each GEMM input to 10 explicit significand bits (unit roundoff u = 2⁻¹¹) and accumulates in fp32, so an
/// element of C = A·B is within (2⁻¹⁰ + K·2⁻²⁴)·Σ_k |a_ik·b_kj| of the exact product to first order: about 1e-3 of that
/// sum for K up to a few thousand, ten times the fp32 bounds the tests and <c>grpo selfcheck</c> hold the GEMMs to (K·2⁻²⁴).
/// It is faster on tensor cores; use it where a training run tolerates that error, and verify kernels without it.
/// </remarks>
public sealed record CudaOptions
{
    /// <summary>Environment variable: 0 keeps the GEMMs on the ILGPU kernel; 1 or unset sends them to cuBLAS where it loads.</summary>
    public const string UseCuBlasVariable = "GRPO_CUBLAS";

    /// <summary>Environment variable: 1 turns TF32 tensor-core math on for the cuBLAS GEMMs (needs cuBLAS).</summary>
    public const string Tf32Variable = "GRPO_TF32";

    /// <summary>
    /// True (the default): GEMMs through cuBLAS when it loads, the ILGPU kernel otherwise, with a message. False: the ILGPU kernel.
    /// Null: <see cref="UseCuBlasVariable"/>, else true.
    /// </summary>
    public bool? UseCuBlas { get; init; }

    /// <summary>True: cuBLAS GEMMs in TF32 (see the remarks for its bound); requires <see cref="UseCuBlas"/>. Null: <see cref="Tf32Variable"/>.</summary>
    public bool? Tf32 { get; init; }

    /// <summary>The settings with unset values read from the environment.</summary>
    /// <exception cref="ArgumentException">TF32 without cuBLAS (the ILGPU GEMM computes in fp32 only), or a variable set to something other than 0 or 1.</exception>
    public (bool UseCuBlas, bool Tf32) Resolve()
    {
        bool cuBlas = UseCuBlas ?? EnvironmentSwitch(UseCuBlasVariable) ?? true;
        bool tf32 = Tf32 ?? EnvironmentSwitch(Tf32Variable) ?? false;
        if (tf32 && !cuBlas)
            throw new ArgumentException(
                $"TF32 was asked for ({(Tf32 is null ? $"{Tf32Variable}=1" : "Tf32 = true")}) without cuBLAS, but only cuBLAS computes in TF32 " +
                $"(the ILGPU GEMM is fp32): {(UseCuBlas is null ? $"unset {UseCuBlasVariable}=0" : "set UseCuBlas = true")}, or leave TF32 off.",
                nameof(Tf32));
        return (cuBlas, tf32);
    }

    /// <summary>True when the options ask, explicitly or through the environment, for something only CUDA does (cuBLAS or TF32).</summary>
    internal bool AsksForCuda() =>
        (UseCuBlas ?? EnvironmentSwitch(UseCuBlasVariable)) == true || (Tf32 ?? EnvironmentSwitch(Tf32Variable)) == true;

    /// <summary>1: true, 0: false, unset or empty: null; anything else is refused by name.</summary>
    private static bool? EnvironmentSwitch(string variable) => Environment.GetEnvironmentVariable(variable) switch
    {
        null or "" => null,
        "1" => true,
        "0" => false,
        var other => throw new ArgumentException($"{variable} is '{other}'; use 1 or 0 (or leave it unset).", variable),
    };
}

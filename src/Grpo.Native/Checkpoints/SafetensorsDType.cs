using System.Buffers.Binary;

namespace Grpo.Native.Checkpoints;

/// <summary>The floating-point element types Grpo.Native reads from and writes to safetensors files.</summary>
public enum SafetensorsDType
{
    /// <summary>IEEE 754 binary32, "F32".</summary>
    F32,
    /// <summary>IEEE 754 binary16, "F16".</summary>
    F16,
    /// <summary>bfloat16 (the upper half of a binary32), "BF16".</summary>
    BF16,
}

/// <summary>Names, sizes and fp32 conversions of <see cref="SafetensorsDType"/>.</summary>
public static class SafetensorsDTypes
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Use F32, F16 or BF16."),
    };

    /// <summary>The header spelling ("F32", "F16", "BF16").</summary>
    public static string HeaderName(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 => "F32",
        SafetensorsDType.F16 => "F16",
        SafetensorsDType.BF16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Use F32, F16 or BF16."),
    };

    /// <summary>Parses a header dtype; false for every dtype this library does not read (I64, F64, ...).</summary>
    public static bool TryParse(string? name, out SafetensorsDType dtype)
    {
        switch (name)
        {
            case "F32": dtype = SafetensorsDType.F32; return true;
            case "F16": dtype = SafetensorsDType.F16; return true;
            case "BF16": dtype = SafetensorsDType.BF16; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>bfloat16 bits to fp32: the bits are the upper half of the fp32 pattern, so this is exact.</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>fp32 to bfloat16 bits, rounding to nearest with ties to even; NaN stays a (quiet) NaN.</summary>
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        // Rounding could carry a NaN payload into the infinity pattern; keep the sign and force a quiet NaN.
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);
        uint lsb = (bits >> 16) & 1;
        return (ushort)((bits + 0x7FFF + lsb) >> 16);
    }

    /// <summary>binary16 bits to fp32 (exact).</summary>
    public static float HalfToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>fp32 to binary16 bits; <see cref="Half"/>'s conversion rounds to nearest with ties to even.</summary>
    public static ushort SingleToHalf(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>Decodes little-endian elements of <paramref name="dtype"/> into fp32.</summary>
    /// <param name="source">(count * size) bytes</param>
    /// <param name="dtype">element type of <paramref name="source"/></param>
    /// <param name="destination">(count) values</param>
    public static void Decode(ReadOnlySpan<byte> source, SafetensorsDType dtype, Span<float> destination)
    {
        if (source.Length != destination.Length * dtype.Size())
            throw new ArgumentException(
                $"'{nameof(source)}' has {source.Length} bytes but {destination.Length} {dtype} elements need {destination.Length * dtype.Size()}.",
                nameof(source));
        switch (dtype)
        {
            case SafetensorsDType.F32:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(4 * i)..]);
                break;
            case SafetensorsDType.F16:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = HalfToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]));
                break;
            default:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]));
                break;
        }
    }

    /// <summary>Encodes fp32 values as little-endian elements of <paramref name="dtype"/> (round to nearest even).</summary>
    /// <param name="source">(count) values</param>
    /// <param name="dtype">element type to write</param>
    /// <param name="destination">(count * size) bytes</param>
    public static void Encode(ReadOnlySpan<float> source, SafetensorsDType dtype, Span<byte> destination)
    {
        if (destination.Length != source.Length * dtype.Size())
            throw new ArgumentException(
                $"'{nameof(destination)}' has {destination.Length} bytes but {source.Length} {dtype} elements need {source.Length * dtype.Size()}.",
                nameof(destination));
        switch (dtype)
        {
            case SafetensorsDType.F32:
                for (int i = 0; i < source.Length; i++)
                    BinaryPrimitives.WriteSingleLittleEndian(destination[(4 * i)..], source[i]);
                break;
            case SafetensorsDType.F16:
                for (int i = 0; i < source.Length; i++)
                    BinaryPrimitives.WriteUInt16LittleEndian(destination[(2 * i)..], SingleToHalf(source[i]));
                break;
            default:
                for (int i = 0; i < source.Length; i++)
                    BinaryPrimitives.WriteUInt16LittleEndian(destination[(2 * i)..], SingleToBFloat16(source[i]));
                break;
        }
    }
}

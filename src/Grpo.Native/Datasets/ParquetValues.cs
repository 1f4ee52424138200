namespace Grpo.Native.Datasets;

/// <summary>
/// Parquet.Net's values of a leaf column turned into the plain values that JSON rows have too, so that a
/// reward function sees the same types whichever file format the dataset came in.
/// </summary>
internal static class ParquetValues
{
    /// <summary>
    /// Strings and byte arrays are copied out of the reader's buffers (which are reused); integers of every width
    /// become <see cref="long"/> (a <see cref="ulong"/> above <see cref="long.MaxValue"/> stays <see cref="ulong"/>),
    /// float and half become <see cref="double"/>; decimal, dates, times, intervals and Guids keep their .NET type
    /// (Python would see Decimal and datetime objects there, not numbers or text).
    /// </summary>
    public static object? ToPlain(object? value) => value switch
    {
        null => null,
        ReadOnlyMemory<char> text => text.ToString(),
        string text => text,
        ReadOnlyMemory<byte> bytes => bytes.ToArray(),
        byte[] bytes => bytes.ToArray(),
        bool flag => flag,
        sbyte v => (long)v,
        byte v => (long)v,
        short v => (long)v,
        ushort v => (long)v,
        int v => (long)v,
        uint v => (long)v,
        long v => v,
        ulong v => v <= long.MaxValue ? (object)(long)v : v,
        Half v => (double)v,
        float v => (double)v,
        double v => v,
        _ => value,
    };
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Grpo.Native.Checkpoints;
using Grpo.Native.Operations;
using Grpo.Native.Tensors;

namespace Grpo.Native.Cpu;

internal sealed partial class CpuOperations
{
    /// <summary>√(2/π), GELU's tanh-approximation scale.</summary>
    private const float GeluScale = 0.7978845608028654f;

    /// <summary>The cubic coefficient of GELU's tanh approximation.</summary>
    private const float GeluCubic = 0.044715f;

    /// <summary>Rows per RoPE work item.</summary>
    private const int RopeBlockRows = 64;

    private readonly object _ropeGate = new();
    private readonly Dictionary<(float Theta, int D, RopeScaling? Scaling), RopeTable> _ropeTables = new();

    public void GeluForward(Tensor<float> output, Tensor<float> input)
    {
        int n = ActivationsValidation.GeluForward(output, input);
        CpuBuffer<float> y = Data(output, nameof(output)); // (…)
        CpuBuffer<float> x = Data(input, nameof(input));   // (…)
        // Fixed chunks, each element computed on its own: the bits never depend on the thread count.
        ParallelChunks(n, (begin, length) =>
        {
            var xs = x.AsSpan(begin, length);
            var ys = y.AsSpan(begin, length);
            int i = 0;
            for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
                Gelu(Load(xs, i), out _).StoreUnsafe(ref MemoryMarshal.GetReference(ys), (nuint)i);
            if (i < length)
            {
                Span<float> tx = stackalloc float[Vector256<float>.Count], ty = stackalloc float[Vector256<float>.Count];
                xs[i..].CopyTo(tx);
                Gelu(Load(tx, 0), out _).CopyTo(ty);
                ty[..(length - i)].CopyTo(ys[i..]);
            }
        });
    }

    public void GeluBackward(Tensor<float> dInput, Tensor<float> dOutput, Tensor<float> input)
    {
        int n = ActivationsValidation.GeluBackward(dInput, dOutput, input);
        CpuBuffer<float> dx = Data(dInput, nameof(dInput));   // (…)
        CpuBuffer<float> dy = Data(dOutput, nameof(dOutput)); // (…)
        CpuBuffer<float> x = Data(input, nameof(input));      // (…)
        ParallelChunks(n, (begin, length) =>
        {
            var xs = x.AsSpan(begin, length);
            var dys = dy.AsSpan(begin, length);
            var dxs = dx.AsSpan(begin, length);
            int i = 0;
            for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
                (Load(dxs, i) + Load(dys, i) * GeluGradient(Load(xs, i))).StoreUnsafe(ref MemoryMarshal.GetReference(dxs), (nuint)i);
            if (i < length)
            {
                int count = Vector256<float>.Count;
                Span<float> tx = stackalloc float[count], tdy = stackalloc float[count], tdx = stackalloc float[count];
                xs[i..].CopyTo(tx);
                dys[i..].CopyTo(tdy);
                dxs[i..].CopyTo(tdx);
                (Load(tdx, 0) + Load(tdy, 0) * GeluGradient(Load(tx, 0))).CopyTo(tdx);
                tdx[..(length - i)].CopyTo(dxs[i..]);
            }
        });
    }

    public void SwiGluForward(Tensor<float> output, Tensor<float> gateUp)
    {
        var (m, width) = ActivationsValidation.SwiGluForward(output, gateUp);
        CpuBuffer<float> o = Data(output, nameof(output));   // (M, I)
        CpuBuffer<float> gu = Data(gateUp, nameof(gateUp));  // (M, 2I)
        // Fixed chunks of the (M, I) outputs, each cut at row ends: element (r, j) reads gate (r, j) and up (r, I + j).
        ParallelRowSegments(m * width, width, (row, column, length) =>
        {
            int at = row * width + column, gateAt = 2 * row * width + column;
            SwiGluForwardSpan(gu.AsSpan(gateAt, length), gu.AsSpan(gateAt + width, length), o.AsSpan(at, length));
        });
    }

    public void SwiGluBackward(Tensor<float> dGateUp, Tensor<float> dOutput, Tensor<float> gateUp)
    {
        var (m, width) = ActivationsValidation.SwiGluBackward(dGateUp, dOutput, gateUp);
        CpuBuffer<float> dgu = Data(dGateUp, nameof(dGateUp)); // (M, 2I)
        CpuBuffer<float> dO = Data(dOutput, nameof(dOutput));  // (M, I)
        CpuBuffer<float> gu = Data(gateUp, nameof(gateUp));    // (M, 2I)
        ParallelRowSegments(m * width, width, (row, column, length) =>
        {
            int at = row * width + column, gateAt = 2 * row * width + column;
            SwiGluBackwardSpan(gu.AsSpan(gateAt, length), gu.AsSpan(gateAt + width, length), dO.AsSpan(at, length),
                dgu.AsSpan(gateAt, length), dgu.AsSpan(gateAt + width, length));
        });
    }

    /// <summary>
    /// <see cref="ParallelChunks"/> over n = rows · <paramref name="width"/> elements, each chunk cut further where a row ends:
    /// the body gets (row, first column, length) of runs within one row. The chunks, hence the bits, do not depend on the thread count.
    /// </summary>
    private void ParallelRowSegments(int n, int width, Action<int, int, int> body) =>
        ParallelChunks(n, (begin, length) =>
        {
            for (int at = begin, end = begin + length; at < end;)
            {
                int row = at / width, column = at - row * width, run = Math.Min(width - column, end - at);
                body(row, column, run);
                at += run;
            }
        });

    /// <summary>os = silu(gs) · us, element-wise, a partial vector padded through a stack copy so every element takes the same path.</summary>
    private static void SwiGluForwardSpan(Span<float> gs, Span<float> us, Span<float> os)
    {
        int length = gs.Length, i = 0;
        for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
            (Silu(Load(gs, i), out _, out _) * Load(us, i)).StoreUnsafe(ref MemoryMarshal.GetReference(os), (nuint)i);
        if (i < length)
        {
            int count = Vector256<float>.Count;
            Span<float> tg = stackalloc float[count], tu = stackalloc float[count], to = stackalloc float[count];
            gs[i..].CopyTo(tg);
            us[i..].CopyTo(tu);
            (Silu(Load(tg, 0), out _, out _) * Load(tu, 0)).CopyTo(to);
            to[..(length - i)].CopyTo(os[i..]);
        }
    }

    /// <summary>dgs += dOs · us · silu'(gs), dus += dOs · silu(gs), element-wise (see <see cref="SwiGluGradients"/>).</summary>
    private static void SwiGluBackwardSpan(Span<float> gs, Span<float> us, Span<float> dOs, Span<float> dgs, Span<float> dus)
    {
        int length = gs.Length, i = 0;
        for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            var (dgi, dui) = SwiGluGradients(Load(gs, i), Load(us, i), Load(dOs, i), Load(dgs, i), Load(dus, i));
            dgi.StoreUnsafe(ref MemoryMarshal.GetReference(dgs), (nuint)i);
            dui.StoreUnsafe(ref MemoryMarshal.GetReference(dus), (nuint)i);
        }
        if (i < length)
        {
            int count = Vector256<float>.Count;
            Span<float> tg = stackalloc float[count], tu = stackalloc float[count], tdO = stackalloc float[count];
            Span<float> tdg = stackalloc float[count], tdu = stackalloc float[count];
            gs[i..].CopyTo(tg);
            us[i..].CopyTo(tu);
            dOs[i..].CopyTo(tdO);
            dgs[i..].CopyTo(tdg);
            dus[i..].CopyTo(tdu);
            var (dgi, dui) = SwiGluGradients(Load(tg, 0), Load(tu, 0), Load(tdO, 0), Load(tdg, 0), Load(tdu, 0));
            dgi.CopyTo(tdg);
            dui.CopyTo(tdu);
            tdg[..(length - i)].CopyTo(dgs[i..]);
            tdu[..(length - i)].CopyTo(dus[i..]);
        }
    }

    public void Add(Tensor<float> output, Tensor<float> a, Tensor<float> b)
    {
        int n = ActivationsValidation.Add(output, a, b);
        CpuBuffer<float> o = Data(output, nameof(output)); // (…)
        CpuBuffer<float> x = Data(a, nameof(a));           // (…)
        CpuBuffer<float> y = Data(b, nameof(b));           // (…)
        // TensorPrimitives allows the destination to be exactly an input: the in-place residual update.
        ParallelChunks(n, (begin, length) => TensorPrimitives.Add(x.AsSpan(begin, length), y.AsSpan(begin, length), o.AsSpan(begin, length)));
    }

    public void Rope(Tensor<float> query, Tensor<float>? key, Tensor<int> positions, float theta, bool inverse, RopeScaling? scaling = null)
    {
        var (m, heads, keyHeads, d) = ActivationsValidation.Rope(query, key, positions, theta, scaling);
        CpuBuffer<float> q = Data(query, nameof(query));               // (M, H, D)
        CpuBuffer<float> k = key is null ? default : Data(key, nameof(key)); // (M, KVH, D); unread without a key (KVH = 0)
        CpuBuffer<int> pos = Data(positions, nameof(positions));       // (M)
        float[] cosSin = RopeTableCovering(theta, d, scaling, ActivationsValidation.RopePositions(pos)); // (P, D) cos then sin per position
        int half = d / 2;
        int blocks = (m + RopeBlockRows - 1) / RopeBlockRows;
        Parallel.For(0, blocks, Device.Parallelism, block =>
        {
            int end = Math.Min(m, (block + 1) * RopeBlockRows);
            for (int r = block * RopeBlockRows; r < end; r++)
            {
                var cos = cosSin.AsSpan(pos[r] * d, half);        // (D/2)
                var sin = cosSin.AsSpan(pos[r] * d + half, half); // (D/2)
                for (int h = 0; h < heads; h++)
                {
                    var row = q.AsSpan((r * heads + h) * d, d);
                    RotatePairs(row[..half], row[half..], cos, sin, inverse);
                }
                for (int h = 0; h < keyHeads; h++)
                {
                    var row = k.AsSpan((r * keyHeads + h) * d, d);
                    RotatePairs(row[..half], row[half..], cos, sin, inverse);
                }
            }
        });
    }

    /// <summary>The (P, D) table of cos then sin per position for (θ, D, scaling), grown to cover <paramref name="largestPosition"/>.</summary>
    private float[] RopeTableCovering(float theta, int d, RopeScaling? scaling, int largestPosition)
    {
        lock (_ropeGate)
        {
            _ropeTables.TryGetValue((theta, d, scaling), out var existing);
            var table = RopeTable.Covering(existing, theta, d, scaling, largestPosition);
            _ropeTables[(theta, d, scaling)] = table;
            return table.Values;
        }
    }

    /// <summary>(x, y) ← (x cos − y sin, y cos + x sin), or by −angle when <paramref name="inverse"/>; each element's floats in a fixed order.</summary>
    private static void RotatePairs(Span<float> x, Span<float> y, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool inverse)
    {
        int half = x.Length, i = 0;
        var sign = Vector256.Create(inverse ? -1f : 1f);
        for (; i <= half - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            var xi = Load(x, i);
            var yi = Load(y, i);
            var c = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(cos), (nuint)i);
            var s = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(sin), (nuint)i) * sign;
            (xi * c - yi * s).StoreUnsafe(ref MemoryMarshal.GetReference(x), (nuint)i);
            (yi * c + xi * s).StoreUnsafe(ref MemoryMarshal.GetReference(y), (nuint)i);
        }
        float scalarSign = inverse ? -1f : 1f;
        for (; i < half; i++)
        {
            float xi = x[i], yi = y[i], c = cos[i], s = sin[i] * scalarSign;
            x[i] = xi * c - yi * s;
            y[i] = yi * c + xi * s;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Load(Span<float> span, int index) =>
        Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(span), (nuint)index);

    /// <summary>
    /// σ(z) and σ(z)(1 − σ(z)) from a = e^−|z| ∈ (0, 1], which never overflows: σ = 1/(1+a) for z ≥ 0 and
    /// a/(1+a) below, σ(1 − σ) = a/(1+a)². No cancellation on either side, no NaN for any finite z.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Sigmoid(Vector256<float> z, out Vector256<float> sigmoidSlope)
    {
        var a = Vector256.Exp(-Vector256.Abs(z));
        var r = Vector256<float>.One / (Vector256<float>.One + a);
        sigmoidSlope = a * r * r;
        return Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(z, Vector256<float>.Zero), r, a * r);
    }

    /// <summary>gelu(x) = 0.5x(1 + tanh u) = x σ(2u), u = √(2/π)(x + 0.044715x³); returns σ(2u) and its slope too.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Gelu(Vector256<float> x, out (Vector256<float> S, Vector256<float> Slope) parts)
    {
        var u = Vector256.Create(GeluScale) * (x + Vector256.Create(GeluCubic) * x * x * x);
        var s = Sigmoid(u + u, out var slope);
        parts = (s, slope);
        return x * s;
    }

    /// <summary>gelu'(x) = σ(2u) + 2x σ(2u)(1 − σ(2u)) √(2/π)(1 + 3·0.044715x²).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> GeluGradient(Vector256<float> x)
    {
        Gelu(x, out var parts);
        // x² is capped at 1e4 so it cannot overflow: beyond |x| = 100 the slope σ(1 − σ) is exactly 0 anyway.
        var x2 = Vector256.Min(x * x, Vector256.Create(1e4f));
        var du = Vector256.Create(2 * GeluScale) * (Vector256<float>.One + Vector256.Create(3 * GeluCubic) * x2);
        return parts.S + x * parts.Slope * du;
    }

    /// <summary>silu(g) = g σ(g); also σ(g) and σ(g)(1 − σ(g)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Silu(Vector256<float> g, out Vector256<float> sigmoid, out Vector256<float> slope)
    {
        sigmoid = Sigmoid(g, out slope);
        return g * sigmoid;
    }

    /// <summary>dGate + dO·up·silu'(g) and dUp + dO·silu(g), with silu'(g) = σ + g σ(1 − σ).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> DGate, Vector256<float> DUp) SwiGluGradients(Vector256<float> g, Vector256<float> up,
        Vector256<float> dO, Vector256<float> dGate, Vector256<float> dUp)
    {
        var silu = Silu(g, out var sigmoid, out var slope);
        return (dGate + dO * up * (sigmoid + g * slope), dUp + dO * silu);
    }
}

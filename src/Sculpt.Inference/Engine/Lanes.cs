using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Sculpt.Engine;

/// <summary>
/// A vector of floats of one hardware width, for kernels written once and specialised by the JIT per width
/// (a struct type argument: no interface calls remain). <see cref="System.Numerics.Vector{T}"/> stays at 256 bits
/// on AVX-512 machines, where ONNX Runtime's GEMM (the peak we measure against) uses 512.
/// </summary>
internal interface ILanes<TSelf> where TSelf : struct, ILanes<TSelf>
{
    static abstract int Count { get; }
    static abstract unsafe TSelf Load(float* p);
    static abstract unsafe void Store(float* p, TSelf v);
    static abstract TSelf Broadcast(float v);
    /// <summary>a·b + c, fused.</summary>
    static abstract TSelf MultiplyAdd(TSelf a, TSelf b, TSelf c);
    /// <summary>
    /// v limited to [lo, hi] by the hardware's own min and max (one instruction each: the IEEE-exact Min/Max of .NET 9
    /// compile to a dozen per call, run on every stored vector); the bound comes first so that a NaN passes through.
    /// </summary>
    static abstract TSelf Clamp(TSelf v, float lo, float hi);
    /// <summary>v where v ≥ 0, else v·slope.</summary>
    static abstract TSelf Leaky(TSelf v, float slope);
    /// <summary>a₀ b₀ a₁ b₁ … to <paramref name="at"/> (2 × Count floats).</summary>
    static abstract unsafe void StoreInterleaved(float* at, TSelf a, TSelf b);
}

internal readonly struct Lanes128(Vector128<float> v) : ILanes<Lanes128>
{
    private readonly Vector128<float> _v = v;
    public static int Count => Vector128<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe Lanes128 Load(float* p) => new(Vector128.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe void Store(float* p, Lanes128 v) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes128 Broadcast(float v) => new(Vector128.Create(v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes128 MultiplyAdd(Lanes128 a, Lanes128 b, Lanes128 c) => new(Vector128.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes128 Clamp(Lanes128 v, float lo, float hi) => new(Vector128.MinNative(Vector128.Create(hi),
        Vector128.MaxNative(Vector128.Create(lo), v._v)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes128 Leaky(Lanes128 v, float slope) =>
        new(Vector128.ConditionalSelect(Vector128.LessThan(v._v, Vector128<float>.Zero), v._v * slope, v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreInterleaved(float* at, Lanes128 a, Lanes128 b)
    {
        if (Sse.IsSupported)
        {
            Sse.Store(at, Sse.UnpackLow(a._v, b._v));
            Sse.Store(at + 4, Sse.UnpackHigh(a._v, b._v));
        }
        else if (AdvSimd.Arm64.IsSupported)
        {
            AdvSimd.Store(at, AdvSimd.Arm64.ZipLow(a._v, b._v));
            AdvSimd.Store(at + 4, AdvSimd.Arm64.ZipHigh(a._v, b._v));
        }
        else
            for (int i = 0; i < 4; i++) { at[2 * i] = a._v[i]; at[2 * i + 1] = b._v[i]; }
    }
}

internal readonly struct Lanes256(Vector256<float> v) : ILanes<Lanes256>
{
    private readonly Vector256<float> _v = v;
    public static int Count => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe Lanes256 Load(float* p) => new(Vector256.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe void Store(float* p, Lanes256 v) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Broadcast(float v) => new(Vector256.Create(v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 MultiplyAdd(Lanes256 a, Lanes256 b, Lanes256 c) => new(Vector256.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Clamp(Lanes256 v, float lo, float hi) => new(Vector256.MinNative(Vector256.Create(hi),
        Vector256.MaxNative(Vector256.Create(lo), v._v)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 Leaky(Lanes256 v, float slope) =>
        new(Vector256.ConditionalSelect(Vector256.LessThan(v._v, Vector256<float>.Zero), v._v * slope, v._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreInterleaved(float* at, Lanes256 a, Lanes256 b)
    {
        Lanes128.StoreInterleaved(at, new(a._v.GetLower()), new(b._v.GetLower()));
        Lanes128.StoreInterleaved(at + 8, new(a._v.GetUpper()), new(b._v.GetUpper()));
    }
}

internal readonly struct Lanes512(Vector512<float> v) : ILanes<Lanes512>
{
    private readonly Vector512<float> _v = v;
    public static int Count => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe Lanes512 Load(float* p) => new(Vector512.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static unsafe void Store(float* p, Lanes512 v) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Broadcast(float v) => new(Vector512.Create(v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 MultiplyAdd(Lanes512 a, Lanes512 b, Lanes512 c) => new(Vector512.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Clamp(Lanes512 v, float lo, float hi) => new(Vector512.MinNative(Vector512.Create(hi),
        Vector512.MaxNative(Vector512.Create(lo), v._v)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 Leaky(Lanes512 v, float slope) =>
        new(Vector512.ConditionalSelect(Vector512.LessThan(v._v, Vector512<float>.Zero), v._v * slope, v._v));
    private static readonly Vector512<int> InterleaveLow = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    private static readonly Vector512<int> InterleaveHigh = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreInterleaved(float* at, Lanes512 a, Lanes512 b)
    {
        if (Avx512F.IsSupported)
        {
            Avx512F.Store(at, Avx512F.PermuteVar16x32x2(a._v, InterleaveLow, b._v));
            Avx512F.Store(at + 16, Avx512F.PermuteVar16x32x2(a._v, InterleaveHigh, b._v));
        }
        else
        {
            Lanes256.StoreInterleaved(at, new(a._v.GetLower()), new(b._v.GetLower()));
            Lanes256.StoreInterleaved(at + 16, new(a._v.GetUpper()), new(b._v.GetUpper()));
        }
    }
}

/// <summary>The vector widths this CPU runs natively, widest first.</summary>
public static class VectorWidths
{
    /// <summary>
    /// Floats per vector: 16 with AVX-512, 8 with AVX, 4 (SSE, NEON; or Vector128's software fallback where the
    /// CPU has none). The direct convolution kernels use the widest that a layer's rows fill.
    /// </summary>
    public static IReadOnlyList<int> Accelerated { get; } = Detect();

    /// <summary>
    /// 32 vector registers (AVX-512's, at every width, and ARM64's): enough for kernels that keep 16 accumulators and
    /// 12 weights live; with AVX2's 16 they would spill.
    /// </summary>
    internal static bool ThirtyTwoRegisters { get; } = Avx512F.IsSupported || AdvSimd.Arm64.IsSupported;

    /// <summary>
    /// The widest accelerated width of at most <paramref name="maxLanes"/> floats (the narrowest when none is that
    /// small) that a row of <paramref name="row"/> floats fills; 0 when the row is narrower than that.
    /// </summary>
    internal static int Widest(int row, int maxLanes)
    {
        var allowed = Accelerated.Where(l => l <= maxLanes).DefaultIfEmpty(Accelerated[^1]);
        return allowed.FirstOrDefault(l => row >= l);
    }

    /// <summary>
    /// One core's multiply-add ceiling at the widest accelerated width, in GFLOP/s: twelve independent FMA chains in
    /// registers (enough to hide the FMA latency on every recent x64 and ARM core), no memory traffic; the best of 200
    /// runs of about half a millisecond, so that a shared core still shows what it does when it is not interrupted.
    /// The measured peak (ONNX Runtime's GEMM) uses AVX-512 wherever the CPU has it, so on a CPU or a process limited to
    /// AVX2 (DOTNET_EnableAVX512=0) this is the ceiling the engine's kernels can actually reach.
    /// </summary>
    public static double FmaCeilingGflops() => Accelerated[0] switch
    {
        16 => FmaCeiling<Lanes512>(),
        8 => FmaCeiling<Lanes256>(),
        _ => FmaCeiling<Lanes128>(),
    };

    private static double FmaCeiling<T>() where T : struct, ILanes<T>
    {
        const int chains = 12;
        long iterations = 1 << 10;
        Chains<T>(iterations); // compiled and warm before timing
        while (true)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            Chains<T>(iterations);
            if (System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds >= 0.5 || iterations >= 1L << 40) break;
            iterations *= 2;
        }
        double best = 0;
        for (int rep = 0; rep < 200; rep++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            float sink = Chains<T>(iterations);
            double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (float.IsFinite(sink)) best = Math.Max(best, iterations * chains * T.Count * 2.0 / seconds / 1e9);
        }
        return best;
    }

    // The result feeds the caller's check, so the JIT cannot drop the chains; fully optimised from the first call (a
    // tier-0 loop keeps its accumulators in memory).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Chains<T>(long iterations) where T : struct, ILanes<T>
    {
        T m = T.Broadcast(0.999f), a = T.Broadcast(1e-3f);
        T c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        for (long i = 0; i < iterations; i++)
        {
            c0 = T.MultiplyAdd(c0, m, a); c1 = T.MultiplyAdd(c1, m, a); c2 = T.MultiplyAdd(c2, m, a); c3 = T.MultiplyAdd(c3, m, a);
            c4 = T.MultiplyAdd(c4, m, a); c5 = T.MultiplyAdd(c5, m, a); c6 = T.MultiplyAdd(c6, m, a); c7 = T.MultiplyAdd(c7, m, a);
            c8 = T.MultiplyAdd(c8, m, a); c9 = T.MultiplyAdd(c9, m, a); c10 = T.MultiplyAdd(c10, m, a); c11 = T.MultiplyAdd(c11, m, a);
        }
        // summed in registers: copying the chains anywhere else makes the JIT keep them in memory inside the loop
        T one = T.Broadcast(1f);
        T total = T.MultiplyAdd(T.MultiplyAdd(T.MultiplyAdd(c0, one, c1), one, T.MultiplyAdd(c2, one, c3)), one,
            T.MultiplyAdd(T.MultiplyAdd(c4, one, c5), one, T.MultiplyAdd(c6, one, c7)));
        total = T.MultiplyAdd(total, one, T.MultiplyAdd(T.MultiplyAdd(c8, one, c9), one, T.MultiplyAdd(c10, one, c11)));
        float* lanes = stackalloc float[T.Count];
        T.Store(lanes, total);
        float sum = 0;
        for (int k = 0; k < T.Count; k++) sum += lanes[k];
        return sum;
    }

    private static int[] Detect()
    {
        var widths = new List<int>();
        if (Vector512.IsHardwareAccelerated) widths.Add(16);
        if (Vector256.IsHardwareAccelerated) widths.Add(8);
        widths.Add(4);
        return widths.ToArray();
    }
}

using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Sculpt.Runtime;

/// <summary>
/// One-time libtorch setup shared by the CLI, tests and benchmarks (NNPACK and oneDNN off, see below).
/// NNPACK: libtorch tries NNPACK for some convolutions and, on CPUs it does not support, prints
/// "Could not initialize NNPACK! Reason: Unsupported hardware." on every attempt. TorchSharp does not
/// expose torch.backends.nnpack, so we call at::Context::setUserEnabledNNPACK(false) in libtorch_cpu
/// directly: libtorch then never tries NNPACK (it would fall back to the same kernels anyway).
/// </summary>
public static class TorchRuntime
{
    private static readonly object Gate = new();
    private static bool _initialized;

    public static bool NnpackDisabled { get; private set; }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate IntPtr GlobalContextFn();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate void SetBoolFn(IntPtr self, [MarshalAs(UnmanagedType.U1)] bool value);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] [return: MarshalAs(UnmanagedType.U1)] private delegate bool GetBoolFn(IntPtr self);

    public static void Initialize()
    {
        lock (Gate)
        {
            if (_initialized) return;
            _initialized = true;
            torch.InitializeDeviceType(DeviceType.CPU);
            NnpackDisabled = TryDisableNnpack();
            ChooseOneDnn();
        }
    }

    private const string SetMkldnnSymbol = "_ZN2at7Context20setUserEnabledMkldnnEb";

    /// <summary>
    /// oneDNN (mkldnn) is used where it is exact on this CPU (SCULPT_ONEDNN=auto, the default). libtorch 2.10's oneDNN
    /// is wrong on some CPUs in its blocked (NCHW) kernels: on a Zen 5 EPYC (family 26), every forward convolution with
    /// more than 16 input channels not a multiple of 16, and intermittently (sometimes NaN) conv2d input gradients and
    /// stride-1 conv_transpose2d outputs whose gradient-side channel count is not a multiple of 16; family-23 EPYCs
    /// showed the second kind too, while an earlier AVX-512 EPYC was exact and 2.5× faster than the native kernels
    /// (bench/RESULTS.md). Its channels-last (NHWC) kernels were exact on the Zen 5 except with one-channel tensors,
    /// whose layout is ambiguous. So while oneDNN is on, <see cref="Conv2d"/> and <see cref="ConvTranspose2d"/> run
    /// channels-last, and at start-up <see cref="ProbeOneDnn"/> runs the convolutions training uses (forward, input and
    /// weight gradients; strided, transposed, stride-1 transposed, 1×1; 1 to 40 channels) through those two, with oneDNN
    /// twice for bit-for-bit repeatability, against the native kernels, and keeps oneDNN only if every value agrees.
    /// SCULPT_ONEDNN=on forces it on, =off off. Deployment does not use oneDNN (ONNX Runtime).
    /// </summary>
    public static bool OneDnnDisabled { get; private set; }

    /// <summary>Why oneDNN is on or off in this process (for logs and reproducibility records).</summary>
    public static string OneDnnChoice { get; private set; } = "not probed";

    private static void ChooseOneDnn()
    {
        var choice = Environment.GetEnvironmentVariable("SCULPT_ONEDNN")?.Trim().ToLowerInvariant();
        if (choice is "on" or "off")
        {
            UseOneDnn(choice == "on");
            OneDnnChoice = $"{choice} (SCULPT_ONEDNN)";
            return;
        }
        var problem = ProbeOneDnn();
        UseOneDnn(problem is null);
        OneDnnChoice = problem is null ? "on (channels-last; exact on this CPU)" : $"off ({problem})";
    }

    /// <summary>
    /// Null when oneDNN's convolutions equal the native kernels' (relative 1e-4) and repeat bit for bit; else what differed.
    /// Every tensor is held in a variable until its last use: a temporary can be finalized during a native call.
    /// </summary>
    public static string? ProbeOneDnn()
    {
        try { return CompareOneDnnWithNative(); }
        finally { SetContextFlag(SetMkldnnSymbol, !OneDnnDisabled); } // the probe leaves the process as it found it
    }

    internal static readonly (int N, int Cin, int Cout, int Size, int Kernel, int Stride, int Pad, bool Transposed)[] ProbeCases =
    {
        (2, 3, 8, 24, 3, 1, 1, false), (2, 8, 5, 16, 3, 2, 1, false), (2, 7, 3, 20, 3, 1, 1, false), (2, 16, 1, 16, 1, 1, 0, false),
        (2, 8, 4, 12, 2, 2, 0, true), (2, 5, 3, 14, 3, 1, 1, true), (2, 4, 6, 10, 3, 1, 1, true),
        // shapes of the measurement that found wrong gradients on the family-23 machines (bench/RESULTS.md)
        (4, 4, 4, 32, 3, 1, 1, false), (4, 32, 3, 32, 3, 1, 1, false), (8, 16, 16, 56, 3, 1, 1, false), (4, 16, 16, 32, 3, 1, 1, true),
        // channel counts beyond 16 that are not multiples of it, one-channel tensors (all wrong on the Zen 5 in NCHW)
        (2, 24, 5, 12, 3, 1, 1, false), (2, 12, 33, 10, 3, 1, 1, false), (2, 24, 12, 12, 3, 1, 1, true), (2, 1, 5, 20, 3, 2, 1, false),
        (2, 1, 4, 16, 3, 1, 1, false), (2, 4, 1, 16, 3, 1, 1, false), (2, 1, 3, 12, 3, 1, 1, true), (2, 5, 3, 14, 2, 2, 0, true),
        // 1×1 convolutions, plain and strided, to widths whose channels-last oneDNN kernels were wrong on the Zen 5
        (2, 24, 40, 8, 1, 1, 0, false), (2, 17, 36, 9, 1, 2, 0, false),
    };

    private static torch.Tensor Hold(torch.Tensor t) => t; // the probe's dispose scope releases its temporaries

    private static string? CompareOneDnnWithNative()
    {
        using var _ = torch.NewDisposeScope();
        using var generator = new torch.Generator(12345); // its own, so that the global seed stays the user's
        foreach (var c in ProbeCases)
        {
            int outSize = c.Transposed ? (c.Size - 1) * c.Stride - 2 * c.Pad + c.Kernel : (c.Size + 2 * c.Pad - c.Kernel) / c.Stride + 1;
            var x = torch.randn([c.N, c.Cin, c.Size, c.Size], generator: generator);
            var w = torch.randn(c.Transposed ? [c.Cin, c.Cout, c.Kernel, c.Kernel] : [c.Cout, c.Cin, c.Kernel, c.Kernel], generator: generator);
            var g = torch.randn([c.N, c.Cout, outSize, outSize], generator: generator);
            float[][] Run(bool oneDnn)
            {
                SetContextFlag(SetMkldnnSymbol, oneDnn);
                var xs = x.clone().requires_grad_(true);
                var ws = w.clone().requires_grad_(true);
                long[] stride = [c.Stride, c.Stride], pad = [c.Pad, c.Pad];
                var y = c.Transposed ? ConvTranspose2d(xs, ws, null, stride, pad, [0, 0], [1, 1], 1, Hold, oneDnn)
                    : Conv2d(xs, ws, null, stride, pad, [1, 1], 1, Hold, oneDnn);
                y.backward([g]);
                var dx = xs.grad!;
                var dw = ws.grad!;
                return [y.data<float>().ToArray(), dx.data<float>().ToArray(), dw.data<float>().ToArray()];
            }
            var native = Run(false);
            var first = Run(true);
            var second = Run(true);
            string what = $"{(c.Transposed ? "conv_transpose2d" : "conv2d")} {c.Cin}→{c.Cout} k{c.Kernel} s{c.Stride}";
            for (int k = 0; k < 3; k++)
            {
                string part = k switch { 0 => "output", 1 => "input gradient", _ => "weight gradient" };
                double scale = native[k].Max(v => Math.Abs(v));
                for (int i = 0; i < native[k].Length; i++)
                {
                    if (!(Math.Abs(first[k][i] - native[k][i]) <= 1e-4 * scale)) return $"{what} {part} differs from the native kernels";
                    if (BitConverter.SingleToInt32Bits(first[k][i]) != BitConverter.SingleToInt32Bits(second[k][i])) return $"{what} {part} does not repeat bit for bit";
                }
            }
        }
        return null;
    }

    /// <summary>
    /// conv2d as Sculpt runs it. With oneDNN on, the input goes in channels-last layout (oneDNN's NHWC kernels; libtorch
    /// then converts the weight, and the layout carries through batch norm, activations, pooling and concatenation, so
    /// usually only the first layer copies) — the blocked NCHW kernels are wrong on some CPUs (see OneDnnDisabled) — and
    /// 1×1 convolutions are matrix products. A one-channel input has no distinct channels-last layout; where its
    /// gradient is needed it gets a zero second channel.
    /// <paramref name="keep"/> receives every tensor made here so that the caller can release them.
    /// </summary>
    public static torch.Tensor Conv2d(torch.Tensor x, torch.Tensor w, torch.Tensor? b, long[] stride, long[] padding, long[] dilation,
        long groups, Func<torch.Tensor, torch.Tensor> keep) => Conv2d(x, w, b, stride, padding, dilation, groups, keep, !OneDnnDisabled);

    private static torch.Tensor Conv2d(torch.Tensor x, torch.Tensor w, torch.Tensor? b, long[] stride, long[] padding, long[] dilation,
        long groups, Func<torch.Tensor, torch.Tensor> keep, bool oneDnn)
    {
        if (!oneDnn) return keep(torch.nn.functional.conv2d(x, w, b, stride, padding, dilation, groups));
        if (x.shape[1] == 1 && groups == 1 && x.requires_grad) (x, w) = WithZeroSecondChannel(x, w, weightChannelDim: 1, keep);
        bool pointwise = w.shape[2] == 1 && w.shape[3] == 1 && groups == 1 && padding.All(p => p == 0);
        if (!pointwise) return keep(torch.nn.functional.conv2d(ChannelsLast(x, keep), w, b, stride, padding, dilation, groups));
        // oneDNN's channels-last 1×1 kernels were wrong on the Zen 5 too (some output widths above 32): a 1×1 convolution
        // is a matrix product over the channels, which the channels-last view is laid out for
        var sampled = stride.Any(s => s > 1) ? keep(x.slice(2, 0, x.shape[2], stride[0]).slice(3, 0, x.shape[3], stride[1])) : x;
        var pixels = keep(ChannelsLast(sampled, keep).permute(0, 2, 3, 1));
        var matrix = keep(w.view(w.shape[0], w.shape[1]));
        var product = keep(torch.nn.functional.linear(pixels, matrix, b));
        return keep(product.permute(0, 3, 1, 2));
    }

    /// <summary>conv_transpose2d as Sculpt runs it: channels-last under oneDNN, as <see cref="Conv2d"/>.</summary>
    public static torch.Tensor ConvTranspose2d(torch.Tensor x, torch.Tensor w, torch.Tensor? b, long[] stride, long[] padding,
        long[] outputPadding, long[] dilation, long groups, Func<torch.Tensor, torch.Tensor> keep) =>
        ConvTranspose2d(x, w, b, stride, padding, outputPadding, dilation, groups, keep, !OneDnnDisabled);

    private static torch.Tensor ConvTranspose2d(torch.Tensor x, torch.Tensor w, torch.Tensor? b, long[] stride, long[] padding,
        long[] outputPadding, long[] dilation, long groups, Func<torch.Tensor, torch.Tensor> keep, bool oneDnn)
    {
        if (oneDnn)
        {
            // its forward is oneDNN's backward-data, so a one-channel input is padded with or without a gradient
            if (x.shape[1] == 1 && groups == 1) (x, w) = WithZeroSecondChannel(x, w, weightChannelDim: 0, keep);
            x = ChannelsLast(x, keep);
        }
        return keep(torch.nn.functional.conv_transpose2d(x, w, b, stride, padding, outputPadding, dilation, groups));
    }

    /// <summary>
    /// A one-channel input with a zero second channel, and the weight with zero taps for it along
    /// <paramref name="weightChannelDim"/> (1 for conv2d's [out, in, kh, kw], 0 for conv_transpose2d's [in, out, kh, kw]):
    /// the same result, in a tensor whose channels-last layout is unambiguous.
    /// </summary>
    private static (torch.Tensor X, torch.Tensor W) WithZeroSecondChannel(torch.Tensor x, torch.Tensor w, int weightChannelDim,
        Func<torch.Tensor, torch.Tensor> keep)
    {
        long[] weightPad = new long[2 * (4 - weightChannelDim)]; // F.pad lists (before, after) pairs from the last dimension
        weightPad[^1] = 1;
        return (keep(torch.nn.functional.pad(x, [0, 0, 0, 0, 0, 1])), keep(torch.nn.functional.pad(w, weightPad)));
    }

    /// <summary>The tensor in channels-last layout (a copy only if it is not already; TorchSharp has no memory_format).</summary>
    private static torch.Tensor ChannelsLast(torch.Tensor x, Func<torch.Tensor, torch.Tensor> keep)
    {
        long c = x.shape[1], w = x.shape[3];
        if (c == 1 || (x.stride(1) == 1 && x.stride(3) == c && x.stride(2) == c * w)) return x;
        var nhwc = keep(keep(x.permute(0, 2, 3, 1)).contiguous());
        return keep(nhwc.permute(0, 3, 1, 2));
    }

    /// <summary>Switches oneDNN on or off for the process (benchmarks comparing the two paths; see <see cref="OneDnnDisabled"/>).</summary>
    public static void UseOneDnn(bool enabled)
    {
        Initialize();
        if (SetContextFlag(SetMkldnnSymbol, enabled)) OneDnnDisabled = !enabled;
    }

    private static IntPtr _torchCpu;

    private static bool TryExport(string symbol, out IntPtr function)
    {
        function = IntPtr.Zero;
        if (_torchCpu == IntPtr.Zero)
        {
            var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
            foreach (var candidate in new[] { Path.Combine(dir, "libtorch_cpu.so"), Path.Combine(AppContext.BaseDirectory, "libtorch_cpu.so"), "libtorch_cpu.so" })
                if (NativeLibrary.TryLoad(candidate, out _torchCpu)) break;
        }
        return _torchCpu != IntPtr.Zero && NativeLibrary.TryGetExport(_torchCpu, symbol, out function);
    }

    private static IntPtr? GlobalContext() =>
        TryExport("_ZN2at13globalContextEv", out var fn) ? Marshal.GetDelegateForFunctionPointer<GlobalContextFn>(fn)() : null;

    /// <summary>Calls a bool setter of at::Context (TorchSharp exposes neither NNPACK nor oneDNN switches).</summary>
    private static bool SetContextFlag(string setter, bool value)
    {
        if (GlobalContext() is not { } ctx || !TryExport(setter, out var set)) return false;
        Marshal.GetDelegateForFunctionPointer<SetBoolFn>(set)(ctx, value);
        return true;
    }

    private static bool TryDisableNnpack() =>
        SetContextFlag("_ZN2at7Context20setUserEnabledNNPACKEb", false)
        && TryExport("_ZNK2at7Context17userEnabledNNPACKEv", out var get)
        && !Marshal.GetDelegateForFunctionPointer<GetBoolFn>(get)(GlobalContext()!.Value);

    /// <summary>Versions for reproducibility records.</summary>
    public static string TorchSharpVersion =>
        typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0] ?? "?";
}

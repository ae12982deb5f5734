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
    /// oneDNN (mkldnn) is used where it is exact on this CPU (SCULPT_ONEDNN=auto, the default). Earlier machines of this project
    /// (AMD EPYC family 23, libtorch 2.10) gave wrong input gradients of conv2d and wrong stride-1 conv_transpose2d
    /// outputs (off by O(10), sometimes NaN) in about half of the small cases tried; on an AVX-512 EPYC all 48
    /// cases of <c>Sculpt.Bench onednn</c> agree with libtorch's native kernels to 1e-6, and training is 2.5×
    /// faster (bench/RESULTS.md). So at start-up <see cref="ProbeOneDnn"/> compares oneDNN with the native
    /// kernels on the convolutions training uses (forward, input and weight gradients; strided, transposed,
    /// stride-1 transposed), twice for bit-for-bit repeatability, and keeps oneDNN only if every value agrees —
    /// (the default, SCULPT_ONEDNN=auto). The demo failures once blamed on oneDNN ("Expected false to be true") were
    /// TorchSharp Scalars finalized during native calls (see HeldScalars), gone with that fix. SCULPT_ONEDNN=on
    /// forces it on, =off off. Deployment does not use oneDNN (ONNX Runtime).
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
        OneDnnChoice = problem is null ? "on (exact on this CPU)" : $"off ({problem})";
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
    };

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
                var y = c.Transposed ? torch.nn.functional.conv_transpose2d(xs, ws, null, stride, pad)
                    : torch.nn.functional.conv2d(xs, ws, null, stride, pad);
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

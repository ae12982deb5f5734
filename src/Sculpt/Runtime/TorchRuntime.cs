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
            OneDnnDisabled = SetContextFlag(SetMkldnnSymbol, false);
        }
    }

    private const string SetMkldnnSymbol = "_ZN2at7Context20setUserEnabledMkldnnEb";

    /// <summary>
    /// oneDNN (mkldnn) is switched off for the whole process. Measured on this project's machines (AMD EPYC,
    /// libtorch 2.10 CPU build): oneDNN's backward-data convolution — the input gradient of conv2d and the
    /// forward of stride-1 conv_transpose2d — returned wrong values (off by O(10), sometimes NaN) in about half
    /// of the small cases tried, and runs that used oneDNN only for the conv2d forward still failed to
    /// reproduce bit-for-bit now and then. libtorch's native kernels are exact and deterministic; they cost
    /// about 2.6× in training speed (bench/RESULTS.md). Deployment does not use oneDNN: ONNX Runtime runs its own kernels.
    /// </summary>
    public static bool OneDnnDisabled { get; private set; }

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

using Sculpt.Cli;
using Sculpt.Graph;
using Sculpt.Runtime;
using TorchSharp;

// Every test runs alone: libtorch's process-wide context flags and ONNX Runtime's thread pools are shared,
// and a clean-clone CI run once lost its test host to a native crash with classes running side by side.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]

namespace Sculpt.Tests;

internal static class TestAssembly
{
    /// <summary>libtorch's context flags (NNPACK and oneDNN off) are set before any test touches a tensor.</summary>
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void Initialize() => TorchRuntime.Initialize();
}

internal static class TestFiles
{
    /// <summary>The repository's root folder (the one holding Sculpt.slnx), found from the test's output folder.</summary>
    public static string RepoRoot()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Sculpt.slnx"))) root = Path.GetDirectoryName(root)!;
        return root;
    }

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "sculpt-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Default-initialised weights with non-trivial batch-norm parameters and statistics.</summary>
    /// <summary>An untrained one-level U-Net (width 2) saved as a package for <paramref name="size"/>² inputs, for I/O tests.</summary>
    public static string UntrainedModel(string dir, int size)
    {
        var g = Sculpt.Models.UNet.Build(new Sculpt.Models.UNetConfig { Depth = 1, BaseWidth = 2, InputSize = size });
        using var gm = new GraphModule(g);
        var meta = new ModelMeta(); meta.Task.InputHeight = meta.Task.InputWidth = size;
        var model = Path.Combine(dir, "m.sculpt");
        new ModelPackage(g, gm.ExportWeights(), meta).Save(model);
        return model;
    }

    public static WeightSet WithBnStatistics(NetworkGraph g, int seed)
    {
        torch.manual_seed(seed);
        using var m = new GraphModule(g);
        var w = m.ExportWeights();
        var r = new Random(seed);
        foreach (var k in w.Keys.Where(k => k.Contains("bn") || k.Contains("running")).ToList())
            w[k] = new TensorData(w[k].Shape, w[k].Data.Select(_ => (float)(k.EndsWith("running_var") ? 0.3 + r.NextDouble() : r.NextDouble() - 0.5)).ToArray());
        return w;
    }

    /// <summary>Runs the CLI in-process with Console captured (callers are in the serial collection).</summary>
    public static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        Console.SetOut(o); Console.SetError(e);
        try { return (CliMain.Run(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }
}

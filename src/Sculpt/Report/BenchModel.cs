using Microsoft.ML.OnnxRuntime;
using Sculpt.Common;
using Sculpt.Deploy;
using Sculpt.Engine;
using Sculpt.Onnx;
using Sculpt.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Sculpt.Report;

/// <summary>
/// A model as the benchmark times it with each executor: a .sculpt package (exported to ONNX in a scratch folder for
/// ONNX Runtime) or an .onnx file as given (ONNX Runtime, and Sculpt's engine through the importer; libtorch needs a
/// package). <see cref="Subject"/> hands it to <see cref="Benchmark"/>.
/// </summary>
public sealed class BenchModel
{
    public string Name { get; }
    public string Path { get; }
    /// <summary>The package, or null for an .onnx file.</summary>
    public ModelPackage? Package { get; }
    public OrtModel Ort { get; }
    /// <summary>Multiply-accumulates per image; for an .onnx file the count its exporter recorded, else 0.</summary>
    public long Macs { get; }
    /// <summary>The input's shape at batch 1 (dynamic dimensions as 1).</summary>
    public long[] InputShape { get; }

    private readonly GraphOptimizationLevel? _fixedLevel;
    private readonly Dictionary<int, GraphOptimizationLevel> _fastest = new();
    private SculptEngine? _engine;

    private BenchModel(string path, ModelPackage? package, OrtModel ort, long macs, long[] inputShape, GraphOptimizationLevel? level)
    {
        (Name, Path, Package, Ort) = (System.IO.Path.GetFileName(path), path, package, ort);
        (Macs, InputShape, _fixedLevel) = (macs, inputShape, level);
    }

    /// <summary>
    /// Opens <paramref name="path"/>; <paramref name="level"/> fixes ONNX Runtime's optimisation level, null picks the
    /// faster of ALL and EXTENDED per thread count (<see cref="OrtModel.Fastest"/>).
    /// </summary>
    public static BenchModel Load(string path, string scratchDir, GraphOptimizationLevel? level = null)
    {
        if (path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            var ort = new OrtModel(path);
            long macs = long.TryParse(ort.Metadata.GetValueOrDefault("sculpt.macs"), out var m) ? m : 0;
            return new BenchModel(path, null, ort, macs, ort.InputShape.Select(d => d < 0 ? 1 : d).ToArray(), level);
        }
        var pkg = ModelPackage.Load(path);
        var onnx = System.IO.Path.Combine(scratchDir, Guid.NewGuid().ToString("N") + ".onnx");
        OnnxExport.Save(pkg, onnx);
        var input = pkg.Graph.InputNodes.Single();
        return new BenchModel(path, pkg, new OrtModel(onnx), pkg.Graph.MacCount(), [1, input.Channels, input.Height, input.Width], level);
    }

    /// <summary>Sculpt's engine over the model (planned on first use).</summary>
    public SculptEngine Engine => _engine ??= SculptEngine.Create(Package ?? OnnxImport.Read(Path));

    /// <summary>ONNX Runtime's optimisation level at <paramref name="threads"/>: the fixed one, or the faster, measured once.</summary>
    public GraphOptimizationLevel Level(int threads)
    {
        if (_fixedLevel is { } l) return l;
        if (!_fastest.TryGetValue(threads, out var found))
        {
            using var fastest = OrtModel.Fastest(level => new OrtModel(Ort.SourcePath, threads, level));
            _fastest[threads] = found = fastest.Optimization;
        }
        return found;
    }

    public static string LevelName(GraphOptimizationLevel level) => level switch
    {
        GraphOptimizationLevel.ORT_ENABLE_ALL => "all", GraphOptimizationLevel.ORT_ENABLE_EXTENDED => "extended",
        GraphOptimizationLevel.ORT_ENABLE_BASIC => "basic", _ => level.ToString(),
    };

    /// <summary>One run over a fixed batch with <paramref name="executor"/> (sculpt, ort or torch).</summary>
    public Action Runner(string executor, int batch, int threads)
    {
        if (executor == "sculpt") return Engine.SampleRun(batch);
        if (executor == "ort") return new OrtModel(Ort.SourcePath, threads, Level(threads)).SampleRun(batch);
        if (executor != "torch") throw new ArgumentException($"unknown executor '{executor}' (sculpt, ort or torch)");
        if (Package is null) throw new InvalidOperationException($"{Path}: libtorch times a .sculpt package, not an .onnx file");
        var shape = (long[])InputShape.Clone();
        shape[0] = batch;
        var data = TimingInput.Of(shape.Aggregate(1L, (x, y) => x * y));
        var module = new GraphModule(Package.Graph, Package.Weights);
        module.eval();
        var x = tensor(data, shape);
        return () =>
        {
            torch.set_num_threads(threads);
            using var _ = no_grad();
            using var y = module.forward(x);
        };
    }

    public BenchSubject Subject() => new(Name, Macs, Runner, (executor, threads) => executor == "ort" ? LevelName(Level(threads)) : null);
}

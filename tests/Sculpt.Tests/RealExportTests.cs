using Sculpt.Data;
using Sculpt.Deploy;
using Sculpt.Graph;
using Sculpt.Onnx;
using Sculpt.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace Sculpt.Tests;

/// <summary>
/// Files written by the real exporter (torch.onnx of Debian's torch 1.13, scripts/make-onnx-fixtures.py), each with
/// a seeded input and PyTorch's own output: the importer is held to what exporters write, not to our encoder.
/// </summary>
public class RealExportTests
{
    public static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "onnx");

    public static TheoryData<string> Fixtures()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Dir, "*.onnx").Order()) data.Add(Path.GetFileNameWithoutExtension(f));
        return data;
    }

    internal static (ModelPackage Model, float[] Input, long[] Shape, float[] Expected) Load(string name)
    {
        var model = OnnxImport.Read(Path.Combine(Dir, name + ".onnx"), name.Contains("dynamic_hw") ? (64, 64) : null);
        var (x, shape) = Npy.Read(Path.Combine(Dir, name + ".input.npy"));
        var (y, _) = Npy.Read(Path.Combine(Dir, name + ".output.npy"));
        return (model, x, shape, y);
    }

    internal static float[] RunTorch(NetworkGraph g, WeightSet w, float[] x, long[] shape)
    {
        using var m = new GraphModule(g, w);
        m.eval();
        using var _ = no_grad();
        using var input = tensor(x, shape);
        using var y = m.forward(input);
        return y.contiguous().data<float>().ToArray();
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void ImportedLogitsEqualPyTorchs(string name)
    {
        var (model, x, shape, expected) = Load(name);
        var got = RunTorch(model.Graph, model.Weights, x, shape);
        Assert.Equal(expected.Length, got.Length);
        double scale = expected.Max(v => Math.Abs(v));
        double diff = expected.Zip(got, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 1e-4 * Math.Max(scale, 1), $"{name}: max |Δ| = {diff:g3} against a largest logit of {scale:g3}");
        Assert.NotEmpty(ChannelGroups.Analyze(model.Graph).Prunable);
    }
}

/// <summary>Every real export through the whole workflow: import, groups, a 4× prune with a fine-tune, ONNX out.</summary>
public class RealExportWorkflowTests
{
    private static readonly Lazy<string> Data = new(() =>
    {
        var dir = Path.Combine(TestFiles.TempDir(), "synth");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", dir, "--count", "12", "--size", "64", "--seed", "3").Code);
        return dir;
    });

    /// <summary>
    /// nnU-Net exports a binary task as two softmax outputs; train --init had refused binary frames for it ("1 output
    /// channel(s) needed, the model has 2"). It trains now, and the model decodes by argmax over the data's labels.
    /// </summary>
    [Fact]
    public void ATwoOutputBinaryModelFineTunesOnBinaryFrames()
    {
        var dir = TestFiles.TempDir();
        string model = Path.Combine(dir, "m.sculpt"), tuned = Path.Combine(dir, "t.sculpt");
        var r = TestFiles.Cli("import", "--onnx", Path.Combine(RealExportTests.Dir, "nnunet.onnx"), "--out", model, "--json");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(2, ModelPackage.Load(model).Graph.OutputChannels());
        // --json: what a script needs to go on, the placeholder labels an export without names gets among it
        var imported = System.Text.Json.Nodes.JsonNode.Parse(r.Out)!;
        Assert.Equal(ModelPackage.Load(model).Graph.ParameterCount(), imported["params"]!.GetValue<long>());
        Assert.Equal(["background", "class1"], imported["labels"]!.AsArray().Select(l => l!.GetValue<string>()));
        r = TestFiles.Cli("train", "--init", model, "--data", Data.Value, "--epochs", "1", "--batch", "4", "--out", tuned);
        Assert.True(r.Code == 0, r.Err);
        var task = ModelPackage.Load(tuned).Meta.Task;
        Assert.Equal(("multiclass", 2), (task.Mode, task.OutputChannels));
        Assert.Equal(new[] { "background", "lv" }, task.Labels);
        var e = TestFiles.Cli("eval", "--model", tuned, "--data", Data.Value, "--json");
        Assert.True(e.Code == 0, e.Err);
    }

    [Theory]
    [MemberData(nameof(RealExportTests.Fixtures), MemberType = typeof(RealExportTests))]
    public void ImportsPrunesFourfoldAndExportsToWhatOnnxRuntimeRuns(string name)
    {
        var dir = TestFiles.TempDir();
        string model = Path.Combine(dir, "m.sculpt"), pruned = Path.Combine(dir, "p.sculpt"), onnx = Path.Combine(dir, "p.onnx");
        var import = new List<string> { "import", "--onnx", Path.Combine(RealExportTests.Dir, name + ".onnx"), "--out", model };
        if (name.Contains("dynamic_hw")) import.AddRange(["--input-size", "64,64"]);
        var r = TestFiles.Cli(import.ToArray());
        Assert.True(r.Code == 0, r.Err);
        var groups = TestFiles.Cli("inspect", "--model", model, "--groups");
        Assert.Contains(" yes ", groups.Out);
        // grey synthetic frames feed the three-channel torchvision models as EchoNet's grey videos do
        r = TestFiles.Cli("prune", "--model", model, "--data", Data.Value, "--compression", "4", "--steps", "2", "--max-step-ratio", "3", "--epochs", "1",
            "--final-epochs", "0", "--batch", "4", "--seed", "1", "--out", pruned);
        Assert.True(r.Code == 0, r.Err);
        var dense = ModelPackage.Load(model);
        // a model of more classes than the binary frames have is pruned, with a warning that names both
        Assert.Equal(dense.Meta.Task.Labels.Count > 2, r.Err.Contains("the classes the data lacks are trained towards absence"));
        var small = ModelPackage.Load(pruned);
        Assert.True(small.Graph.ParameterCount() * 4 <= dense.Graph.ParameterCount() * 1.05, $"{small.Graph.ParameterCount()} of {dense.Graph.ParameterCount()}");
        r = TestFiles.Cli("export", "--model", pruned, "--onnx", onnx);
        Assert.True(r.Code == 0, r.Err);

        var (x, shape) = Npy.Read(Path.Combine(RealExportTests.Dir, name + ".input.npy"));
        using var ort = new OrtModel(onnx);
        var (fromOrt, _) = ort.Run(x, shape);
        var fromTorch = RealExportTests.RunTorch(small.Graph, small.Weights, x, shape);
        double diff = fromOrt.Zip(fromTorch, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 1e-4 * Math.Max(1, fromTorch.Max(v => Math.Abs(v))), $"{name}: ONNX Runtime vs TorchSharp max |Δ| = {diff:g3}");
    }
}

/// <summary>
/// The zero-contribution test of every dependency rule the real exports use (residual adds, concatenated skips,
/// squeeze-excitation and LR-ASPP gates, one-channel attention gates, depthwise ties, PReLU slopes, instance and
/// group norms): channels whose outgoing contribution is zeroed are sliced away and the output does not change.
/// </summary>
public class RealExportDependencyTests
{
    [Theory]
    [MemberData(nameof(RealExportTests.Fixtures), MemberType = typeof(RealExportTests))]
    public void ZeroContributionChannelsSliceAwayExactly(string name)
    {
        var (model, x, shape, _) = RealExportTests.Load(name);
        var groups = ChannelGroups.Analyze(model.Graph);
        var w = new WeightSet();
        foreach (var (k, v) in model.Weights) w[k] = new TensorData(v.Shape, (float[])v.Data.Clone());
        var keep = PruningTests.ZeroEveryKthChannel(groups, w, 2);
        Assert.NotEmpty(keep);
        var before = RealExportTests.RunTorch(model.Graph, w, x, shape);
        var (pg, pw) = Pruning.Slicer.Slice(groups, keep, w);
        var after = RealExportTests.RunTorch(pg, pw!, x, shape);
        double diff = before.Zip(after, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 1e-5 * Math.Max(1, before.Max(v => Math.Abs(v))), $"{name}: max |Δ| = {diff:g3}");
        Assert.True(pg.ParameterCount() < model.Graph.ParameterCount() * 0.8, $"{pg.ParameterCount()} of {model.Graph.ParameterCount()}");
    }
}

public class OnnxRefusalTests
{
    private static void AssertRefused(string onnx, string mentions, params string[] extra)
    {
        var outPath = Path.Combine(TestFiles.TempDir(), "never.sculpt");
        var r = TestFiles.Cli(["import", "--onnx", onnx, "--out", outPath, .. extra]);
        Assert.Equal(1, r.Code);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.Contains(mentions, r.Err);
        Assert.Contains(onnx, r.Err);
        Assert.False(File.Exists(outPath));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(outPath)!));
    }

    [Fact]
    public void FilesOutsideTheSupportedSetFailWithOneLineAndNothingWritten()
    {
        var dir = TestFiles.TempDir();
        // a real export, its operator renamed to one Sculpt does not know (same length, so the protobuf stays valid)
        var bytes = File.ReadAllBytes(Path.Combine(RealExportTests.Dir, "nnunet.onnx"));
        var from = System.Text.Encoding.ASCII.GetBytes("InstanceNormalization");
        var to = System.Text.Encoding.ASCII.GetBytes("InstanceNormalizatioX");
        int hits = 0;
        for (int i = 0; i + from.Length <= bytes.Length; i++)
            if (bytes.AsSpan(i, from.Length).SequenceEqual(from)) { to.CopyTo(bytes, i); hits++; }
        Assert.True(hits > 0);
        var renamed = Path.Combine(dir, "renamed.onnx");
        File.WriteAllBytes(renamed, bytes);
        AssertRefused(renamed, "unsupported ONNX operators: InstanceNormalizatioX at /enc.0/enc.0.1/InstanceNormalizatioX, /enc.0/enc.0.4/InstanceNormalizatioX, /enc.1/enc.1.1/InstanceNormalizatioX and 7 more");
        // dynamic height and width without --input-size
        AssertRefused(Path.Combine(RealExportTests.Dir, "unet_dynamic_hw.onnx"), "--input-size H,W");
        AssertRefused(Path.Combine(RealExportTests.Dir, "unet.onnx"), "disagrees", "--input-size", "32,32");
        // truncated, empty, a device that never ends, a folder
        var cut = Path.Combine(dir, "cut.onnx");
        File.WriteAllBytes(cut, File.ReadAllBytes(Path.Combine(RealExportTests.Dir, "unet.onnx"))[..20000]);
        AssertRefused(cut, "truncated");
        var empty = Path.Combine(dir, "empty.onnx");
        File.WriteAllBytes(empty, []);
        AssertRefused(empty, "empty, or not a regular file");
        AssertRefused("/dev/zero", "not a regular file");
        AssertRefused(dir, "is a folder");
    }

    [Fact]
    public void SculptsOwnDeepLabExportReimportsExactly()
    {
        var g = Models.DeepLabV3.Build(new Models.DeepLabConfig { InChannels = 3, Classes = 2, InputSize = 32, Width = 4, Blocks = [1, 1, 1, 1], AsppChannels = 6, AsppRates = [2, 3, 4] });
        var pkg = new ModelPackage(g, TestFiles.WithBnStatistics(g, 3), new ModelMeta());
        var path = Path.Combine(TestFiles.TempDir(), "deeplab.onnx");
        OnnxExport.Save(pkg, path);
        var back = OnnxImport.Read(path);
        var x = Enumerable.Range(0, 2 * 3 * 32 * 32).Select(i => (float)Math.Sin(i * 0.37)).ToArray();
        var a = RealExportTests.RunTorch(g, pkg.Weights, x, [2, 3, 32, 32]);
        var b = RealExportTests.RunTorch(back.Graph, back.Weights, x, [2, 3, 32, 32]);
        Assert.True(a.Zip(b, (p, q) => Math.Abs(p - q)).Max() <= 1e-4);
        // the final resize to the input's size stays a resize to the input's size
        Assert.Contains(back.Graph.Nodes.OfType<UpsampleNode>(), u => u.Inputs.Count == 2 && back.Graph[u.Inputs[1]] is InputNode);
    }
}

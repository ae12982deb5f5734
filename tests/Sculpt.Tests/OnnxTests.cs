using Sculpt.Onnx;
using Sculpt.Deploy;
using Sculpt.Graph;
using Sculpt.Models;
using Sculpt.Pruning;
using Sculpt.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Sculpt.Tests;

public class OnnxTests
{
    static OnnxTests() => TorchRuntime.Initialize();

    internal static double MaxDiffOrtVsTorch(ModelPackage pkg, int batch, int h, int w)
    {
        var path = Path.Combine(TestFiles.TempDir(), "m.onnx");
        OnnxExport.Save(pkg, path);
        var x = randn(batch, pkg.Graph.InputNodes.Single().Channels, h, w);
        using var module = new GraphModule(pkg.Graph, pkg.Weights);
        module.eval();
        Tensor expected;
        using (no_grad()) expected = module.forward(x);
        using var ort = new OrtModel(path);
        var (data, shape) = ort.Run(x.data<float>().ToArray(), x.shape);
        Assert.Equal(expected.shape, shape);
        var got = tensor(data, shape);
        return (got - expected).abs().max().item<float>();
    }

    [Fact]
    public void ProfilerSplitsARunAndLeavesNoFileBehind()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 32 });
        var path = Path.Combine(TestFiles.TempDir(), "m.onnx");
        OnnxExport.Save(new ModelPackage(g, TestFiles.WithBnStatistics(g, 1), new ModelMeta()), path);
        string ProfileFiles() => string.Join(",", Directory.GetFiles(Environment.CurrentDirectory, "onnxruntime_profile*")
            .Concat(Directory.GetDirectories(Path.GetTempPath(), "sculpt-ortprof-*")).Order());
        var before = ProfileFiles();
        var profile = OrtProfile.Measure(path, 1, 5, 1);
        Assert.Equal(before, ProfileFiles());
        Assert.True(profile.Nodes > 0 && profile.KernelMs > 0 && profile.RunMs >= profile.KernelMs, $"{profile}");
        Assert.Equal(profile.KernelMs, profile.ByOp.Sum(o => o.Ms), 9);
        Assert.Contains(profile.ByOp, o => o.Op.Contains("Conv"));
    }

    [Fact]
    public void DenseUNetMatchesTorchSharp()
    {
        var g = UNet.Build(new UNetConfig { Depth = 3, BaseWidth = 8, InputSize = 32, Classes = 2 });
        var pkg = new ModelPackage(g, TestFiles.WithBnStatistics(g, 1), new ModelMeta());
        Assert.True(MaxDiffOrtVsTorch(pkg, 2, 32, 32) <= 1e-4);
    }

    [Fact]
    public void PrunedBilinearUNetMatchesTorchSharpAtAnotherBatchSize()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 8, InputSize = 32, Bilinear = true });
        var w = TestFiles.WithBnStatistics(g, 2);
        var groups = ChannelGroups.Analyze(g);
        var keep = Allocation.Allocate(groups, Importance.Score(groups, w, Criterion.L2), new Budget("params", g.ParameterCount() / 10.0), new AllocationOptions());
        var (pg, pw) = Slicer.Slice(groups, keep, w);
        Assert.True(MaxDiffOrtVsTorch(new ModelPackage(pg, pw!, new ModelMeta()), 3, 32, 32) <= 1e-4);
    }

    [Fact]
    public void EveryOpGraphMatchesTorchSharp()
    {
        var g = GraphTests.EveryOp();
        Assert.True(MaxDiffOrtVsTorch(new ModelPackage(g, TestFiles.WithBnStatistics(g, 3), new ModelMeta()), 2, 16, 16) <= 1e-4);
    }

    [Fact]
    public void BatchNormFoldingIsExact()
    {
        var g = UNet.Build(new UNetConfig { Depth = 1, BaseWidth = 4, InputSize = 8 });
        var w = TestFiles.WithBnStatistics(g, 4);
        var consumers = g.Nodes.SelectMany(n => n.Inputs.Select(i => (i, n))).ToLookup(p => p.i, p => p.n);
        var (folded, fw) = OnnxExport.FoldBatchNorms(g, w, consumers);
        Assert.Equal(g.Nodes.OfType<BatchNorm2dNode>().Select(b => b.Name).OrderBy(s => s), folded.OrderBy(s => s));
        // conv(x)·γ/σ + β − μγ/σ computed in torch against the folded conv alone
        var x = randn(2, 1, 8, 8);
        var W = (string k) => tensor(w[k].Data, w[k].Shape);
        var F = (string k) => tensor(fw[k].Data, fw[k].Shape);
        var reference = nn.functional.batch_norm(nn.functional.conv2d(x, W("enc0.conv1.weight"), padding: new long[] { 1, 1 }),
            W("enc0.bn1.running_mean"), W("enc0.bn1.running_var"), W("enc0.bn1.weight"), W("enc0.bn1.bias"));
        var foldedOut = nn.functional.conv2d(x, F("enc0.conv1.weight"), F("enc0.conv1.bias"), padding: new long[] { 1, 1 });
        Assert.True((reference - foldedOut).abs().max().item<float>() <= 1e-5);
    }

    [Fact]
    public void ExportCarriesTaskMetadataAndRefusesWrongInputSizes()
    {
        var g = UNet.Build(new UNetConfig { Depth = 1, BaseWidth = 2, InputSize = 8 });
        var meta = new ModelMeta();
        meta.Task.Normalization = new Normalization { Mean = new[] { 0.2 }, Std = new[] { 0.3 } };
        var path = Path.Combine(TestFiles.TempDir(), "m.onnx");
        OnnxExport.Save(new ModelPackage(g, TestFiles.WithBnStatistics(g, 5), meta), path);
        using var ort = new OrtModel(path);
        Assert.Equal("input", ort.InputName);
        Assert.Equal("logits", ort.OutputName);
        Assert.Equal("0.2", ort.Metadata["sculpt.normalization.mean"]);
        Assert.Equal("background,lv", ort.Metadata["sculpt.labels"]);
        Assert.Equal(new long[] { -1, 1, 8, 8 }, ort.InputShape);
        var e = Assert.Throws<InvalidDataException>(() => ort.Run(new float[2 * 9 * 9], new long[] { 2, 1, 9, 9 }));
        Assert.Contains("does not fit", e.Message);
    }
}

using System.IO.Compression;
using Sculpt.Graph;
using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Tests.Reference;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Sculpt.Tests;

public class RuntimeTests
{
    static RuntimeTests() => TorchRuntime.Initialize();

    private static double MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GraphModuleMatchesHandWrittenUNet(bool trainMode)
    {
        torch.manual_seed(3);
        var graph = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InChannels = 1, Classes = 2, InputSize = 16 });
        using var gm = new GraphModule(graph);
        using var hand = new HandUNet(2, 4, 1, 2);
        // non-trivial BN statistics so eval mode exercises them
        var w = gm.ExportWeights();
        var r = new Random(5);
        foreach (var key in w.Keys.Where(k => k.EndsWith("running_mean") || k.EndsWith("running_var") || k.Contains(".bn")).ToList())
            w[key] = new TensorData(w[key].Shape, w[key].Data.Select(_ => (float)(key.EndsWith("running_var") ? 0.5 + r.NextDouble() : r.NextDouble() - 0.5)).ToArray());
        gm.LoadWeights(w, "test");
        hand.CopyFrom(w);
        if (trainMode) { gm.train(); hand.train(); } else { gm.eval(); hand.eval(); }
        var x = randn(3, 1, 16, 16);
        var a = gm.forward(x);
        var b = hand.forward(x);
        Assert.Equal(new long[] { 3, 2, 16, 16 }, a.shape);
        Assert.True(MaxAbsDiff(a, b) <= 1e-5, $"max abs diff {MaxAbsDiff(a, b)}");
        if (trainMode)
        {
            // running statistics were updated identically by the batch
            var after = gm.ExportWeights()["enc0.bn1.running_mean"].Data;
            var handMean = ((TorchSharp.Modules.BatchNorm2d)hand.named_modules().First(m => m.name.EndsWith("bn1")).module).running_mean!;
            Assert.Equal(handMean.data<float>().ToArray(), after);
        }
    }

    [Fact]
    public void GraphModuleMatchesFunctionalReferenceOnEveryOp()
    {
        torch.manual_seed(1);
        var g = GraphTests.EveryOp();
        using var gm = new GraphModule(g);
        gm.eval();
        var x = randn(2, 3, 16, 16);
        var y = gm.forward(x);
        // independent re-computation with explicit functional calls
        var W = (string k) => gm.Tensor(k);
        var F = nn.functional.batch_norm(nn.functional.conv2d(x, W("c1.weight"), padding: new long[] { 1, 1 }), W("bn.running_mean"), W("bn.running_var"), W("bn.weight"), W("bn.bias"));
        var relu = F.relu();
        var dw = nn.functional.conv2d(relu, W("dw.weight"), W("dw.bias"), padding: new long[] { 2, 2 }, dilation: new long[] { 2, 2 }, groups: 8);
        var gconv = nn.functional.conv2d(dw, W("g.weight"), W("g.bias"), groups: 2);
        var p = nn.functional.max_pool2d(relu + gconv, new long[] { 2, 2 }, new long[] { 2, 2 });
        var ap = nn.functional.avg_pool2d(p, new long[] { 3, 3 }, new long[] { 1, 1 }, new long[] { 1, 1 });
        var si = nn.functional.silu(nn.functional.leaky_relu(ap, 0.2));
        var up = nn.functional.conv_transpose2d(si, W("up.weight"), W("up.bias"), new long[] { 2, 2 });
        var sig = nn.functional.adaptive_avg_pool2d(up, new long[] { 1, 1 }).sigmoid();
        var bil = sig.expand(2, 4, 16, 16); // bilinear resize of a 1×1 map is a constant
        var near = p.repeat_interleave(2, 2).repeat_interleave(2, 3);
        var cat = torch.cat(new[] { bil, near, x }, 1);
        var expected = nn.functional.conv2d(cat, W("head.weight"), W("head.bias"));
        Assert.True(MaxAbsDiff(y, expected) <= 1e-5, $"max abs diff {MaxAbsDiff(y, expected)}");
    }

    [Fact]
    public void PackageRoundTripIsExact()
    {
        var graph = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, Classes = 1, InputSize = 16 });
        using var gm = new GraphModule(graph);
        var meta = new ModelMeta { Architecture = "unet", Metrics = { ["val_dice"] = 0.5 } };
        meta.Task.Normalization = new Normalization { Mean = new[] { 0.25 }, Std = new[] { 0.125 } };
        meta.Task.InputHeight = meta.Task.InputWidth = 16;
        var pkg = new ModelPackage(graph, gm.ExportWeights(), meta);
        var dir = TestFiles.TempDir();
        var p1 = Path.Combine(dir, "a.sculpt");
        pkg.Save(p1);
        var loaded = ModelPackage.Load(p1);
        Assert.Equal(graph.ToJson(), loaded.Graph.ToJson());
        Assert.Equal(pkg.Weights.Keys, loaded.Weights.Keys);
        foreach (var k in pkg.Weights.Keys) Assert.Equal(pkg.Weights[k].Data, loaded.Weights[k].Data);
        Assert.Equal(0.125, loaded.Meta.Task.Normalization.Std[0]);
        Assert.Equal("unet", loaded.Meta.Architecture);
        // load → save → load gives identical bytes
        var p2 = Path.Combine(dir, "b.sculpt");
        loaded.Save(p2);
        Assert.Equal(File.ReadAllBytes(p1), File.ReadAllBytes(p2));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [Fact]
    public void TruncatedPackageGivesOneLineErrorNamingTheFile()
    {
        var graph = UNet.Build(new UNetConfig { Depth = 1, BaseWidth = 2, InputSize = 8 });
        using var gm = new GraphModule(graph);
        var dir = TestFiles.TempDir();
        var path = Path.Combine(dir, "m.sculpt");
        new ModelPackage(graph, gm.ExportWeights(), new ModelMeta()).Save(path);
        var bytes = File.ReadAllBytes(path);
        var cut = Path.Combine(dir, "cut.sculpt");
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => ModelPackage.Load(cut));
        Assert.StartsWith(cut, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void GraphAndWeightsThatDisagreeAreListedByName()
    {
        var graph = UNet.Build(new UNetConfig { Depth = 1, BaseWidth = 2, InputSize = 8 });
        using var gm = new GraphModule(graph);
        var w = gm.ExportWeights();
        w.Remove("head.bias");
        w["enc0.conv1.weight"] = new TensorData(new long[] { 1 }, new float[1]);
        w["stray.weight"] = new TensorData(new long[] { 1 }, new float[1]);
        var dir = TestFiles.TempDir();
        var path = Path.Combine(dir, "bad.sculpt");
        new ModelPackage(graph, w, new ModelMeta()).Save(path);
        var e = Assert.Throws<InvalidDataException>(() => ModelPackage.Load(path));
        Assert.Contains("missing head.bias", e.Message);
        Assert.Contains("enc0.conv1.weight has shape [1]", e.Message);
        Assert.Contains("unexpected stray.weight", e.Message);
    }

    [Fact]
    public void SafetensorsHeaderFollowsTheSpecification()
    {
        var w = new WeightSet { ["a.weight"] = new TensorData(new long[] { 2, 3 }, new float[] { 1, 2, 3, 4, 5, 6 }) };
        var bytes = Safetensors.Write(w);
        ulong n = BitConverter.ToUInt64(bytes, 0);
        var header = System.Text.Json.Nodes.JsonNode.Parse(System.Text.Encoding.UTF8.GetString(bytes, 8, (int)n))!;
        Assert.Equal("F32", header["a.weight"]!["dtype"]!.GetValue<string>());
        Assert.Equal(24, header["a.weight"]!["data_offsets"]![1]!.GetValue<long>());
        Assert.Equal(6f, BitConverter.ToSingle(bytes, 8 + (int)n + 20));
        Assert.Equal(w["a.weight"].Data, Safetensors.Read(bytes, "x")["a.weight"].Data);
    }

    [Fact]
    public void NnpackIsOffAndOneDnnIsOnOnlyWhereItIsExact()
    {
        Assert.True(TorchRuntime.NnpackDisabled);
        bool before = TorchRuntime.OneDnnDisabled;
        var problem = TorchRuntime.ProbeOneDnn();
        Assert.Equal(before, TorchRuntime.OneDnnDisabled); // the probe changes nothing
        var choice = Environment.GetEnvironmentVariable("SCULPT_ONEDNN");
        if (choice is null or "auto") Assert.Equal(problem is not null, TorchRuntime.OneDnnDisabled); // on where exact, by default
        if (choice is "on" or "off") Assert.Equal(choice == "off", TorchRuntime.OneDnnDisabled);
        Assert.StartsWith(TorchRuntime.OneDnnDisabled ? "off" : "on", TorchRuntime.OneDnnChoice);
    }
}

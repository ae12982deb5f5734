using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Import;
using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Tests.Fixtures;
using Sculpt.Tests.Reference;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Sculpt.Tests;

[Collection("serial")]
public class PyTorchImportTests
{
    private static readonly DeepLabConfig Tiny = new() { InChannels = 3, Classes = 1, InputSize = 32, Width = 4, Blocks = new[] { 2, 1, 2, 1 }, AsppChannels = 6, AsppRates = new[] { 2, 3, 4 } };

    /// <summary>The state dict torchvision would hold for this graph: weights plus BatchNorm's num_batches_tracked.</summary>
    private static Dictionary<string, object?> StateDict(NetworkGraph g, WeightSet w, string prefix = "")
    {
        var sd = new Dictionary<string, object?>();
        foreach (var (k, t) in w)
        {
            var stride = new long[t.Shape.Length];
            for (int d = t.Shape.Length - 1, s = 1; d >= 0; s *= (int)t.Shape[d], d--) stride[d] = s;
            sd[prefix + k] = new SavedTensor(t.Data, t.Shape, stride);
            if (k.EndsWith(".running_var")) sd[prefix + k.Replace(".running_var", ".num_batches_tracked")] = new SavedTensor(new[] { 7f }, Array.Empty<long>(), Array.Empty<long>());
        }
        return sd;
    }

    /// <summary>EchoNet-Dynamic's checkpoint: {'epoch', 'state_dict' (DataParallel 'module.' keys), 'best_loss', 'loss', 'opt_dict', 'scheduler_dict'}.</summary>
    private static Dictionary<string, object?> EchoNetCheckpoint(Dictionary<string, object?> stateDict) => new()
    {
        ["epoch"] = 37L, ["state_dict"] = stateDict, ["best_loss"] = 0.0421, ["loss"] = 0.0433,
        ["opt_dict"] = new Dictionary<string, object?>
        {
            ["state"] = new Dictionary<long, object?> { [0] = new Dictionary<string, object?> { ["momentum_buffer"] = new SavedTensor(new[] { 1f, 2f }, new long[] { 2 }, new long[] { 1 }) } },
            ["param_groups"] = new List<object?> { new Dictionary<string, object?> { ["lr"] = 1e-5, ["momentum"] = 0.9, ["weight_decay"] = 1e-4, ["nesterov"] = false, ["params"] = new List<object?> { 0L, 1L } } },
        },
        ["scheduler_dict"] = new Dictionary<string, object?> { ["step_size"] = 15L, ["gamma"] = 0.1, ["base_lrs"] = new List<object?> { 1e-5 }, ["last_epoch"] = 37L, ["_last_lr"] = new List<object?> { 1e-6 } },
    };

    [Theory]
    [InlineData(false, "cpu")]
    [InlineData(true, "cuda:0")]
    public void EchoNetStyleCheckpointImportsAndMatchesTorchvisionsForward(bool legacy, string location)
    {
        var g = DeepLabV3.Build(Tiny);
        var w = TestFiles.WithBnStatistics(g, 5);
        var path = Path.Combine(TestFiles.TempDir(), legacy ? "legacy.pt" : "zip.pt");
        TorchSaveWriter.Save(path, EchoNetCheckpoint(StateDict(g, w, "module.")), legacy, location);

        var raw = PyTorchCheckpoint.Read(path) as Dictionary<object, object?>;
        Assert.Equal(37L, raw!["epoch"]);
        Assert.Equal(0.0421, (double)raw["best_loss"]!);
        var model = Importer.FromPyTorch(path, g, new TaskInfo { InputChannels = 3, InputHeight = 32, InputWidth = 32 }, "deeplabv3_resnet50");
        foreach (var (k, t) in w) Assert.Equal(t.Data, model.Weights[k].Data);

        var sd = w.ToDictionary(kv => kv.Key, kv => tensor(kv.Value.Data, kv.Value.Shape));
        var x = randn(2, 3, 32, 32, generator: new Generator(3));
        Tensor reference;
        using (no_grad()) reference = TorchvisionDeepLab.Forward(x, sd, Tiny);
        using var module = new GraphModule(model.Graph, model.Weights);
        module.eval();
        using var _ = no_grad();
        Assert.True((module.forward(x) - reference).abs().max().item<float>() <= 1e-4);
    }

    [Fact]
    public void NonContiguousAndHalfPrecisionTensorsAreRead()
    {
        // a 2×3 view with strides (1, 2) over storage [0..5], offset 1 → [[1,3,5],[2,4,6]]
        var path = Path.Combine(TestFiles.TempDir(), "view.pt");
        var storage = new float[] { 0, 1, 2, 3, 4, 5, 6 };
        TorchSaveWriter.Save(path, new Dictionary<string, object?> { ["a.weight"] = new SavedTensor(storage, new long[] { 2, 3 }, new long[] { 1, 2 }, 1) }, legacy: false);
        var sd = PyTorchCheckpoint.StateDict(PyTorchCheckpoint.Read(path), path);
        Assert.Equal(new float[] { 1, 3, 5, 2, 4, 6 }, sd["a.weight"].Data);
    }

    [Fact]
    public void ZipFilesWrittenByPyBridgeRead()
    {
        // TorchSharp.PyBridge writes the zip format independently of this project's fixture writer
        var g = UNet.Build(UNet.Preset("unet-small", 1, 1, 32));
        var w = TestFiles.WithBnStatistics(g, 6);
        var path = Path.Combine(TestFiles.TempDir(), "pybridge.pt");
        using (var f = File.Create(path))
            TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(f, w.ToDictionary(kv => kv.Key, kv => tensor(kv.Value.Data, kv.Value.Shape)));
        var model = Importer.FromPyTorch(path, g, new TaskInfo { InputHeight = 32, InputWidth = 32 }, "unet-small");
        foreach (var (k, t) in w) Assert.Equal(t.Data, model.Weights[k].Data);
    }

    [Fact]
    public void PickledObjectsOtherThanTensorsAndContainersAreRefused()
    {
        var dir = TestFiles.TempDir();
        foreach (var (module, name) in new[] { ("os", "system"), ("__main__", "Net"), ("numpy.core.multiarray", "_reconstruct") })
        {
            var path = Path.Combine(dir, $"{name}.pt");
            TorchSaveWriter.Save(path, new Dictionary<string, object?> { ["x"] = new Global(module, name, new object?[] { "echo pwned" }) }, legacy: false);
            var e = Assert.Throws<InvalidDataException>(() => PyTorchCheckpoint.Read(path));
            Assert.Contains($"refused to load a pickled object of type {module}.{name}", e.Message);
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void MismatchedKeysAreListedByName()
    {
        var g = UNet.Build(UNet.Preset("unet-small", 1, 1, 32));
        var w = TestFiles.WithBnStatistics(g, 7);
        var sd = StateDict(g, w);
        var first = w.Keys.First();
        sd.Remove(first);
        sd["extra.weight"] = new SavedTensor(new[] { 1f }, new long[] { 1 }, new long[] { 1 });
        var bias = w.Keys.First(k => k != first && k.EndsWith(".bias") && w[k].Shape[0] > 1);
        sd[bias] = new SavedTensor(new[] { 1f }, new long[] { 1 }, new long[] { 1 });
        var path = Path.Combine(TestFiles.TempDir(), "bad.pt");
        TorchSaveWriter.Save(path, sd, legacy: true);
        var e = Assert.Throws<InvalidDataException>(() => Importer.FromPyTorch(path, g, new TaskInfo(), "unet-small"));
        Assert.True(e.Message.Contains($"1 missing: {first}") && e.Message.Contains("1 unexpected: extra.weight") && e.Message.Contains($"1 wrongly shaped: {bias} [1]"), e.Message);
    }

    [Fact]
    public void CliImportsAndSegmentReproducesTheLogits()
    {
        var g = UNet.Build(UNet.Preset("unet-small", 1, 1, 32));
        var w = TestFiles.WithBnStatistics(g, 8);
        var dir = TestFiles.TempDir();
        var ckpt = Path.Combine(dir, "best.pt");
        TorchSaveWriter.Save(ckpt, EchoNetCheckpoint(StateDict(g, w, "module.")), legacy: true, "cuda:0");
        var model = Path.Combine(dir, "m.sculpt");
        var r = TestFiles.Cli("import", "--pytorch", ckpt, "--arch", "unet-small", "--size", "32", "--out", model, "--json");
        Assert.True(r.Code == 0, r.Err);
        var imported = System.Text.Json.Nodes.JsonNode.Parse(r.Out)!;
        Assert.Equal(("pytorch", model, g.ParameterCount(), g.MacCount()), (imported["format"]!.GetValue<string>(),
            imported["out"]!.GetValue<string>(), imported["params"]!.GetValue<long>(), imported["macs"]!.GetValue<long>()));
        var x = randn(2, 1, 32, 32, generator: new Generator(4));
        var xPath = Path.Combine(dir, "x.npy");
        File.WriteAllBytes(xPath, Npy.Encode(x.data<float>().ToArray(), new long[] { 2, 1, 32, 32 }));
        var yPath = Path.Combine(dir, "y.npy");
        r = TestFiles.Cli("segment", "--model", model, "--input", xPath, "--logits", yPath);
        Assert.True(r.Code == 0, r.Err);
        var (y, shape) = Npy.Read(yPath);
        using var m = new GraphModule(g, w);
        m.eval();
        using var _ = no_grad();
        var expected = m.forward(x).data<float>().ToArray();
        Assert.Equal(new long[] { 2, 1, 32, 32 }, shape);
        Assert.True(y.Zip(expected, (a, b) => Math.Abs(a - b)).Max() <= 1e-4);

        // a truncated legacy file is refused with its name, and nothing is written
        var bytes = File.ReadAllBytes(ckpt);
        File.WriteAllBytes(ckpt, bytes[..(bytes.Length - 100)]);
        var out2 = Path.Combine(dir, "m2.sculpt");
        r = TestFiles.Cli("import", "--pytorch", ckpt, "--arch", "unet-small", "--size", "32", "--out", out2);
        Assert.Equal(1, r.Code);
        Assert.Contains("truncated", r.Err);
        Assert.False(File.Exists(out2));
    }
}

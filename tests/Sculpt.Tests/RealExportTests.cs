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

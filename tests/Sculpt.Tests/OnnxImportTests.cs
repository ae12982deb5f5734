using System.Text;
using Sculpt.Onnx;
using Sculpt.Deploy;
using Sculpt.Graph;
using Sculpt.Import;
using Sculpt.Models;
using Sculpt.Pruning;
using Sculpt.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace Sculpt.Tests;

/// <summary>ONNX files written the way PyTorch's exporter writes them, by an encoder independent of Sculpt's own.</summary>
internal sealed class Pb
{
    private readonly MemoryStream _s = new();
    public byte[] Bytes() => _s.ToArray();
    private void V(ulong v) { while (v >= 0x80) { _s.WriteByte((byte)(v | 0x80)); v >>= 7; } _s.WriteByte((byte)v); }
    public Pb I(int f, long v) { V((ulong)(f << 3)); V((ulong)v); return this; }
    public Pb F(int f, float v) { V((ulong)(f << 3 | 5)); _s.Write(BitConverter.GetBytes(v)); return this; }
    public Pb B(int f, byte[] b) { V((ulong)(f << 3 | 2)); V((ulong)b.Length); _s.Write(b); return this; }
    public Pb S(int f, string s) => B(f, Encoding.UTF8.GetBytes(s));
    public Pb M(int f, Pb m) => B(f, m.Bytes());

    public static Pb Tensor(string name, long[] dims, float[] values, bool raw = true)
    {
        var t = new Pb();
        foreach (var d in dims) t.I(1, d); // unpacked dims, as some writers emit
        t.I(2, 1).S(8, name);
        if (raw) t.B(9, values.SelectMany(BitConverter.GetBytes).ToArray());
        else foreach (var v in values) t.F(4, v); // unpacked float_data
        return t;
    }

    public static Pb Node(string op, string name, string[] inputs, string[] outputs, params Pb[] attrs)
    {
        var n = new Pb();
        foreach (var i in inputs) n.S(1, i);
        foreach (var o in outputs) n.S(2, o);
        n.S(3, name).S(4, op);
        foreach (var a in attrs) n.M(5, a);
        return n;
    }

    public static Pb Ints(string name, params long[] v) { var a = new Pb().S(1, name); foreach (var x in v) a.I(8, x); return a.I(20, 7); }
    public static Pb Float(string name, float v) => new Pb().S(1, name).F(2, v).I(20, 1);
    public static Pb Str(string name, string v) => new Pb().S(1, name).S(4, v).I(20, 3);
    public static Pb Int(string name, long v) => new Pb().S(1, name).I(3, v).I(20, 2);

    public static Pb ValueInfo(string name, params object[] dims)
    {
        var shape = new Pb();
        foreach (var d in dims) shape.M(1, d is string p ? new Pb().S(2, p) : new Pb().I(1, Convert.ToInt64(d)));
        return new Pb().S(1, name).M(2, new Pb().M(1, new Pb().I(1, 1).M(2, shape)));
    }

    public static byte[] Model(IEnumerable<Pb> nodes, IEnumerable<Pb> initializers, Pb input, Pb output, int opset = 13)
    {
        var g = new Pb();
        foreach (var n in nodes) g.M(1, n);
        g.S(2, "main_graph");
        foreach (var t in initializers) g.M(5, t);
        g.M(11, input).M(12, output);
        return new Pb().I(1, 8).S(2, "pytorch").S(3, "2.1.0").M(7, g).M(8, new Pb().S(1, "").I(2, opset)).Bytes();
    }
}

public class OnnxImportTests
{
    private static float[] Random(int n, int seed) { var r = new Random(seed); return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() - 0.5)).ToArray(); }

    private static float MaxDiff(ModelPackage imported, string onnxPath, float[] x, long[] shape)
    {
        using var ort = new OrtModel(onnxPath);
        var (expected, _) = ort.Run(x, shape);
        using var m = new GraphModule(imported.Graph, imported.Weights);
        m.eval();
        using var _g = no_grad();
        var got = m.forward(tensor(x, shape)).data<float>().ToArray();
        Assert.Equal(expected.Length, got.Length);
        return expected.Zip(got, (a, b) => Math.Abs(a - b)).Max();
    }

    [Fact]
    public void PyTorchStyleExportImportsAndMatchesOnnxRuntime()
    {
        // conv → BN → LeakyReLU → maxpool → conv (float_data) → nearest Resize (Constant scales, empty roi) → concat
        // with the stem → avgpool/upsample branch → add → sigmoid; names as torch.onnx.export writes them
        var inits = new List<Pb>
        {
            Pb.Tensor("stem.conv.weight", new long[] { 4, 2, 3, 3 }, Random(72, 1)), Pb.Tensor("stem.conv.bias", new long[] { 4 }, Random(4, 2)),
            Pb.Tensor("stem.bn.weight", new long[] { 4 }, Random(4, 3).Select(v => v + 1).ToArray()), Pb.Tensor("stem.bn.bias", new long[] { 4 }, Random(4, 4)),
            Pb.Tensor("stem.bn.running_mean", new long[] { 4 }, Random(4, 5)), Pb.Tensor("stem.bn.running_var", new long[] { 4 }, Random(4, 6).Select(v => v + 1).ToArray()),
            Pb.Tensor("down.conv.weight", new long[] { 6, 4, 3, 3 }, Random(216, 7), raw: false),
            Pb.Tensor("head.weight", new long[] { 1, 10, 1, 1 }, Random(10, 8)), Pb.Tensor("head.bias", new long[] { 1 }, new[] { 0.1f }),
        };
        var nodes = new List<Pb>
        {
            Pb.Node("Conv", "/stem/conv/Conv", new[] { "input.1", "stem.conv.weight", "stem.conv.bias" }, new[] { "/stem/conv/Conv_output_0" }, Pb.Ints("dilations", 1, 1), Pb.Int("group", 1), Pb.Ints("kernel_shape", 3, 3), Pb.Ints("pads", 1, 1, 1, 1), Pb.Ints("strides", 1, 1)),
            Pb.Node("BatchNormalization", "/stem/bn/BatchNormalization", new[] { "/stem/conv/Conv_output_0", "stem.bn.weight", "stem.bn.bias", "stem.bn.running_mean", "stem.bn.running_var" }, new[] { "/stem/bn/BatchNormalization_output_0" }, Pb.Float("epsilon", 1e-5f), Pb.Float("momentum", 0.9f)),
            Pb.Node("LeakyRelu", "/stem/act/LeakyRelu", new[] { "/stem/bn/BatchNormalization_output_0" }, new[] { "/stem/act/LeakyRelu_output_0" }, Pb.Float("alpha", 0.1f)),
            Pb.Node("MaxPool", "/pool/MaxPool", new[] { "/stem/act/LeakyRelu_output_0" }, new[] { "/pool/MaxPool_output_0" }, Pb.Int("ceil_mode", 0), Pb.Ints("kernel_shape", 2, 2), Pb.Ints("pads", 0, 0, 0, 0), Pb.Ints("strides", 2, 2)),
            Pb.Node("Conv", "/down/conv/Conv", new[] { "/pool/MaxPool_output_0", "down.conv.weight" }, new[] { "/down/conv/Conv_output_0" }, Pb.Ints("kernel_shape", 3, 3), Pb.Ints("pads", 1, 1, 1, 1)),
            Pb.Node("Relu", "/down/Relu", new[] { "/down/conv/Conv_output_0" }, new[] { "/down/Relu_output_0" }),
            Pb.Node("Dropout", "/down/drop/Dropout", new[] { "/down/Relu_output_0" }, new[] { "/down/drop/Dropout_output_0" }),
            Pb.Node("Constant", "/up/Constant", Array.Empty<string>(), new[] { "/up/Constant_output_0" }, new Pb().S(1, "value").M(5, Pb.Tensor("", new long[] { 4 }, new[] { 1f, 1f, 2f, 2f })).I(20, 4)),
            Pb.Node("Resize", "/up/Resize", new[] { "/down/drop/Dropout_output_0", "", "/up/Constant_output_0" }, new[] { "/up/Resize_output_0" }, Pb.Str("coordinate_transformation_mode", "asymmetric"), Pb.Str("mode", "nearest"), Pb.Str("nearest_mode", "floor")),
            Pb.Node("Concat", "/Concat", new[] { "/stem/act/LeakyRelu_output_0", "/up/Resize_output_0" }, new[] { "/Concat_output_0" }, Pb.Int("axis", 1)),
            Pb.Node("Conv", "/head/Conv", new[] { "/Concat_output_0", "head.weight", "head.bias" }, new[] { "/head/Conv_output_0" }, Pb.Ints("kernel_shape", 1, 1)),
            Pb.Node("GlobalAveragePool", "/gap/GlobalAveragePool", new[] { "/head/Conv_output_0" }, new[] { "/gap/GlobalAveragePool_output_0" }),
            Pb.Node("Constant", "/gap/Constant", Array.Empty<string>(), new[] { "/gap/Constant_output_0" }, new Pb().S(1, "value").M(5, Pb.Tensor("", new long[] { 4 }, new[] { 1f, 1f, 16f, 16f })).I(20, 4)),
            Pb.Node("Resize", "/gap/Resize", new[] { "/gap/GlobalAveragePool_output_0", "", "/gap/Constant_output_0" }, new[] { "/gap/Resize_output_0" }, Pb.Str("mode", "linear"), Pb.Str("coordinate_transformation_mode", "pytorch_half_pixel")),
            Pb.Node("Add", "/Add", new[] { "/head/Conv_output_0", "/gap/Resize_output_0" }, new[] { "/Add_output_0" }),
            Pb.Node("Identity", "/Identity", new[] { "/Add_output_0" }, new[] { "output" }),
        };
        var path = Path.Combine(TestFiles.TempDir(), "torch.onnx");
        File.WriteAllBytes(path, Pb.Model(nodes, inits, Pb.ValueInfo("input.1", "batch_size", 2, 16, 16), Pb.ValueInfo("output", "batch_size", 1, 16, 16)));

        var model = OnnxImport.Read(path);
        Assert.Equal(72 + 4 + 2 * 4 + 216 + 10 + 1, model.Graph.ParameterCount()); // BN running statistics are not parameters
        Assert.IsType<Conv2dNode>(model.Graph["stem.conv"]);
        Assert.IsType<BatchNorm2dNode>(model.Graph["stem.bn"]);
        Assert.Equal(0.1, ((LeakyReluNode)model.Graph.Nodes.Single(n => n is LeakyReluNode)).NegativeSlope, 6);
        Assert.True(MaxDiff(model, path, Random(2 * 2 * 16 * 16, 9), new long[] { 2, 2, 16, 16 }) <= 1e-4);
        // the imported graph is an ordinary, prunable graph
        Assert.Contains(ChannelGroups.Analyze(model.Graph).Prunable, g => g.Producers.Any(p => p.Node == "down.conv"));
    }

    [Fact]
    public void SculptsOwnExportRoundTrips()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 16, Classes = 2 });
        var pkg = new ModelPackage(g, TestFiles.WithBnStatistics(g, 11), new ModelMeta { Task = new TaskInfo { Mode = "multiclass", Labels = new() { "background", "lv", "myo" }, InputHeight = 16, InputWidth = 16 } });
        var path = Path.Combine(TestFiles.TempDir(), "unet.onnx");
        OnnxExport.Save(pkg, path);
        var model = OnnxImport.Read(path);
        Assert.Equal(pkg.Meta.Task.Labels, model.Meta.Task.Labels); // from metadata_props
        Assert.True(MaxDiff(model, path, Random(3 * 16 * 16, 12), new long[] { 3, 1, 16, 16 }) <= 1e-4);
    }

    [Fact]
    public void UnsupportedOperatorsAreAllListed()
    {
        var nodes = new[]
        {
            Pb.Node("Conv", "c", new[] { "x", "w" }, new[] { "y" }, Pb.Ints("kernel_shape", 1, 1)),
            Pb.Node("LpNormalization", "s", new[] { "y" }, new[] { "z" }),
            Pb.Node("Einsum", "g", new[] { "z", "w" }, new[] { "out" }),
            Pb.Node("ATen", "a", new[] { "z" }, new[] { "out2" }),
        };
        var path = Path.Combine(TestFiles.TempDir(), "bad.onnx");
        File.WriteAllBytes(path, Pb.Model(nodes, new[] { Pb.Tensor("w", new long[] { 1, 1, 1, 1 }, new[] { 1f }) }, Pb.ValueInfo("x", 1, 1, 4, 4), Pb.ValueInfo("out", 1, 1, 4, 4)));
        var e = Assert.Throws<InvalidDataException>(() => OnnxImport.Read(path));
        // each missing operator with the nodes that use it, and the export call that avoids it where there is one
        Assert.Contains("unsupported ONNX operators: LpNormalization at s; Einsum at g; ATen at a — export with the default operator_export_type", e.Message);
        Assert.Contains(path, e.Message);
        // a file cut short
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => OnnxImport.Read(path)).Message);
    }
}

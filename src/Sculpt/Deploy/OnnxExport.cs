using System.Runtime.InteropServices;
using System.Text.Json;
using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Deploy;

/// <summary>
/// Writes a model as ONNX (opset 17, IR version 8). Batch norm is folded into the convolution before it
/// when that convolution feeds nothing else; the batch axis is dynamic ("batch"); the single input is named
/// <see cref="InputName"/> (N×C×H×W float32, already normalised) and the output <see cref="OutputName"/> (raw
/// logits). The task (labels, mode, input size, normalisation) goes into metadata_props as JSON.
/// </summary>
public static class OnnxExport
{
    public const string InputName = "input";
    public const string OutputName = "logits";
    public const int Opset = 17;

    private enum AttrType { Float = 1, Int = 2, String = 3, Ints = 7 }

    public static void Save(ModelPackage model, string path) => AtomicFile.WriteAllBytes(path, Encode(model));

    public static byte[] Encode(ModelPackage model)
    {
        var graph = model.Graph;
        var infos = graph.Validate().ToDictionary(i => i.Node.Name);
        var consumers = graph.Nodes.SelectMany(n => n.Inputs.Select(i => (i, n))).ToLookup(p => p.i, p => p.n);
        var (folded, weights) = FoldBatchNorms(graph, model.Weights, consumers);

        var g = new ProtoWriter();
        var initializers = new List<ProtoWriter>();
        string Init(string name, TensorData t) { initializers.Add(Tensor(name, t)); return name; }
        string InitInts(string name, long[] v) { initializers.Add(Int64Tensor(name, v)); return name; }
        string InitFloats(string name, float[] v) { initializers.Add(Tensor(name, new TensorData(new long[] { v.Length }, v))); return name; }
        var rename = new Dictionary<string, string>(); // node name → the tensor that carries its output
        string Out(string node) => rename.TryGetValue(node, out var r) ? r : node;
        void Node(string op, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, params ProtoWriter[] attrs)
        {
            var n = new ProtoWriter();
            foreach (var i in inputs) n.String(1, i);
            foreach (var o in outputs) n.String(2, o);
            n.String(3, name).String(4, op);
            foreach (var a in attrs) n.Message(5, a);
            g.Message(1, n);
        }

        foreach (var node in graph.TopologicalOrder())
        {
            var ins = node.Inputs.Select(Out).ToList();
            switch (node)
            {
                case InputNode:
                    rename[node.Name] = InputName;
                    break;
                case ConvTranspose2dNode t:
                    Node("ConvTranspose", t.Name, ConvInputs(t, ins[0], Init, weights), new[] { t.Name },
                        Ints("kernel_shape", t.Kernel), Ints("strides", t.Stride), Ints("pads", Pads(t.Padding)), Ints("dilations", t.Dilation),
                        Int("group", t.Groups), Ints("output_padding", t.OutputPadding));
                    break;
                case Conv2dNode c:
                    Node("Conv", c.Name, ConvInputs(c, ins[0], Init, weights), new[] { c.Name },
                        Ints("kernel_shape", c.Kernel), Ints("strides", c.Stride), Ints("pads", Pads(c.Padding)), Ints("dilations", c.Dilation), Int("group", c.Groups));
                    break;
                case BatchNorm2dNode b when folded.Contains(b.Name):
                    rename[b.Name] = Out(b.Inputs[0]);
                    break;
                case BatchNorm2dNode b:
                    Node("BatchNormalization", b.Name, new[]
                    {
                        ins[0], Init($"{b.Name}.weight", weights[$"{b.Name}.weight"]), Init($"{b.Name}.bias", weights[$"{b.Name}.bias"]),
                        Init($"{b.Name}.running_mean", weights[$"{b.Name}.running_mean"]), Init($"{b.Name}.running_var", weights[$"{b.Name}.running_var"]),
                    }, new[] { b.Name }, Float("epsilon", (float)b.Eps), Float("momentum", (float)(1 - b.Momentum)));
                    break;
                case ReluNode: Node("Relu", node.Name, ins, new[] { node.Name }); break;
                case SigmoidNode: Node("Sigmoid", node.Name, ins, new[] { node.Name }); break;
                case LeakyReluNode l: Node("LeakyRelu", node.Name, ins, new[] { node.Name }, Float("alpha", (float)l.NegativeSlope)); break;
                case SiluNode:
                    Node("Sigmoid", node.Name + "/sigmoid", ins, new[] { node.Name + "/sigmoid" });
                    Node("Mul", node.Name, new[] { ins[0], node.Name + "/sigmoid" }, new[] { node.Name });
                    break;
                case MaxPool2dNode p:
                    Node("MaxPool", p.Name, ins, new[] { p.Name }, Ints("kernel_shape", p.Kernel), Ints("strides", p.Stride), Ints("pads", Pads(p.Padding)), Int("ceil_mode", p.CeilMode ? 1 : 0));
                    break;
                case AvgPool2dNode p:
                    Node("AveragePool", p.Name, ins, new[] { p.Name }, Ints("kernel_shape", p.Kernel), Ints("strides", p.Stride), Ints("pads", Pads(p.Padding)),
                        Int("ceil_mode", p.CeilMode ? 1 : 0), Int("count_include_pad", 1));
                    break;
                case AdaptiveAvgPool2dNode a when a.OutputSize[0] == 1 && a.OutputSize[1] == 1:
                    Node("GlobalAveragePool", a.Name, ins, new[] { a.Name });
                    break;
                case AdaptiveAvgPool2dNode a:
                {
                    var inShape = infos[a.Name].InputShapes[0];
                    if (inShape.H % a.OutputSize[0] != 0 || inShape.W % a.OutputSize[1] != 0)
                        throw new GraphException($"node '{a.Name}': adaptive pooling {inShape.H}×{inShape.W} → {a.OutputSize[0]}×{a.OutputSize[1]} has no fixed-window ONNX equivalent");
                    var k = new[] { inShape.H / a.OutputSize[0], inShape.W / a.OutputSize[1] };
                    Node("AveragePool", a.Name, ins, new[] { a.Name }, Ints("kernel_shape", k), Ints("strides", k));
                    break;
                }
                case UpsampleNode u:
                {
                    var attrs = u.Mode == "nearest"
                        ? new[] { Str("mode", "nearest"), Str("coordinate_transformation_mode", "asymmetric"), Str("nearest_mode", "floor") }
                        : new[] { Str("mode", "linear"), Str("coordinate_transformation_mode", u.AlignCorners ? "align_corners" : "pytorch_half_pixel") };
                    if (u.Scale is { } s)
                        Node("Resize", u.Name, new[] { ins[0], "", InitFloats($"{u.Name}/scales", new[] { 1f, 1f, (float)s, (float)s }) }, new[] { u.Name }, attrs);
                    else
                    {
                        // sizes = shape(x)[0:2] ++ (fixed size | shape(reference)[2:4])
                        Node("Shape", u.Name + "/shape", new[] { ins[0] }, new[] { u.Name + "/shape" });
                        Node("Slice", u.Name + "/nc", new[] { u.Name + "/shape", InitInts($"{u.Name}/0", new long[] { 0 }), InitInts($"{u.Name}/2", new long[] { 2 }) }, new[] { u.Name + "/nc" });
                        string hw;
                        if (u.Size != null) hw = InitInts($"{u.Name}/hw", new long[] { u.Size[0], u.Size[1] });
                        else
                        {
                            Node("Shape", u.Name + "/refshape", new[] { ins[1] }, new[] { u.Name + "/refshape" });
                            Node("Slice", u.Name + "/hw", new[] { u.Name + "/refshape", InitInts($"{u.Name}/2b", new long[] { 2 }), InitInts($"{u.Name}/4", new long[] { 4 }) }, new[] { u.Name + "/hw" });
                            hw = u.Name + "/hw";
                        }
                        Node("Concat", u.Name + "/sizes", new[] { u.Name + "/nc", hw }, new[] { u.Name + "/sizes" }, Int("axis", 0));
                        Node("Resize", u.Name, new[] { ins[0], "", "", u.Name + "/sizes" }, new[] { u.Name }, attrs);
                    }
                    break;
                }
                case AddNode:
                {
                    string acc = ins[0];
                    for (int k = 1; k < ins.Count; k++)
                    {
                        string o = k == ins.Count - 1 ? node.Name : $"{node.Name}/{k}";
                        Node("Add", o, new[] { acc, ins[k] }, new[] { o });
                        acc = o;
                    }
                    break;
                }
                case ConcatNode: Node("Concat", node.Name, ins, new[] { node.Name }, Int("axis", 1)); break;
                case DropoutNode or IdentityNode: rename[node.Name] = ins[0]; break;
                case OutputNode: Node("Identity", node.Name, ins, new[] { OutputName }); break;
                default: throw new GraphException($"node '{node.Name}': op {node.Op} has no ONNX export");
            }
        }
        g.String(2, "sculpt");
        foreach (var i in initializers) g.Message(5, i);
        var input = graph.InputNodes.Single();
        var outputShape = infos[graph.OutputNodes.Single().Name].Output;
        g.Message(11, ValueInfo(InputName, input.Channels, input.Height, input.Width));
        g.Message(12, ValueInfo(OutputName, outputShape.C, outputShape.H, outputShape.W));

        var m = new ProtoWriter()
            .Int(1, 8)
            .String(2, "sculpt")
            .String(3, typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "0")
            .Message(8, new ProtoWriter().String(1, "").Int(2, Opset))
            .Message(7, g);
        foreach (var (k, v) in Metadata(model)) m.Message(14, new ProtoWriter().String(1, k).String(2, v));
        return m.ToArray();
    }

    public static Dictionary<string, string> Metadata(ModelPackage model) => new()
    {
        ["sculpt.task"] = JsonSerializer.Serialize(model.Meta.Task, NetworkGraph.JsonOptions),
        ["sculpt.labels"] = string.Join(",", model.Meta.Task.Labels),
        ["sculpt.mode"] = model.Meta.Task.Mode,
        ["sculpt.input"] = $"{InputName}: float32 [batch, {model.Meta.Task.InputChannels}, {model.Meta.Task.InputHeight}, {model.Meta.Task.InputWidth}], intensities in [0,1] normalised as (x - mean) / std",
        ["sculpt.normalization.mean"] = string.Join(",", model.Meta.Task.Normalization.Mean),
        ["sculpt.normalization.std"] = string.Join(",", model.Meta.Task.Normalization.Std),
        ["sculpt.output"] = $"{OutputName}: float32 [batch, {model.Meta.Task.OutputChannels}, H, W] raw logits ({(model.Meta.Task.Mode == "binary" ? "sigmoid > 0.5" : "argmax over classes")})",
        ["sculpt.parameters"] = model.Graph.ParameterCount().ToString(),
        ["sculpt.macs"] = model.Graph.MacCount().ToString(),
    };

    /// <summary>
    /// Folds each BatchNorm into the convolution that feeds only it: w' = w·γ/σ per output channel,
    /// b' = (b − μ)·γ/σ + β with σ = √(var + ε). Returns the folded BN names and the updated weights.
    /// </summary>
    public static (HashSet<string> Folded, WeightSet Weights) FoldBatchNorms(NetworkGraph graph, WeightSet weights, ILookup<string, Node> consumers)
    {
        var w = new WeightSet();
        foreach (var (k, v) in weights) w[k] = v;
        var folded = new HashSet<string>();
        var byName = graph.Nodes.ToDictionary(n => n.Name);
        foreach (var bn in graph.Nodes.OfType<BatchNorm2dNode>())
        {
            if (byName[bn.Inputs[0]] is not Conv2dNode conv || consumers[conv.Name].Count() != 1) continue;
            bool transposed = conv is ConvTranspose2dNode;
            var gamma = w[$"{bn.Name}.weight"].Data; var beta = w[$"{bn.Name}.bias"].Data;
            var mean = w[$"{bn.Name}.running_mean"].Data; var variance = w[$"{bn.Name}.running_var"].Data;
            var scale = new double[bn.Channels];
            for (int c = 0; c < bn.Channels; c++) scale[c] = gamma[c] / Math.Sqrt(variance[c] + bn.Eps);
            var wt = w[$"{conv.Name}.weight"];
            var data = (float[])wt.Data.Clone();
            long d0 = wt.Shape[0], d1 = wt.Shape[1], inner = wt.Count / (d0 * d1);
            int outPerGroup = conv.OutChannels / conv.Groups;
            for (long a = 0; a < d0; a++)
                for (long b = 0; b < d1; b++)
                {
                    // conv: [out, in/g, ...]; transposed: [in, out/g, ...] with output channel = group·(out/g) + b
                    long oc = transposed ? (a / (conv.InChannels / conv.Groups)) * outPerGroup + b : a;
                    for (long k = 0; k < inner; k++) data[(a * d1 + b) * inner + k] = (float)(data[(a * d1 + b) * inner + k] * scale[oc]);
                }
            w[$"{conv.Name}.weight"] = new TensorData(wt.Shape, data);
            var bias = new float[conv.OutChannels];
            var oldBias = conv.Bias ? w[$"{conv.Name}.bias"].Data : null;
            for (int c = 0; c < conv.OutChannels; c++) bias[c] = (float)(((oldBias?[c] ?? 0) - mean[c]) * scale[c] + beta[c]);
            w[$"{conv.Name}.bias"] = new TensorData(new long[] { conv.OutChannels }, bias);
            folded.Add(bn.Name);
        }
        return (folded, w);
    }

    private static IEnumerable<string> ConvInputs(Conv2dNode c, string x, Func<string, TensorData, string> init, WeightSet w)
    {
        yield return x;
        yield return init($"{c.Name}.weight", w[$"{c.Name}.weight"]);
        if (w.TryGetValue($"{c.Name}.bias", out var b)) yield return init($"{c.Name}.bias", b);
    }

    private static int[] Pads(int[] p) => new[] { p[0], p[1], p[0], p[1] };

    private static ProtoWriter Tensor(string name, TensorData t)
    {
        var p = new ProtoWriter();
        p.Ints(1, t.Shape);
        p.Int(2, 1); // FLOAT
        p.String(8, name);
        p.Bytes(9, MemoryMarshal.AsBytes(t.Data.AsSpan()));
        return p;
    }

    private static ProtoWriter Int64Tensor(string name, long[] v)
    {
        var p = new ProtoWriter();
        p.Ints(1, new long[] { v.Length });
        p.Int(2, 7); // INT64
        p.String(8, name);
        p.Bytes(9, MemoryMarshal.AsBytes(v.AsSpan()));
        return p;
    }

    private static ProtoWriter ValueInfo(string name, int c, int h, int w)
    {
        var shape = new ProtoWriter()
            .Message(1, new ProtoWriter().String(2, "batch"))
            .Message(1, new ProtoWriter().Int(1, c))
            .Message(1, new ProtoWriter().Int(1, h))
            .Message(1, new ProtoWriter().Int(1, w));
        var tensorType = new ProtoWriter().Int(1, 1).Message(2, shape);
        return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensorType));
    }

    private static ProtoWriter Attr(string name, AttrType type) => new ProtoWriter().String(1, name).Int(20, (int)type);
    private static ProtoWriter Int(string name, long v) => Attr(name, AttrType.Int).Int(3, v);
    private static ProtoWriter Float(string name, float v) => Attr(name, AttrType.Float).Float(2, v);
    private static ProtoWriter Str(string name, string v) => Attr(name, AttrType.String).String(4, v);
    private static ProtoWriter Ints(string name, IEnumerable<int> v) => Attr(name, AttrType.Ints).Ints(8, v.Select(x => (long)x));
}

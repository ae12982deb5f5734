using System.Runtime.InteropServices;
using System.Text.Json;
using Sculpt.Graph;
using Sculpt.Runtime;
using Sculpt.Common;

namespace Sculpt.Onnx;

/// <summary>
/// Writes a model as ONNX (opset 17, IR version 8). Each node writes itself through <see cref="Node.Forward{T}"/>
/// with tensor names for tensors, so the file computes exactly what the runtime computes. Batch norm is folded into
/// the convolution before it when that convolution feeds nothing else; the batch axis is dynamic ("batch"); the
/// single input is named <see cref="InputName"/> (N×C×H×W float32, already normalised) and the output
/// <see cref="OutputName"/> (raw logits). The task (labels, mode, input size, normalisation) goes into
/// metadata_props as JSON.
/// </summary>
public static class OnnxExport
{
    public const string InputName = "input";
    public const string OutputName = "logits";
    public const int Opset = 17;

    public static void Save(ModelPackage model, string path) => AtomicFile.WriteAllBytes(path, Encode(model));

    public static byte[] Encode(ModelPackage model)
    {
        var consumers = model.Graph.Nodes.SelectMany(n => n.Inputs.Select(i => (i, n))).ToLookup(p => p.i, p => p.n);
        var (folded, weights) = FoldBatchNorms(model.Graph, model.Weights, consumers);
        var graph = WithoutFolded(model.Graph, folded);
        var infos = graph.Validate().ToDictionary(i => i.Node.Name);

        var writer = new NodeWriter(weights);
        var outputOf = new Dictionary<string, string>();
        foreach (var node in graph.TopologicalOrder())
        {
            var ins = node.Inputs.Select(i => outputOf[i]).ToList();
            var info = infos[node.Name];
            for (int k = 0; k < ins.Count; k++) writer.Known[ins[k]] = info.InputShapes[k];
            writer.Current = node.Name;
            outputOf[node.Name] = node switch
            {
                InputNode => InputName,
                OutputNode => writer.Emit("Identity", [ins[0]], OutputName),
                _ => node.Forward(writer, 
                    new OpContext<string>(ins, info.InputShapes, info.Output, w => writer.Weight($"{node.Name}.{w}"))),
            };
        }
        var g = writer.Graph;
        g.String(GraphField.Name, "sculpt");
        foreach (var i in writer.Initializers) g.Message(GraphField.Initializer, i);
        var input = graph.InputNodes.Single();
        var outputShape = infos[graph.OutputNodes.Single().Name].Output;
        g.Message(GraphField.Input, ValueInfo(InputName, input.Channels, input.Height, input.Width));
        g.Message(GraphField.Output, ValueInfo(OutputName, outputShape.C, outputShape.H, outputShape.W));

        var m = new ProtoWriter()
            .Int(ModelField.IrVersion, 8)
            .String(ModelField.ProducerName, "sculpt")
            .String(ModelField.ProducerVersion, Common.SculptVersion.Text)
            .Message(ModelField.OpsetImport, new ProtoWriter().String(OpsetField.Domain, "").Int(OpsetField.Version, Opset))
            .Message(ModelField.Graph, g);
        foreach (var (k, v) in Metadata(model))
            m.Message(ModelField.MetadataProps, new ProtoWriter().String(EntryField.Key, k).String(EntryField.Value, v));
        return m.ToArray();
    }

    public static Dictionary<string, string> Metadata(ModelPackage model) => new()
    {
        ["sculpt.task"] = JsonSerializer.Serialize(model.Meta.Task, NetworkGraph.JsonOptions),
        ["sculpt.labels"] = string.Join(",", model.Meta.Task.Labels),
        ["sculpt.mode"] = model.Meta.Task.Mode,
        ["sculpt.input"] = $"{InputName}: float32 [batch, {model.Meta.Task.InputChannels}, {model.Meta.Task.InputHeight}, {model.Meta.Task.InputWidth}], intensities in [0,1] normalised as (x - mean) / std",
        ["sculpt.normalization.mean"] = string.Join(",", model.Meta.Task.Normalization.Mean.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))),
        ["sculpt.normalization.std"] = string.Join(",", model.Meta.Task.Normalization.Std.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))),
        ["sculpt.output"] = $"{OutputName}: float32 [batch, {model.Meta.Task.OutputChannels}, H, W] raw logits ({(model.Meta.Task.Mode == "binary" ? "sigmoid > 0.5" : "argmax over classes")})",
        ["sculpt.parameters"] = model.Graph.ParameterCount().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["sculpt.macs"] = model.Graph.MacCount().ToString(System.Globalization.CultureInfo.InvariantCulture),
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

    /// <summary>The graph with every folded batch norm replaced by an identity and its convolution given a bias.</summary>
    private static NetworkGraph WithoutFolded(NetworkGraph graph, HashSet<string> folded)
    {
        var g = graph.Clone();
        for (int i = 0; i < g.Nodes.Count; i++)
        {
            if (!folded.Contains(g.Nodes[i].Name)) continue;
            var bn = g.Nodes[i];
            ((Conv2dNode)g[bn.Inputs[0]]).Bias = true;
            g.Nodes[i] = new IdentityNode { Name = bn.Name, Inputs = bn.Inputs };
        }
        return g;
    }

    private static ProtoWriter ValueInfo(string name, int c, int h, int w)
    {
        var shape = new ProtoWriter()
            .Message(ShapeField.Dim, new ProtoWriter().String(DimField.Param, "batch"))
            .Message(ShapeField.Dim, new ProtoWriter().Int(DimField.Value, c))
            .Message(ShapeField.Dim, new ProtoWriter().Int(DimField.Value, h))
            .Message(ShapeField.Dim, new ProtoWriter().Int(DimField.Value, w));
        var tensorType = new ProtoWriter().Int(TensorTypeField.ElemType, (int)DataType.Float).Message(TensorTypeField.Shape, shape);
        return new ProtoWriter().String(ValueInfoField.Name, name)
            .Message(ValueInfoField.Type, new ProtoWriter().Message(TypeField.Tensor, tensorType));
    }

    /// <summary>The primitive operations as ONNX nodes: a tensor is its name.</summary>
    private sealed class NodeWriter(WeightSet weights) : ITensorOps<string>
    {
        public readonly ProtoWriter Graph = new();
        public readonly List<ProtoWriter> Initializers = new();
        /// <summary>Shapes of the tensors a node reads (set before each node writes itself).</summary>
        public readonly Dictionary<string, Shape> Known = new();
        private readonly Dictionary<string, long[]> _initialized = new();
        private readonly HashSet<string> _names = new();
        public string Current = "";

        private string Fresh(string stem)
        {
            string name = stem;
            for (int k = 2; !_names.Add(name); k++) name = $"{stem}/{k}";
            return name;
        }

        public string Emit(string op, IEnumerable<string> inputs, string? output = null, params ProtoWriter[] attrs)
        {
            output ??= Fresh(Current);
            var n = new ProtoWriter();
            foreach (var i in inputs) n.String(NodeField.Input, i);
            n.String(NodeField.Output, output).String(NodeField.Name, output).String(NodeField.OpType, op);
            foreach (var a in attrs) n.Message(NodeField.Attribute, a);
            Graph.Message(GraphField.Node, n);
            return output;
        }

        public string Weight(string key)
        {
            if (_initialized.ContainsKey(key)) return key;
            if (!weights.TryGetValue(key, out var t)) throw new GraphException($"weights lack {key}");
            Initializers.Add(FloatTensor(key, t.Shape, t.Data));
            _initialized[key] = t.Shape;
            _names.Add(key);
            return key;
        }

        private string Constant(string stem, long[] dims, float[] values)
        {
            string name = Fresh($"{Current}/{stem}");
            Initializers.Add(FloatTensor(name, dims, values));
            _initialized[name] = dims;
            return name;
        }

        private string Ints(string stem, params long[] values)
        {
            string name = Fresh($"{Current}/{stem}");
            var p = new ProtoWriter().Ints(TensorField.Dims, new long[] { values.Length }).Int(TensorField.DataType, (int)DataType.Int64)
                .String(TensorField.Name, name).Bytes(TensorField.RawData, MemoryMarshal.AsBytes(values.AsSpan()));
            Initializers.Add(p);
            return name;
        }

        private static ProtoWriter FloatTensor(string name, long[] dims, float[] values) =>
            new ProtoWriter().Ints(TensorField.Dims, dims).Int(TensorField.DataType, (int)DataType.Float).String(TensorField.Name, name)
                .Bytes(TensorField.RawData, MemoryMarshal.AsBytes(values.AsSpan()));

        private long[] ShapeOf(string initializer) => _initialized[initializer];

        public string Conv(string x, string w, string? b, int[] stride, int[] padding, int[] dilation, int groups)
        {
            var k = ShapeOf(w);
            return Emit("Conv", b is null ? [x, w] : [x, w, b], null, IntsAttr("kernel_shape", k[2], k[3]), IntsAttr("strides", stride),
                IntsAttr("pads", Pads(padding)), IntsAttr("dilations", dilation), Int("group", groups));
        }

        public string ConvTranspose(string x, string w, string? b, int[] stride, int[] padding, int[] outputPadding, int[] dilation,
            int groups)
        {
            var k = ShapeOf(w);
            return Emit("ConvTranspose", b is null ? [x, w] : [x, w, b], null, IntsAttr("kernel_shape", k[2], k[3]),
                IntsAttr("strides", stride), IntsAttr("pads", Pads(padding)), IntsAttr("dilations", dilation), Int("group", groups),
                IntsAttr("output_padding", outputPadding));
        }

        public string BatchNorm(string x, string mean, string variance, string gamma, string beta, double eps, double momentum) =>
            Emit("BatchNormalization", [x, gamma, beta, mean, variance], null, Float("epsilon", eps), Float("momentum", 1 - momentum));

        public string InstanceNorm(string x, string? gamma, string? beta, double eps)
        {
            int c = Known[x].C;
            gamma ??= Constant("scale", [c], Enumerable.Repeat(1f, c).ToArray());
            beta ??= Constant("shift", [c], new float[c]);
            return Emit("InstanceNormalization", [x, gamma, beta], null, Float("epsilon", eps));
        }

        public string GroupNorm(string x, int groups, string? gamma, string? beta, double eps)
        {
            // opset 17 has no GroupNormalization: instance norm over [N, G, C/G·H·W], then the per-channel affine
            var grouped = Emit("Reshape", [x, Ints("groups", 0, groups, -1)]);
            var ones = Constant("one", [groups], Enumerable.Repeat(1f, groups).ToArray());
            var zeros = Constant("zero", [groups], new float[groups]);
            var normed = Emit("InstanceNormalization", [grouped, ones, zeros], null, Float("epsilon", eps));
            var y = Emit("Reshape", [normed, Emit("Shape", [x])]);
            if (gamma is not null) y = Binary(BinaryKind.Mul, y, PerChannel(gamma));
            if (beta is not null) y = Binary(BinaryKind.Add, y, PerChannel(beta));
            return y;
        }

        public string Unary(UnaryKind kind, string x, double a, double b) => kind switch
        {
            UnaryKind.Relu => Emit("Relu", [x]),
            UnaryKind.LeakyRelu => Emit("LeakyRelu", [x], null, Float("alpha", a)),
            UnaryKind.Sigmoid => Emit("Sigmoid", [x]),
            UnaryKind.Tanh => Emit("Tanh", [x]),
            UnaryKind.Silu => Emit("Mul", [x, Emit("Sigmoid", [x])]),
            UnaryKind.HardSwish => Emit("HardSwish", [x]),
            UnaryKind.HardSigmoid => Emit("HardSigmoid", [x], null, Float("alpha", a), Float("beta", b)),
            UnaryKind.Clip => Emit("Clip", [x, double.IsNegativeInfinity(a) ? "" : Scalar(a),
                double.IsPositiveInfinity(b) ? "" : Scalar(b)]),
            UnaryKind.Softmax => Emit("Softmax", [x], null, Int("axis", 1)),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };

        public string PRelu(string x, string slope) => Emit("PRelu", [x, PerChannel(slope)]);

        public string Binary(BinaryKind kind, string a, string b) => Emit(kind.ToString(), [a, b]);

        public string Scalar(double value) => Constant("scalar", [], [(float)value]);

        public string PerChannel(string vector) => Emit("Reshape", [vector, Ints("per_channel", 1, -1, 1, 1)]);

        public string MaxPool(string x, int[] kernel, int[] stride, int[] padding, bool ceil) =>
            Emit("MaxPool", [x], null, IntsAttr("kernel_shape", kernel), IntsAttr("strides", stride), IntsAttr("pads", Pads(padding)),
                Int("ceil_mode", ceil ? 1 : 0));

        public string AvgPool(string x, int[] kernel, int[] stride, int[] padding, bool ceil) =>
            Emit("AveragePool", [x], null, IntsAttr("kernel_shape", kernel), IntsAttr("strides", stride), IntsAttr("pads", Pads(padding)),
                Int("ceil_mode", ceil ? 1 : 0), Int("count_include_pad", 1));

        public string AdaptiveAvgPool(string x, int[] outputSize, Shape input)
        {
            if (outputSize[0] == 1 && outputSize[1] == 1) return Emit("GlobalAveragePool", [x]);
            if (input.H % outputSize[0] != 0 || input.W % outputSize[1] != 0)
                throw new GraphException($"node '{Current}': adaptive pooling {input.H}×{input.W} → {outputSize[0]}×{outputSize[1]}"
                    + " has no fixed-window ONNX equivalent");
            var k = new[] { input.H / outputSize[0], input.W / outputSize[1] };
            return Emit("AveragePool", [x], null, IntsAttr("kernel_shape", k), IntsAttr("strides", k));
        }

        public string Resize(string x, bool bilinear, bool alignCorners, double? scale, int[]? size, string? reference)
        {
            var attrs = !bilinear
                ? new[] { Str("mode", "nearest"), Str("coordinate_transformation_mode", "asymmetric"), Str("nearest_mode", "floor") }
                : new[]
                {
                    Str("mode", "linear"),
                    Str("coordinate_transformation_mode", alignCorners ? "align_corners" : "pytorch_half_pixel"),
                };
            if (scale is { } s) return Emit("Resize", [x, "", Constant("scales", [4], [1f, 1f, (float)s, (float)s])], null, attrs);
            // sizes = shape(x)[0:2] ++ (fixed size | shape(reference)[2:4])
            var nc = Emit("Slice", [Emit("Shape", [x]), Ints("0", 0), Ints("2", 2)]);
            var hw = size != null ? Ints("hw", size[0], size[1]) : Emit("Slice", [Emit("Shape", [reference!]), Ints("2", 2), Ints("4", 4)]);
            return Emit("Resize", [x, "", "", Emit("Concat", [nc, hw], null, Int("axis", 0))], null, attrs);
        }

        public string Pad(string x, int[] pads) =>
            Emit("Pad", [x, Ints("pads", 0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3])], null, Str("mode", "constant"));

        public string Concat(IReadOnlyList<string> xs) => Emit("Concat", xs, null, Int("axis", 1));

        public string Dropout(string x, double p) => x; // inference: the identity
        public string Identity(string x) => x;

        private static int[] Pads(int[] p) => [p[0], p[1], p[0], p[1]];
        private static ProtoWriter Attr(string name, AttributeType type) =>
            new ProtoWriter().String(AttributeField.Name, name).Int(AttributeField.Type, (int)type);
        private static ProtoWriter Int(string name, long v) => Attr(name, AttributeType.Int).Int(AttributeField.I, v);
        private static ProtoWriter Float(string name, double v) => Attr(name, AttributeType.Float).Float(AttributeField.F, (float)v);
        private static ProtoWriter Str(string name, string v) => Attr(name, AttributeType.String).String(AttributeField.S, v);
        private static ProtoWriter IntsAttr(string name, params long[] v) => Attr(name, AttributeType.Ints).Ints(AttributeField.Ints, v);
        private static ProtoWriter IntsAttr(string name, int[] v) => IntsAttr(name, v.Select(x => (long)x).ToArray());
    }
}

using System.Buffers.Binary;
using System.Text;
using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Import;

/// <summary>Protocol-buffer fields of one message, by field number, in file order.</summary>
internal sealed class ProtoMessage
{
    private readonly List<(int Field, int Wire, ulong Scalar, ReadOnlyMemory<byte> Bytes)> _fields = new();

    public ProtoMessage(ReadOnlyMemory<byte> data, string source)
    {
        var s = data.Span;
        int at = 0;
        ulong Varint(ReadOnlySpan<byte> b)
        {
            ulong v = 0;
            for (int shift = 0; ; shift += 7)
            {
                if (at >= b.Length || shift > 63) throw new InvalidDataException($"{source}: truncated or malformed protobuf");
                byte x = b[at++];
                v |= (ulong)(x & 0x7f) << shift;
                if (x < 0x80) return v;
            }
        }
        while (at < s.Length)
        {
            ulong key = Varint(s);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: _fields.Add((field, 0, Varint(s), default)); break;
                case 1: if (at + 8 > s.Length) throw Truncated(source); _fields.Add((field, 1, BinaryPrimitives.ReadUInt64LittleEndian(s[at..]), default)); at += 8; break;
                case 5: if (at + 4 > s.Length) throw Truncated(source); _fields.Add((field, 5, BinaryPrimitives.ReadUInt32LittleEndian(s[at..]), default)); at += 4; break;
                case 2:
                {
                    long len = (long)Varint(s);
                    if (len < 0 || at + len > s.Length) throw Truncated(source);
                    _fields.Add((field, 2, 0, data.Slice(at, (int)len)));
                    at += (int)len;
                    break;
                }
                default: throw new InvalidDataException($"{source}: malformed protobuf (wire type {wire})");
            }
        }
    }

    private static InvalidDataException Truncated(string source) => new($"{source}: truncated protobuf");

    public IEnumerable<ReadOnlyMemory<byte>> Bytes(int field) => _fields.Where(f => f.Field == field && f.Wire == 2).Select(f => f.Bytes);
    public IEnumerable<string> Strings(int field) => Bytes(field).Select(b => Encoding.UTF8.GetString(b.Span));
    public string String(int field) => Strings(field).LastOrDefault() ?? "";
    public long Int(int field, long fallback = 0) => _fields.Where(f => f.Field == field && f.Wire == 0).Select(f => (long)f.Scalar).DefaultIfEmpty(fallback).Last();
    public float Float(int field) => _fields.Where(f => f.Field == field && f.Wire == 5).Select(f => BitConverter.UInt32BitsToSingle((uint)f.Scalar)).LastOrDefault();

    /// <summary>Repeated varints, packed or not.</summary>
    public List<long> Ints(int field)
    {
        var list = new List<long>();
        foreach (var f in _fields.Where(f => f.Field == field))
        {
            if (f.Wire == 0) { list.Add((long)f.Scalar); continue; }
            if (f.Wire != 2) continue;
            var packed = new ProtoPacked(f.Bytes.Span);
            while (packed.More) list.Add((long)packed.Varint());
        }
        return list;
    }

    /// <summary>Repeated floats, packed or not.</summary>
    public List<float> Floats(int field)
    {
        var list = new List<float>();
        foreach (var f in _fields.Where(f => f.Field == field))
        {
            if (f.Wire == 5) list.Add(BitConverter.UInt32BitsToSingle((uint)f.Scalar));
            else if (f.Wire == 2) for (int i = 0; i + 4 <= f.Bytes.Length; i += 4) list.Add(BinaryPrimitives.ReadSingleLittleEndian(f.Bytes.Span[i..]));
        }
        return list;
    }

    public IEnumerable<ProtoMessage> Messages(int field, string source) => Bytes(field).Select(b => new ProtoMessage(b, source));

    private ref struct ProtoPacked(ReadOnlySpan<byte> b)
    {
        private readonly ReadOnlySpan<byte> _b = b;
        private int _at;
        public bool More => _at < _b.Length;
        public ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; _at < _b.Length; shift += 7)
            {
                byte x = _b[_at++];
                v |= (ulong)(x & 0x7f) << shift;
                if (x < 0x80) break;
            }
            return v;
        }
    }
}

/// <summary>
/// ONNX CNNs (Conv, ConvTranspose, BatchNormalization, Relu, LeakyRelu, Sigmoid, Add, Concat, MaxPool,
/// AveragePool, GlobalAveragePool, Resize/Upsample, Identity, Dropout, and the Constant nodes that feed
/// Resize) as a graph with weights, so a model exported from PyTorch can be pruned. A node takes its name from
/// its weight initializer ("enc0.conv1.weight" → "enc0.conv1", PyTorch's module path) when it has one.
/// </summary>
public static class OnnxImport
{
    private static readonly HashSet<string> Supported = new() { "Conv", "ConvTranspose", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Add", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool", "Resize", "Upsample", "Identity", "Dropout", "Constant" };

    public static ModelPackage Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw new InvalidDataException($"{path}: cannot read: {e.Message}"); }
        var model = new ProtoMessage(bytes, path);
        var graphBytes = model.Bytes(7).LastOrDefault();
        if (graphBytes.IsEmpty) throw new InvalidDataException($"{path}: not an ONNX model (no graph)");
        var g = new ProtoMessage(graphBytes, path);
        var nodes = g.Messages(1, path).ToList();
        var unsupported = nodes.Select(n => n.String(4)).Where(op => !Supported.Contains(op)).Distinct().ToList();
        if (unsupported.Count > 0) throw new InvalidDataException($"{path}: unsupported ONNX operators: {string.Join(", ", unsupported)} (supported: {string.Join(", ", Supported.Order())})");

        var constants = new Dictionary<string, (long[] Dims, float[] Values)>();
        foreach (var t in g.Messages(5, path)) constants[t.String(8)] = Tensor(t, path);
        foreach (var n in nodes.Where(n => n.String(4) == "Constant"))
        {
            var value = n.Messages(5, path).FirstOrDefault(a => a.String(1) == "value") ?? throw new InvalidDataException($"{path}: Constant node without a tensor value");
            constants[n.Strings(2).First()] = Tensor(value.Messages(5, path).First(), path);
        }

        var inputs = g.Messages(11, path).Where(v => !constants.ContainsKey(v.String(1))).ToList();
        if (inputs.Count != 1) throw new InvalidDataException($"{path}: expected one graph input (besides initializers), found {inputs.Count}");
        var dims = inputs[0].Messages(2, path).SelectMany(t => t.Messages(1, path)).SelectMany(tt => tt.Messages(2, path)).SelectMany(s => s.Messages(1, path)).Select(d => d.Int(1, -1)).ToList();
        if (dims.Count != 4 || dims.Skip(1).Any(d => d <= 0)) throw new InvalidDataException($"{path}: the input must be NCHW with fixed C, H, W; found [{string.Join(", ", dims.Select(d => d < 0 ? "?" : d.ToString()))}]");

        var irNodes = new List<Node>();
        var weights = new WeightSet();
        var producer = new Dictionary<string, string>(); // ONNX tensor name → IR node name
        var used = new HashSet<string>();
        string Unique(string name) { var n = name; for (int k = 2; !used.Add(n); k++) n = $"{name}_{k}"; return n; }
        string inputName = inputs[0].String(1);
        irNodes.Add(new InputNode { Name = Unique("input"), Channels = (int)dims[1], Height = (int)dims[2], Width = (int)dims[3] });
        producer[inputName] = irNodes[0].Name;

        int index = 0;
        foreach (var n in nodes)
        {
            index++;
            string op = n.String(4);
            if (op == "Constant") continue;
            var ins = n.Strings(1).ToList();
            var outs = n.Strings(2).ToList();
            var attrs = n.Messages(5, path).ToDictionary(a => a.String(1));
            long IntAttr(string k, long d) => attrs.TryGetValue(k, out var a) ? a.Int(3, d) : d;
            float FloatAttr(string k, float d) => attrs.TryGetValue(k, out var a) ? a.Float(2) : d;
            int[]? IntsAttr(string k) => attrs.TryGetValue(k, out var a) ? a.Ints(8).Select(v => (int)v).ToArray() : null;
            string StrAttr(string k, string d) => attrs.TryGetValue(k, out var a) ? Encoding.UTF8.GetString(a.Bytes(4).LastOrDefault().Span) : d;
            string Data(int i) => producer.TryGetValue(ins[i], out var p) ? p : throw new InvalidDataException($"{path}: node {n.String(3)} ({op}) reads '{ins[i]}', which no earlier node produces");
            (long[] Dims, float[] Values) Const(int i) => constants.TryGetValue(ins[i], out var c) ? c : throw new InvalidDataException($"{path}: node {n.String(3)} ({op}) needs '{ins[i]}' to be an initializer or constant");
            string BaseName(string fallback)
            {
                var w = ins.Skip(1).FirstOrDefault(i => constants.ContainsKey(i) && (i.EndsWith(".weight") || i.EndsWith(".scale")));
                if (w != null) return w[..w.LastIndexOf('.')];
                var name = n.String(3).Trim('/').Replace('/', '.');
                return name.Length > 0 ? name : $"{fallback}{index}";
            }
            int[] Pair(int[]? v, int d) => v is { Length: >= 2 } ? new[] { v[0], v[1] } : new[] { d, d };
            int[] Pads(int[]? p)
            {
                if (p is null) return new[] { 0, 0 };
                if (p.Length == 4 && (p[0] != p[2] || p[1] != p[3])) throw new InvalidDataException($"{path}: node {n.String(3)} ({op}) has asymmetric pads [{string.Join(", ", p)}]");
                return new[] { p[0], p[1] };
            }
            void CheckAutoPad() { if (StrAttr("auto_pad", "NOTSET") is not ("NOTSET" or "")) throw new InvalidDataException($"{path}: node {n.String(3)} ({op}) uses auto_pad, which is not supported"); }
            Node node;
            string name = Unique(BaseName(op.ToLowerInvariant()));
            switch (op)
            {
                case "Conv" or "ConvTranspose":
                {
                    CheckAutoPad();
                    var w = Const(1);
                    bool transposed = op == "ConvTranspose";
                    int groups = (int)IntAttr("group", 1);
                    int inCh = transposed ? (int)w.Dims[0] : (int)w.Dims[1] * groups, outCh = transposed ? (int)w.Dims[1] * groups : (int)w.Dims[0];
                    var conv = transposed ? new ConvTranspose2dNode { OutputPadding = Pair(IntsAttr("output_padding"), 0) } : new Conv2dNode();
                    conv.Name = name; conv.Inputs = new() { Data(0) }; conv.InChannels = inCh; conv.OutChannels = outCh;
                    conv.Kernel = new[] { (int)w.Dims[2], (int)w.Dims[3] }; conv.Stride = Pair(IntsAttr("strides"), 1); conv.Padding = Pads(IntsAttr("pads"));
                    conv.Dilation = Pair(IntsAttr("dilations"), 1); conv.Groups = groups; conv.Bias = ins.Count > 2 && ins[2].Length > 0;
                    weights[$"{name}.weight"] = new TensorData(w.Dims, w.Values);
                    if (conv.Bias) { var b = Const(2); weights[$"{name}.bias"] = new TensorData(b.Dims, b.Values); }
                    node = conv;
                    break;
                }
                case "BatchNormalization":
                {
                    var scale = Const(1);
                    node = new BatchNorm2dNode { Name = name, Inputs = { Data(0) }, Channels = (int)scale.Dims[0], Eps = FloatAttr("epsilon", 1e-5f) };
                    string[] keys = { "weight", "bias", "running_mean", "running_var" };
                    for (int i = 0; i < 4; i++) { var t = Const(i + 1); weights[$"{name}.{keys[i]}"] = new TensorData(t.Dims, t.Values); }
                    break;
                }
                case "Relu": node = new ReluNode { Name = name, Inputs = { Data(0) } }; break;
                case "LeakyRelu": node = new LeakyReluNode { Name = name, Inputs = { Data(0) }, NegativeSlope = Math.Round(FloatAttr("alpha", 0.01f), 7) }; break;
                case "Sigmoid": node = new SigmoidNode { Name = name, Inputs = { Data(0) } }; break;
                case "Identity" or "Dropout": node = new IdentityNode { Name = name, Inputs = { Data(0) } }; break;
                case "Add": node = new AddNode { Name = name, Inputs = ins.Select((_, i) => Data(i)).ToList() }; break;
                case "Concat":
                    if (IntAttr("axis", 1) is not (1 or -3)) throw new InvalidDataException($"{path}: node {n.String(3)}: Concat along axis {IntAttr("axis", 1)} (only channels are supported)");
                    node = new ConcatNode { Name = name, Inputs = ins.Select((_, i) => Data(i)).ToList() };
                    break;
                case "MaxPool" or "AveragePool":
                {
                    CheckAutoPad();
                    if (op == "AveragePool" && IntAttr("count_include_pad", 0) == 0 && Pads(IntsAttr("pads")).Any(p => p > 0))
                        throw new InvalidDataException($"{path}: node {n.String(3)}: AveragePool excluding padding from the count is not supported");
                    Pool2dNode pool = op == "MaxPool" ? new MaxPool2dNode() : new AvgPool2dNode();
                    pool.Name = name; pool.Inputs = new() { Data(0) };
                    pool.Kernel = Pair(IntsAttr("kernel_shape"), 1); pool.Stride = Pair(IntsAttr("strides"), 1); pool.Padding = Pads(IntsAttr("pads")); pool.CeilMode = IntAttr("ceil_mode", 0) == 1;
                    node = pool;
                    break;
                }
                case "GlobalAveragePool": node = new AdaptiveAvgPool2dNode { Name = name, Inputs = { Data(0) }, OutputSize = new[] { 1, 1 } }; break;
                case "Resize" or "Upsample":
                {
                    string mode = StrAttr("mode", "nearest");
                    string transform = StrAttr("coordinate_transformation_mode", op == "Upsample" ? "asymmetric" : "half_pixel");
                    var up = new UpsampleNode { Name = name, Inputs = { Data(0) }, Mode = mode switch { "nearest" => "nearest", "linear" or "bilinear" => "bilinear", _ => throw new InvalidDataException($"{path}: node {n.String(3)}: {op} mode '{mode}' is not supported") } };
                    up.AlignCorners = transform == "align_corners";
                    if (up.Mode == "bilinear" && transform is not ("half_pixel" or "pytorch_half_pixel" or "align_corners"))
                        throw new InvalidDataException($"{path}: node {n.String(3)}: linear {op} with coordinate_transformation_mode '{transform}' is not supported");
                    // Upsample-9: (X, scales); Resize-11+: (X, roi, scales[, sizes])
                    int scalesAt = op == "Upsample" ? 1 : 2, sizesAt = 3;
                    if (ins.Count > sizesAt && ins[sizesAt].Length > 0) { var sizes = Const(sizesAt).Values; up.Size = new[] { (int)sizes[2], (int)sizes[3] }; }
                    else if (ins.Count > scalesAt && ins[scalesAt].Length > 0 && Const(scalesAt).Values is { Length: 4 } sc && sc[2] == sc[3] && sc[0] == 1 && sc[1] == 1) up.Scale = sc[2];
                    else if (attrs.ContainsKey("scales") && attrs["scales"].Floats(7) is { Count: 4 } sa && sa[2] == sa[3]) up.Scale = sa[2];
                    else throw new InvalidDataException($"{path}: node {n.String(3)}: {op} needs equal constant H and W scales or constant sizes");
                    node = up;
                    break;
                }
                default: throw new InvalidDataException($"{path}: unsupported ONNX operator {op}");
            }
            irNodes.Add(node);
            producer[outs[0]] = node.Name;
        }
        var outputs = g.Messages(12, path).Select(v => v.String(1)).ToList();
        if (outputs.Count == 0) throw new InvalidDataException($"{path}: the graph declares no output");
        foreach (var o in outputs)
            irNodes.Add(new OutputNode { Name = Unique(outputs.Count == 1 ? "output" : o), Inputs = { producer.TryGetValue(o, out var p) ? p : throw new InvalidDataException($"{path}: output '{o}' is produced by no node") } });
        var graph = new NetworkGraph(irNodes);
        try { graph.Validate(); }
        catch (GraphException e) { throw new InvalidDataException($"{path}: the imported graph is not valid: {e.Message}"); }

        var meta = new ModelMeta { Architecture = "onnx" };
        var task = meta.Task;
        task.InputChannels = (int)dims[1]; task.InputHeight = (int)dims[2]; task.InputWidth = (int)dims[3];
        int classes = graph.Validate().Last().Output.C;
        task.Mode = classes == 1 ? "binary" : "multiclass";
        task.Labels = TaskInfo.DefaultLabels(classes);
        // a model exported by Sculpt carries its task in metadata_props
        var props = model.Messages(14, path).ToDictionary(p => p.String(1), p => p.String(2));
        if (props.TryGetValue("sculpt.task", out var taskJson))
            meta.Task = System.Text.Json.JsonSerializer.Deserialize<TaskInfo>(taskJson, NetworkGraph.JsonOptions) ?? meta.Task;
        meta.Training = new System.Text.Json.Nodes.JsonObject { ["imported_from"] = Path.GetFullPath(path), ["format"] = "onnx" };
        return new ModelPackage(graph, weights, meta);
    }

    private static (long[] Dims, float[] Values) Tensor(ProtoMessage t, string path)
    {
        var dims = t.Ints(1).ToArray();
        long count = dims.Aggregate(1L, (a, b) => a * b);
        int type = (int)t.Int(2, 1);
        if (t.Int(14) == 1) throw new InvalidDataException($"{path}: tensor '{t.String(8)}' uses external data, which is not supported (save the model as one file)");
        var raw = t.Bytes(9).LastOrDefault();
        float[] values;
        if (!raw.IsEmpty)
        {
            var s = raw.Span;
            values = type switch
            {
                1 => Enumerable.Range(0, s.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(raw.Span[(i * 4)..])).ToArray(),
                7 => Enumerable.Range(0, s.Length / 8).Select(i => (float)BinaryPrimitives.ReadInt64LittleEndian(raw.Span[(i * 8)..])).ToArray(),
                6 => Enumerable.Range(0, s.Length / 4).Select(i => (float)BinaryPrimitives.ReadInt32LittleEndian(raw.Span[(i * 4)..])).ToArray(),
                11 => Enumerable.Range(0, s.Length / 8).Select(i => (float)BinaryPrimitives.ReadDoubleLittleEndian(raw.Span[(i * 8)..])).ToArray(),
                10 => Enumerable.Range(0, s.Length / 2).Select(i => (float)BinaryPrimitives.ReadHalfLittleEndian(raw.Span[(i * 2)..])).ToArray(),
                _ => throw new InvalidDataException($"{path}: tensor '{t.String(8)}' has ONNX data type {type}, which is not supported"),
            };
        }
        else values = type switch
        {
            1 => t.Floats(4).ToArray(),
            7 => t.Ints(7).Select(v => (float)v).ToArray(),
            6 => t.Ints(5).Select(v => (float)v).ToArray(),
            _ => throw new InvalidDataException($"{path}: tensor '{t.String(8)}' has ONNX data type {type} without raw data"),
        };
        if (values.Length != count) throw new InvalidDataException($"{path}: tensor '{t.String(8)}' holds {values.Length} values for shape [{string.Join(", ", dims)}] (truncated?)");
        return (dims, values);
    }
}

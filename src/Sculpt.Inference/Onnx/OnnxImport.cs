using System.Buffers.Binary;
using System.Text;
using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Onnx;

/// <summary>
/// Reads what torch.onnx writes for segmentation CNNs (opsets 11–17, batch norm folded or kept, dynamic or fixed
/// axes) as a graph with weights, so that a model from prior work can be pruned. Tensors are of two kinds: feature
/// maps, which become IR nodes, and constants (initializers, Constant nodes, and every shape computation —
/// Shape, Gather, Slice, Concat, Cast, Unsqueeze, Reshape, arithmetic — evaluated here at the model's input size).
/// A constant element that is a dimension of a feature map remembers which one, so that a Resize to
/// "the size of x" stays a resize to x's size. A layer takes PyTorch's module path as its name: from its weight
/// initializer ("enc0.conv1.weight" → "enc0.conv1") or from the exporter's node scope
/// ("/backbone/layer1/layer1.0/conv1/Conv" → "backbone.layer1.0.conv1").
/// </summary>
public static class OnnxImport
{
    /// <summary>
    /// The height and width to read or run a file at: its own where it fixes them (a given size must then agree), the
    /// given one where it leaves either dynamic (≤ 0), which then must be given.
    /// </summary>
    public static (int Height, int Width) InputSize(string path, long height, long width, (int Height, int Width)? given, string dims)
    {
        bool fixedSize = height > 0 && width > 0;
        if (given is { } size)
        {
            if ((height > 0 && height != size.Height) || (width > 0 && width != size.Width))
                throw new InvalidDataException(
                    $"{path}: the file fixes the input's size [{dims}]; --input-size {size.Height},{size.Width} disagrees");
            return size;
        }
        if (!fixedSize)
            throw new InvalidDataException(
                $"{path}: the input's height and width are dynamic [{dims}]; give the size to run it at (--input-size H,W)");
        return ((int)Math.Min(height, int.MaxValue), (int)Math.Min(width, int.MaxValue));
    }

    /// <summary>The ONNX operators the importer understands (as feature-map operations or as shape computations).</summary>
    public static readonly IReadOnlySet<string> Supported = new SortedSet<string>
    {
        "Add", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
        "ConvTranspose", "Div", "Dropout", "Equal", "Expand", "Flatten", "Floor", "Gather", "Gemm", "GlobalAveragePool",
        "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Neg", "Pad",
        "PRelu", "Range", "ReduceMean", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice", "Softmax", "Sqrt", "Squeeze",
        "Sub", "Tanh", "Transpose", "Unsqueeze", "Upsample", "Where",
    };

    /// <summary>What to do instead, for operators that a different export call avoids.</summary>
    private static readonly Dictionary<string, string> Hints = new()
    {
        ["ATen"] = "export with the default operator_export_type (ONNX), not ONNX_ATEN_FALLBACK",
        ["Loop"] = "export by tracing (torch.onnx.export of the nn.Module), not a torch.jit.script module",
        ["If"] = "export by tracing (torch.onnx.export of the nn.Module), not a torch.jit.script module",
        ["SequenceConstruct"] = "return a tensor, not a list, from forward()",
        ["GroupNormalization"] = "export with opset_version=17 (the exporter then writes group norm as InstanceNormalization)",
    };

    /// <summary>ONNX's own limit for a single-file model (protobuf's 2 GiB); larger files use external data.</summary>
    public const long MaxFileBytes = int.MaxValue;

    /// <param name="path">The .onnx file, one file (a model with external data is refused, naming the tensor).</param>
    /// <param name="inputSize">Height and width to evaluate shape computations at, required where the file leaves them dynamic.</param>
    public static ModelPackage Read(string path, (int Height, int Width)? inputSize = null)
    {
        var bytes = Common.InputFile.ReadAll(path, "ONNX file", MaxFileBytes);
        var model = new ProtoMessage(bytes, path);
        var graphBytes = model.Bytes(ModelField.Graph).LastOrDefault();
        if (graphBytes.IsEmpty) throw new InvalidDataException($"{path}: not an ONNX model (no graph)");
        var graph = new ProtoMessage(graphBytes, path);
        long opset = model.Messages(ModelField.OpsetImport, path).Where(o => o.String(OpsetField.Domain) is "" or "ai.onnx")
            .Select(o => o.Int(OpsetField.Version)).DefaultIfEmpty(0).Max();
        var reader = new GraphReader(path, graph, inputSize, opset);
        var (ir, weights) = reader.Build();

        var meta = new ModelMeta { Architecture = "onnx" };
        var task = meta.Task;
        var input = ir.InputNodes.Single();
        task.InputChannels = input.Channels; task.InputHeight = input.Height; task.InputWidth = input.Width;
        int classes = ir.OutputChannels();
        task.Mode = classes == 1 ? "binary" : "multiclass";
        task.Labels = TaskInfo.DefaultLabels(classes);
        if (input.Channels != 1)
            task.Normalization = new Normalization
            {
                Mean = new double[input.Channels], Std = Enumerable.Repeat(1.0, input.Channels).ToArray(),
            };
        // a model exported by Sculpt carries its task in metadata_props
        var props = model.Messages(ModelField.MetadataProps, path)
            .ToDictionary(p => p.String(EntryField.Key), p => p.String(EntryField.Value));
        if (props.TryGetValue("sculpt.task", out var taskJson))
        {
            try { meta.Task = System.Text.Json.JsonSerializer.Deserialize<TaskInfo>(taskJson, NetworkGraph.JsonOptions) ?? meta.Task; }
            catch (System.Text.Json.JsonException e)
            {
                throw new InvalidDataException($"{path}: metadata 'sculpt.task' is not valid: {e.Message.Split('\n')[0]}");
            }
        }
        meta.Training = new System.Text.Json.Nodes.JsonObject { ["imported_from"] = Path.GetFullPath(path), ["format"] = "onnx" };
        return new ModelPackage(ir, weights, meta);
    }

    /// <summary>A dimension of a feature map (IR node, axis), remembered by the constants computed from it.</summary>
    private readonly record struct Dim(string Node, int Axis);

    /// <summary>A constant tensor, values as doubles (exact for the integers shape computations use).</summary>
    private sealed record Const(long[] Dims, double[] Values, bool IsInt, Dim?[] Dims0)
    {
        public static Const Of(long[] dims, double[] values, bool isInt, Dim?[]? symbols = null) =>
            new(dims, values, isInt, symbols ?? new Dim?[values.Length]);
        public long Count => Values.Length;
        public int Rank => Dims.Length;
    }

    /// <summary>
    /// A feature map: the IR node that computes it, and how ONNX sees it — rank 4 (N, C, H, W), rank 2 (N, C) for
    /// pooled features that Gemm/MatMul read, or rank 3 (N, G, C/G·H·W), the view the exporter writes group norm on.
    /// </summary>
    private sealed record Data(string Node, int Rank, Shape Shape, int Groups = 0);

    private sealed class GraphReader(string path, ProtoMessage graph, (int Height, int Width)? inputSize, long opset)
    {
        private readonly Dictionary<string, object> _values = new(); // ONNX tensor name → Const or Data
        private readonly List<Node> _nodes = new();
        private readonly WeightSet _weights = new();
        private readonly HashSet<string> _used = new();
        private readonly Dictionary<string, Shape> _shapes = new();
        private ProtoMessage _n = null!;
        private string _op = "";
        private List<string> _ins = new();
        private Dictionary<string, ProtoMessage> _attrs = new();

        private string Where => $"{path}: node '{Quote(_n.String(NodeField.Name))}' ({Quote(_op)})";
        private static string Quote(string text) => Common.Messages.Quote(text);
        private InvalidDataException Fail(string message) => new($"{Where}: {message}");

        public (NetworkGraph, WeightSet) Build()
        {
            var nodes = graph.Messages(GraphField.Node, path).ToList();
            var missing = nodes
                .Select(n => (Op: n.String(NodeField.OpType), Name: n.String(NodeField.Name), Domain: n.String(NodeField.Domain)))
                .Where(n => n.Domain is not ("" or "ai.onnx") || !Supported.Contains(n.Op)).GroupBy(n => n.Op).ToList();
            if (missing.Count > 0)
            {
                var parts = missing.Select(g =>
                {
                    var names = g.Select(n => n.Name.Length > 0 ? Quote(n.Name) : "(unnamed)").ToList();
                    var hint = Hints.TryGetValue(g.Key, out var h) ? $" — {h}" : "";
                    return $"{Quote(g.Key)} at {string.Join(", ", names.Take(3))}{(names.Count > 3 ? $" and {names.Count - 3} more" : "")}{hint}";
                });
                throw new InvalidDataException($"{path}: unsupported ONNX operators: {string.Join("; ", parts)}");
            }
            foreach (var t in graph.Messages(GraphField.Initializer, path)) _values[t.String(TensorField.Name)] = ReadTensor(t);
            ReadInput();
            foreach (var n in nodes)
            {
                _n = n;
                _op = n.String(NodeField.OpType);
                _ins = n.Strings(NodeField.Input).ToList();
                _attrs = new();
                foreach (var a in n.Messages(NodeField.Attribute, path)) _attrs[a.String(AttributeField.Name)] = a;
                var outs = n.Strings(NodeField.Output).ToList();
                if (outs.Count == 0) throw Fail("has no output");
                object result;
                // a malformed node (an axis past its rank, an index past a constant) stops here, named, whatever
                // arithmetic it breaks inside the folding of constants
                try { result = Step(); }
                catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidCastException or OverflowException
                    or KeyNotFoundException or InvalidOperationException or DivideByZeroException)
                {
                    throw Fail($"malformed node ({e.GetType().Name}: {Common.Messages.OneLine(e.Message)})");
                }
                _values[outs[0]] = result;
            }
            var outputs = graph.Messages(GraphField.Output, path).Select(v => v.String(ValueInfoField.Name)).ToList();
            if (outputs.Count != 1)
                throw new InvalidDataException($"{path}: the graph has {outputs.Count} outputs; Sculpt needs exactly one (the logits)");
            if (!_values.TryGetValue(outputs[0], out var o) || o is not Data { Rank: 4 } od)
                throw new InvalidDataException($"{path}: output '{Quote(outputs[0])}' is not a feature map computed from the input");
            _nodes.Add(new OutputNode { Name = Unique("output"), Inputs = { od.Node } });
            FuseGroupNormAffine();
            var g = new NetworkGraph(_nodes);
            try { g.Validate(); }
            catch (GraphException e) { throw new InvalidDataException($"{path}: the imported graph is not valid: {e.Message}"); }
            WeightLayout.Check(g, _weights, path);
            return (g, _weights);
        }

        private void ReadInput()
        {
            var inputs = graph.Messages(GraphField.Input, path).Where(v => !_values.ContainsKey(v.String(ValueInfoField.Name))).ToList();
            if (inputs.Count != 1)
                throw new InvalidDataException($"{path}: expected one graph input (besides initializers), found {inputs.Count}");
            var dims = inputs[0].Messages(ValueInfoField.Type, path).SelectMany(t => t.Messages(TypeField.Tensor, path))
                .SelectMany(tt => tt.Messages(TensorTypeField.Shape, path)).SelectMany(s => s.Messages(ShapeField.Dim, path))
                .Select(d => d.Int(DimField.Value, -1)).ToList();
            string Text() => string.Join(", ", dims.Select(d => d <= 0 ? "?" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            if (dims.Count != 4 || dims[1] <= 0 || dims[1] > 64)
                throw new InvalidDataException($"{path}: the input must be N×C×H×W with a fixed C; found [{Text()}]");
            var (h, w) = InputSize(path, dims[2], dims[3], inputSize, Text());
            if (h > 8192 || w > 8192) throw new InvalidDataException($"{path}: input size {h}×{w} is larger than 8192×8192");
            var node = new InputNode { Name = Unique("input"), Channels = (int)dims[1], Height = h, Width = w };
            Add(node, new Shape(node.Channels, h, w));
            _values[inputs[0].String(ValueInfoField.Name)] = new Data(node.Name, 4, _shapes[node.Name]);
        }

        // ---------- one ONNX node ----------

        private object Step()
        {
            if (_op == "Constant") return ConstantNode();
            var present = _ins.Where(i => i.Length > 0).ToList();
            foreach (var i in present)
                if (!_values.ContainsKey(i)) throw Fail($"reads '{Quote(i)}', which no earlier node produces");
            if (_op == "Shape" && Value(0) is Data d) return ShapeOf(d);
            if (present.All(i => _values[i] is Const)) return Fold();
            return FeatureMap();
        }

        private object Value(int i) => i < _ins.Count && _ins[i].Length > 0 ? _values[_ins[i]] : throw Fail($"needs input {i + 1}");
        private bool Has(int i) => i < _ins.Count && _ins[i].Length > 0;
        private Const C(int i) =>
            Value(i) as Const ?? throw Fail($"input {i + 1} must be a constant (an initializer or computed from shapes)");
        private Data D(int i) => Value(i) as Data ?? throw Fail($"input {i + 1} must be a feature map");

        private long IntAttr(string k, long d) => _attrs.TryGetValue(k, out var a) ? a.Int(AttributeField.I, d) : d;
        private double FloatAttr(string k, double d) => _attrs.TryGetValue(k, out var a) ? a.Float(AttributeField.F) : d;
        private long[]? IntsAttr(string k) => _attrs.TryGetValue(k, out var a) ? a.Ints(AttributeField.Ints).ToArray() : null;
        private string StrAttr(string k, string d) =>
            _attrs.TryGetValue(k, out var a) ? Encoding.UTF8.GetString(a.Bytes(AttributeField.S).LastOrDefault().Span) : d;

        private object ConstantNode()
        {
            if (_attrs.TryGetValue("value", out var v))
                return ReadTensor(v.Messages(AttributeField.T, path).FirstOrDefault() ?? throw Fail("has no tensor value"));
            if (_attrs.TryGetValue("value_float", out var f)) return Const.Of([], [f.Float(AttributeField.F)], false);
            if (_attrs.TryGetValue("value_int", out var i)) return Const.Of([], [i.Int(AttributeField.I)], true);
            if (_attrs.TryGetValue("value_ints", out var ii)) return Vector(ii.Ints(AttributeField.Ints).Select(v => (double)v), true);
            if (_attrs.TryGetValue("value_floats", out var ff))
                return Vector(ff.Floats(AttributeField.Floats).Select(v => (double)v), false);
            throw Fail("has no value this importer reads (value, value_float(s), value_int(s))");
        }

        private static Const Vector(IEnumerable<double> values, bool isInt)
        {
            var v = values.ToArray();
            return Const.Of([v.Length], v, isInt);
        }

        private Const ShapeOf(Data d)
        {
            var s = d.Shape;
            long[] full = d.Rank switch
            {
                4 => [1, s.C, s.H, s.W],
                2 => [1, s.C],
                _ => [1, d.Groups, (long)s.C / d.Groups * s.H * s.W],
            };
            Dim?[] sym = d.Rank switch
            {
                4 => [new Dim(d.Node, 0), new Dim(d.Node, 1), new Dim(d.Node, 2), new Dim(d.Node, 3)],
                2 => [new Dim(d.Node, 0), new Dim(d.Node, 1)],
                _ => [new Dim(d.Node, 0), null, null],
            };
            int start = (int)Norm(IntAttr("start", 0), full.Length, true), end = (int)Norm(IntAttr("end", full.Length), full.Length, true);
            end = Math.Max(start, end);
            return Const.Of([end - start], full[start..end].Select(v => (double)v).ToArray(), true, sym[start..end]);
        }

        private static long Norm(long axis, long rank, bool clamp = false)
        {
            long a = axis < 0 ? axis + rank : axis;
            if (clamp) return Math.Clamp(a, 0, rank);
            return a >= 0 && a < rank ? a : throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is out of range for rank {rank}");
        }

        // ---------- constant folding (shape computations) ----------

        private const long MaxConstant = 1 << 24;

        private Const Fold()
        {
            switch (_op)
            {
                case "Identity" or "Dropout": return C(0);
                case "Cast":
                {
                    var x = C(0);
                    long to = IntAttr("to", 1);
                    bool isInt = to is not ((long)DataType.Float or (long)DataType.Double or (long)DataType.Float16);
                    var v = isInt ? x.Values.Select(Math.Truncate).ToArray() : x.Values;
                    return x with { Values = v, IsInt = isInt };
                }
                case "Shape":
                {
                    var x = C(0);
                    return Const.Of([x.Rank], x.Dims.Select(v => (double)v).ToArray(), true);
                }
                case "Gather": return Gather(C(0), C(1), (int)IntAttr("axis", 0));
                case "Unsqueeze":
                {
                    var x = C(0);
                    var axes = Has(1) ? C(1).Values.Select(v => (long)v).ToArray() : IntsAttr("axes") ?? throw Fail("needs axes");
                    var dims = x.Dims.ToList();
                    foreach (var a in axes.Select(a => Norm(a, x.Rank + axes.Length)).Order()) dims.Insert((int)a, 1);
                    return x with { Dims = dims.ToArray() };
                }
                case "Squeeze":
                {
                    var x = C(0);
                    var axes = Axes()?.Select(a => Norm(a, x.Rank)).ToHashSet();
                    return x with { Dims = x.Dims.Where((d, i) => axes is null ? d != 1 : !axes.Contains(i)).ToArray() };
                }
                case "Reshape": return x0Reshape(C(0), C(1));
                case "Flatten":
                {
                    var x = C(0);
                    int axis = (int)Norm(IntAttr("axis", 1), x.Rank);
                    long a = x.Dims[..axis].Aggregate(1L, (p, q) => p * q);
                    return x with { Dims = [a, x.Count / Math.Max(a, 1)] };
                }
                case "Concat":
                {
                    var parts = _ins.Where(i => i.Length > 0).Select(i => (Const)_values[i]).ToList();
                    return ConcatConst(parts, (int)IntAttr("axis", 0));
                }
                case "Slice": return SliceConst();
                case "Transpose":
                {
                    var x = C(0);
                    var perm = IntsAttr("perm")?.Select(p => (int)p).ToArray() ?? Enumerable.Range(0, x.Rank).Reverse().ToArray();
                    return Transpose(x, perm);
                }
                case "ConstantOfShape":
                {
                    var shape = C(0).Values.Select(v => (long)v).ToArray();
                    long n = CheckedCount(shape);
                    double fill = 0; bool isInt = false;
                    if (_attrs.TryGetValue("value", out var v))
                    {
                        var t = ReadTensor(v.Messages(AttributeField.T, path).First());
                        (fill, isInt) = (t.Values.FirstOrDefault(), t.IsInt);
                    }
                    return Const.Of(shape, Enumerable.Repeat(fill, (int)n).ToArray(), isInt);
                }
                case "Range":
                {
                    double start = C(0).Values[0], limit = C(1).Values[0], delta = C(2).Values[0];
                    if (delta == 0) throw Fail("delta is 0");
                    long n = Math.Max(0, (long)Math.Ceiling((limit - start) / delta));
                    if (n > MaxConstant) throw Fail($"range of {n} values is too large");
                    return Const.Of([n], Enumerable.Range(0, (int)n).Select(i => start + i * delta).ToArray(), C(0).IsInt);
                }
                case "Add" or "Sub" or "Mul" or "Div" or "Equal": return BinaryConst(C(0), C(1));
                case "Where":
                {
                    var cond = C(0); var a = C(1); var b = C(2);
                    var ab = Broadcast(a, b, (x, y) => x); // shape of a ⊕ b
                    var cab = Broadcast(cond, ab, (x, y) => x);
                    var va = Broadcast(cab, a, (x, y) => y); var vb = Broadcast(cab, b, (x, y) => y);
                    return Const.Of(cab.Dims, cab.Values.Select((c, i) => c != 0 ? va.Values[i] : vb.Values[i]).ToArray(), a.IsInt);
                }
                case "Expand":
                {
                    var x = C(0);
                    var shape = C(1).Values.Select(v => (long)v).ToArray();
                    var target = Const.Of(shape, new double[CheckedCount(shape)], x.IsInt);
                    return Broadcast(target, x, (_, y) => y) with { IsInt = x.IsInt };
                }
                case "Floor": return Map(C(0), Math.Floor);
                case "Ceil": return Map(C(0), Math.Ceiling);
                case "Neg": return Map(C(0), v => -v);
                case "Sqrt": return Map(C(0), Math.Sqrt);
                default: throw Fail("on constants is not supported (it should compute on a feature map)");
            }
        }

        private long CheckedCount(long[] dims)
        {
            long n = 1;
            foreach (var d in dims)
            {
                if (d < 0) throw Fail($"negative dimension in [{string.Join(", ", dims)}]");
                n = checked(n * d);
                if (n > MaxConstant) throw Fail($"a constant of shape [{string.Join(", ", dims)}] is too large");
            }
            return n;
        }

        private static Const Map(Const x, Func<double, double> f) =>
            x with { Values = x.Values.Select(f).ToArray(), Dims0 = new Dim?[x.Values.Length] };

        private Const x0Reshape(Const x, Const shapeConst)
        {
            var target = shapeConst.Values.Select(v => (long)v).ToArray();
            bool allowZero = IntAttr("allowzero", 0) == 1;
            long known = 1; int infer = -1;
            for (int i = 0; i < target.Length; i++)
            {
                if (target[i] == 0 && !allowZero) target[i] = i < x.Rank ? x.Dims[i] : throw Fail("copies a dimension the input lacks");
                if (target[i] == -1) { if (infer >= 0) throw Fail("has two -1 dimensions"); infer = i; }
                else if (target[i] < 0) throw Fail($"has dimension {target[i]}");
                else known *= target[i];
            }
            if (infer >= 0) target[infer] = known == 0 ? 0 : x.Count / known;
            if (target.Aggregate(1L, (a, b) => a * b) != x.Count)
                throw Fail($"cannot reshape {x.Count} values to [{string.Join(", ", target)}]");
            return x with { Dims = target };
        }

        private Const Gather(Const data, Const indices, int axis)
        {
            axis = (int)Norm(axis, data.Rank);
            if (axis < 0 || axis >= data.Rank) throw Fail($"axis {axis} out of range");
            long outer = data.Dims[..axis].Aggregate(1L, (a, b) => a * b), n = data.Dims[axis];
            long inner = data.Dims[(axis + 1)..].Aggregate(1L, (a, b) => a * b);
            var idx = indices.Values.Select(v => (long)v < 0 ? (long)v + n : (long)v)
                .Select(i => i >= 0 && i < n ? i : throw Fail($"index out of range 0..{n - 1}")).ToArray();
            var values = new List<double>(); var sym = new List<Dim?>();
            for (long o = 0; o < outer; o++)
                foreach (var i in idx)
                    for (long at = (o * n + i) * inner, end = at + inner; at < end; at++)
                    {
                        values.Add(data.Values[at]);
                        sym.Add(data.Dims0[at]);
                    }
            var dims = data.Dims[..axis].Concat(indices.Dims).Concat(data.Dims[(axis + 1)..]).ToArray();
            return Const.Of(dims, values.ToArray(), data.IsInt, sym.ToArray());
        }

        private Const ConcatConst(List<Const> parts, int axis)
        {
            if (parts.Count == 0) throw Fail("has no inputs");
            int rank = parts[0].Rank;
            axis = (int)Norm(axis, rank);
            if (axis < 0 || axis >= rank || parts.Any(p => p.Rank != rank)) throw Fail("inputs of different ranks or a bad axis");
            long outer = parts[0].Dims[..axis].Aggregate(1L, (a, b) => a * b);
            var values = new List<double>(); var sym = new List<Dim?>();
            for (long o = 0; o < outer; o++)
                foreach (var p in parts)
                {
                    long block = p.Dims[axis..].Aggregate(1L, (a, b) => a * b);
                    for (long k = 0; k < block; k++) { values.Add(p.Values[o * block + k]); sym.Add(p.Dims0[o * block + k]); }
                }
            var dims = (long[])parts[0].Dims.Clone();
            dims[axis] = parts.Sum(p => p.Dims[axis]);
            return Const.Of(dims, values.ToArray(), parts.All(p => p.IsInt), sym.ToArray());
        }

        private Const SliceConst()
        {
            var x = C(0);
            long[] starts, ends, axes, steps;
            if (Has(1))
            {
                starts = C(1).Values.Select(v => (long)Math.Clamp(v, long.MinValue / 2, long.MaxValue / 2)).ToArray();
                ends = C(2).Values.Select(v => (long)Math.Clamp(v, long.MinValue / 2, long.MaxValue / 2)).ToArray();
                axes = Has(3) ? C(3).Values.Select(v => (long)v).ToArray()
                    : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
                steps = Has(4) ? C(4).Values.Select(v => (long)v).ToArray() : Enumerable.Repeat(1L, starts.Length).ToArray();
            }
            else
            {
                starts = IntsAttr("starts") ?? throw Fail("needs starts"); ends = IntsAttr("ends") ?? throw Fail("needs ends");
                axes = IntsAttr("axes") ?? Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
                steps = Enumerable.Repeat(1L, starts.Length).ToArray();
            }
            // per axis, the indices kept
            var keep = x.Dims.Select(d => Enumerable.Range(0, (int)d).Select(i => (long)i).ToArray()).ToArray();
            for (int k = 0; k < starts.Length; k++)
            {
                int a = (int)Norm(axes[k], x.Rank);
                if (a < 0 || a >= x.Rank) throw Fail($"axis {axes[k]} out of range");
                long n = x.Dims[a], step = steps[k];
                if (step == 0) throw Fail("step is 0");
                long s = starts[k] < 0 ? starts[k] + n : starts[k], e = ends[k] < 0 ? ends[k] + n : ends[k];
                var list = new List<long>();
                if (step > 0) { s = Math.Clamp(s, 0, n); e = Math.Clamp(e, 0, n); for (long i = s; i < e; i += step) list.Add(i); }
                else { s = Math.Clamp(s, -1, n - 1); e = Math.Clamp(e, -1, n - 1); for (long i = s; i > e; i += step) list.Add(i); }
                keep[a] = list.ToArray();
            }
            return Select(x, keep);
        }

        private static Const Select(Const x, long[][] keep)
        {
            var strides = new long[x.Rank];
            for (int d = x.Rank - 1, s = 1; d >= 0; s *= (int)x.Dims[d], d--) strides[d] = s;
            var values = new List<double>(); var sym = new List<Dim?>();
            void Walk(int d, long offset)
            {
                if (d == x.Rank) { values.Add(x.Values[offset]); sym.Add(x.Dims0[offset]); return; }
                foreach (var i in keep[d]) Walk(d + 1, offset + i * strides[d]);
            }
            Walk(0, 0);
            return Const.Of(keep.Select(k => (long)k.Length).ToArray(), values.ToArray(), x.IsInt, sym.ToArray());
        }

        private static Const Transpose(Const x, int[] perm)
        {
            var strides = new long[x.Rank];
            for (int d = x.Rank - 1, s = 1; d >= 0; s *= (int)x.Dims[d], d--) strides[d] = s;
            var dims = perm.Select(p => x.Dims[p]).ToArray();
            var values = new List<double>(); var sym = new List<Dim?>();
            void Walk(int d, long offset)
            {
                if (d == dims.Length) { values.Add(x.Values[offset]); sym.Add(x.Dims0[offset]); return; }
                for (long i = 0; i < dims[d]; i++) Walk(d + 1, offset + i * strides[perm[d]]);
            }
            Walk(0, 0);
            return Const.Of(dims, values.ToArray(), x.IsInt, sym.ToArray());
        }

        private Const BinaryConst(Const a, Const b)
        {
            bool isInt = a.IsInt && b.IsInt;
            Func<double, double, double> f = _op switch
            {
                "Add" => (x, y) => x + y,
                "Sub" => (x, y) => x - y,
                "Mul" => (x, y) => x * y,
                // integer division truncates toward zero, as ONNX Runtime computes it
                "Div" => isInt ? (x, y) => y == 0 ? throw Fail("integer division by zero") : Math.Truncate(x / y) : (x, y) => x / y,
                _ => (x, y) => x == y ? 1 : 0,
            };
            var r = Broadcast(a, b, f);
            return r with { IsInt = _op == "Equal" || isInt };
        }

        private Const Broadcast(Const a, Const b, Func<double, double, double> f)
        {
            int rank = Math.Max(a.Rank, b.Rank);
            long Dim(Const t, int d) { int k = d - (rank - t.Rank); return k < 0 ? 1 : t.Dims[k]; }
            var dims = new long[rank];
            for (int d = 0; d < rank; d++)
            {
                long x = Dim(a, d), y = Dim(b, d);
                dims[d] = x == y || y == 1 ? x : x == 1 ? y
                    : throw Fail($"shapes [{string.Join(", ", a.Dims)}] and [{string.Join(", ", b.Dims)}] do not broadcast");
            }
            long n = CheckedCount(dims);
            var values = new double[n];
            var idx = new long[rank];
            for (long i = 0; i < n; i++)
            {
                long rem = i;
                for (int d = rank - 1; d >= 0; d--) { idx[d] = rem % dims[d]; rem /= dims[d]; }
                long Offset(Const t)
                {
                    long o = 0;
                    for (int d = rank - t.Rank; d < rank; d++) { long k = t.Dims[d - (rank - t.Rank)]; o = o * k + (k == 1 ? 0 : idx[d]); }
                    return o;
                }
                values[i] = f(a.Values[Offset(a)], b.Values[Offset(b)]);
            }
            return Const.Of(dims, values, a.IsInt);
        }

        // ---------- feature maps ----------

        private object FeatureMap()
        {
            switch (_op)
            {
                case "Identity" or "Dropout": return D(0);
                case "Cast":
                    if (IntAttr("to", 1) is not ((long)DataType.Float)) throw Fail("casts a feature map to a type other than float");
                    return D(0);
                case "Conv" or "ConvTranspose": return Conv();
                case "Gemm": return Gemm();
                case "MatMul": return MatMul();
                case "BatchNormalization": return BatchNorm();
                case "InstanceNormalization": return InstanceNorm();
                case "Relu": return Unary(new ReluNode());
                case "Sigmoid": return Unary(new SigmoidNode());
                case "Tanh": return Unary(new TanhNode());
                case "HardSwish": return Unary(new HardSwishNode());
                case "LeakyRelu": return Unary(new LeakyReluNode { NegativeSlope = Math.Round(FloatAttr("alpha", 0.01), 7) });
                case "HardSigmoid":
                    return Unary(new HardSigmoidNode
                    {
                        Alpha = Math.Round(FloatAttr("alpha", 0.2), 7), Beta = Math.Round(FloatAttr("beta", 0.5), 7),
                    });
                case "Clip": return Clip();
                case "PRelu": return PRelu();
                case "Softmax":
                {
                    var x = D(0);
                    if (Norm(IntAttr("axis", opset >= 13 ? -1 : 1), x.Rank) != 1 || opset < 13 && x.Rank == 4)
                        throw Fail("softmax over an axis other than the channels (export with opset ≥ 13)");
                    return Unary(new SoftmaxNode());
                }
                case "Add" or "Sub" or "Mul" or "Div": return Elementwise();
                case "Concat":
                {
                    var parts = _ins.Where(i => i.Length > 0)
                        .Select(i => _values[i] as Data ?? throw Fail("concatenates a constant with feature maps")).ToList();
                    if (Norm(IntAttr("axis", 1), parts[0].Rank) != 1)
                        throw Fail($"concatenates along axis {IntAttr("axis", 1)}; only channels are supported");
                    return Emit(new ConcatNode { Inputs = parts.Select(p => p.Node).ToList() }, parts[0].Rank, "concat");
                }
                case "MaxPool" or "AveragePool": return Pool();
                case "GlobalAveragePool": return Emit(new AdaptiveAvgPool2dNode { Inputs = { Rank4(0).Node }, OutputSize = [1, 1] }, 4);
                case "ReduceMean":
                {
                    var x = Rank4(0);
                    var axes = Axes()?.Select(a => Norm(a, 4)).Order().ToArray();
                    if (axes is null || !axes.SequenceEqual([2L, 3L])) throw Fail("reduces axes other than height and width");
                    var pooled = new AdaptiveAvgPool2dNode { Inputs = { x.Node }, OutputSize = [1, 1] };
                    return Emit(pooled, IntAttr("keepdims", 1) == 1 ? 4 : 2);
                }
                case "Resize" or "Upsample": return Resize();
                case "Pad": return Pad();
                case "Flatten":
                {
                    var x = D(0);
                    if (Norm(IntAttr("axis", 1), x.Rank) != 1 || x.Shape.H * x.Shape.W != 1)
                        throw Fail("flattens a feature map larger than 1×1 (only pooled features can be flattened)");
                    return x with { Rank = 2 };
                }
                case "Squeeze" or "Unsqueeze":
                {
                    var x = D(0);
                    if (x.Shape.H * x.Shape.W != 1 || x.Groups > 0) throw Fail("changes the rank of a feature map larger than 1×1");
                    var axes = Axes();
                    int rank = _op == "Squeeze" ? (axes is null ? 2 : x.Rank - axes.Length) : x.Rank + (axes?.Length ?? 0);
                    if (rank is not (2 or 4)) throw Fail($"makes a rank-{rank} feature map");
                    return x with { Rank = rank };
                }
                case "Reshape": return Reshape();
                case "Shape": return ShapeOf(D(0));
                default: throw Fail("on feature maps is not supported");
            }
        }

        private Data Rank4(int i)
        {
            var x = D(i);
            return x.Rank == 4 && x.Groups == 0 ? x : throw Fail($"needs an N×C×H×W feature map, got rank {x.Rank}");
        }

        private string Unique(string name)
        {
            var n = name;
            for (int k = 2; !_used.Add(n); k++) n = $"{name}_{k}";
            return n;
        }

        /// <summary>PyTorch's module path: from a weight initializer, else from the exporter's node scope.</summary>
        private string BaseName(string fallback)
        {
            var w = _ins.Skip(1).FirstOrDefault(i => i.Length > 0 && _values.GetValueOrDefault(i) is Const
                && (i.EndsWith(".weight") || i.EndsWith(".scale")) && !i.StartsWith("onnx::"));
            if (w != null) return w[..w.LastIndexOf('.')];
            var segments = _n.String(NodeField.Name).Split('/', StringSplitOptions.RemoveEmptyEntries).ToList();
            if (segments.Count > 1) segments.RemoveAt(segments.Count - 1); // the operator ("Conv", "Relu_1")
            var parts = new List<string>();
            foreach (var s in segments)
            {
                // "layer1" then "layer1.0": the second is the qualified name of a child of the first
                if (parts.Count > 0 && s.StartsWith(parts[^1] + ".")) parts[^1] = s;
                else parts.Add(s);
            }
            var name = string.Join(".", parts);
            return name.Length > 0 ? name : fallback;
        }

        private void Add(Node node, Shape shape)
        {
            _nodes.Add(node);
            _shapes[node.Name] = shape;
        }

        /// <summary>Adds an IR node (named from its module), infers its shape and returns it as a feature map.</summary>
        private Data Emit(Node node, int rank, string? fallback = null)
        {
            if (node.Name.Length == 0) node.Name = Unique(BaseName(fallback ?? node.Op));
            Shape shape;
            try
            {
                node.ValidateAttributes();
                shape = node.InferShape(node.Inputs.Select(i => _shapes[i]).ToList());
            }
            catch (GraphException e) { throw Fail(e.Message); }
            Add(node, shape);
            return new Data(node.Name, rank, shape);
        }

        private void Weight(string key, Const c, long[]? shape = null)
        {
            shape ??= c.Dims;
            if (c.Count != shape.Aggregate(1L, (a, b) => a * b))
                throw Fail($"{key} holds {c.Count} values for shape [{string.Join(", ", shape)}]");
            _weights[key] = new TensorData(shape, c.Values.Select(v => (float)v).ToArray());
        }

        private int[] Pair(long[]? v, int d) => v is { Length: >= 2 } ? [checked((int)v[0]), checked((int)v[1])] : [d, d];

        /// <summary>Symmetric pads as (h, w), or asymmetric ones as top, left, bottom, right.</summary>
        private (int[] Symmetric, int[]? Explicit) Pads()
        {
            var p = IntsAttr("pads");
            if (StrAttr("auto_pad", "NOTSET") is not ("NOTSET" or "" or "VALID"))
                throw Fail($"uses auto_pad {StrAttr("auto_pad", "")}, which is not supported");
            if (p is null) return ([0, 0], null);
            if (p.Length != 4 || p.Any(v => v < 0 || v > 4096)) throw Fail($"has pads [{string.Join(", ", p)}]");
            if (p[0] == p[2] && p[1] == p[3]) return ([(int)p[0], (int)p[1]], null);
            return ([0, 0], [(int)p[0], (int)p[1], (int)p[2], (int)p[3]]);
        }

        private Data Conv()
        {
            var x = Rank4(0);
            var w = C(1);
            if (w.Rank != 4) throw Fail($"has a rank-{w.Rank} weight; only 2-D convolutions are supported");
            bool transposed = _op == "ConvTranspose";
            int groups = checked((int)IntAttr("group", 1));
            var (pads, explicitPads) = Pads();
            if (transposed && explicitPads != null) throw Fail("has asymmetric pads");
            if (transposed && IntsAttr("output_shape") != null) throw Fail("uses output_shape, which is not supported");
            string input = x.Node;
            if (explicitPads != null) input = Emit(new PadNode { Inputs = { x.Node }, Pads = explicitPads }, 4, "pad").Node;
            var conv = transposed ? new ConvTranspose2dNode { OutputPadding = Pair(IntsAttr("output_padding"), 0) } : new Conv2dNode();
            conv.Inputs = new() { input };
            conv.InChannels = transposed ? (int)w.Dims[0] : checked((int)w.Dims[1] * groups);
            conv.OutChannels = transposed ? checked((int)w.Dims[1] * groups) : (int)w.Dims[0];
            conv.Kernel = [(int)w.Dims[2], (int)w.Dims[3]];
            var k = IntsAttr("kernel_shape");
            if (k != null && (k.Length != 2 || k[0] != w.Dims[2] || k[1] != w.Dims[3]))
                throw Fail($"kernel_shape [{string.Join(", ", k)}] disagrees with its weight");
            conv.Stride = Pair(IntsAttr("strides"), 1); conv.Padding = pads; conv.Dilation = Pair(IntsAttr("dilations"), 1);
            conv.Groups = groups; conv.Bias = Has(2);
            conv.Name = Unique(BaseName(_op.ToLowerInvariant()));
            Weight($"{conv.Name}.weight", w);
            if (conv.Bias) Weight($"{conv.Name}.bias", C(2), [conv.OutChannels]);
            return Emit(conv, 4);
        }

        /// <summary>Gemm on pooled features (a Linear layer) as the 1×1 convolution it is.</summary>
        private Data Gemm()
        {
            var x = D(0);
            if (x.Rank != 2) throw Fail("multiplies a feature map that is not a pooled vector (flatten a 1×1 map first)");
            if (IntAttr("transA", 0) != 0) throw Fail("transposes its feature input");
            var b = C(1);
            if (b.Rank != 2) throw Fail("needs a 2-D weight");
            if (IntAttr("transB", 0) == 0) b = Transpose(b, [1, 0]);
            double alpha = FloatAttr("alpha", 1), beta = FloatAttr("beta", 1);
            int outC = (int)b.Dims[0], inC = (int)b.Dims[1];
            var conv = new Conv2dNode { Inputs = { x.Node }, InChannels = inC, OutChannels = outC, Kernel = [1, 1], Bias = Has(2) };
            conv.Name = Unique(BaseName("linear"));
            Weight($"{conv.Name}.weight", alpha == 1 ? b : Map(b, v => v * alpha), [outC, inC, 1, 1]);
            if (conv.Bias)
            {
                var c = C(2);
                if (c.Count == 1) c = Const.Of([outC], Enumerable.Repeat(c.Values[0], outC).ToArray(), false);
                if (c.Count != outC) throw Fail($"bias of {c.Count} values for {outC} outputs");
                Weight($"{conv.Name}.bias", beta == 1 ? c : Map(c, v => v * beta), [outC]);
            }
            return Emit(conv, 2);
        }

        private Data MatMul()
        {
            var x = D(0);
            var b = C(1);
            if (x.Rank != 2 || b.Rank != 2) throw Fail("multiplies anything but a pooled vector by a 2-D constant");
            var conv = new Conv2dNode
            {
                Inputs = { x.Node }, InChannels = (int)b.Dims[0], OutChannels = (int)b.Dims[1], Kernel = [1, 1], Bias = false,
            };
            conv.Name = Unique(BaseName("linear"));
            Weight($"{conv.Name}.weight", Transpose(b, [1, 0]), [b.Dims[1], b.Dims[0], 1, 1]);
            return Emit(conv, 2);
        }

        private Data BatchNorm()
        {
            var x = D(0);
            if (x.Groups > 0) throw Fail("normalises a grouped view");
            var scale = C(1);
            int c = (int)scale.Count;
            var bn = new BatchNorm2dNode { Inputs = { x.Node }, Channels = c, Eps = FloatAttr("epsilon", 1e-5) };
            bn.Momentum = _attrs.ContainsKey("momentum") ? Math.Round(1 - FloatAttr("momentum", 0.9), 7) : 0.1;
            if (bn.Momentum <= 0 || bn.Momentum > 1) bn.Momentum = 0.1;
            bn.Name = Unique(BaseName("batch_norm"));
            string[] keys = ["weight", "bias", "running_mean", "running_var"];
            for (int i = 0; i < 4; i++) Weight($"{bn.Name}.{keys[i]}", C(i + 1), [c]);
            return Emit(bn, x.Rank);
        }

        private Data InstanceNorm()
        {
            var x = D(0);
            var scale = C(1); var bias = C(2);
            double eps = FloatAttr("epsilon", 1e-5);
            if (x.Groups > 0)
            {
                // group norm as torch.onnx writes it: reshape to [N, G, -1], instance norm with unit affine, reshape back, then γ, β
                if (scale.Values.Any(v => v != 1) || bias.Values.Any(v => v != 0))
                    throw Fail("normalises a grouped view with an affine transform");
                var gn = new GroupNormNode { Inputs = { x.Node }, Groups = x.Groups, Channels = x.Shape.C, Eps = eps, Affine = false };
                var made = Emit(gn, 4, "group_norm");
                return made with { Rank = 3, Groups = x.Groups };
            }
            var node = new InstanceNorm2dNode { Inputs = { Rank4(0).Node }, Channels = (int)scale.Count, Eps = eps, Affine = true };
            node.Name = Unique(BaseName("instance_norm"));
            Weight($"{node.Name}.weight", scale, [node.Channels]);
            Weight($"{node.Name}.bias", bias, [node.Channels]);
            return Emit(node, 4);
        }

        private Data Unary(Node node)
        {
            var x = D(0);
            if (x.Groups > 0) throw Fail("computes on a grouped view");
            node.Inputs = new() { x.Node };
            return Emit(node, x.Rank);
        }

        private Data Clip()
        {
            double min = double.NegativeInfinity, max = double.PositiveInfinity;
            if (_attrs.ContainsKey("min")) min = FloatAttr("min", min);
            if (_attrs.ContainsKey("max")) max = FloatAttr("max", max);
            if (Has(1)) min = C(1).Values.Single();
            if (Has(2)) max = C(2).Values.Single();
            return Unary(new ClipNode { Min = min, Max = max });
        }

        private Data PRelu()
        {
            var x = D(0);
            var slope = C(1);
            int c = (int)slope.Count;
            // a per-channel slope is [C, 1, 1] (or [C] on a pooled vector); one value is shared by every channel
            if (c != 1 && c != x.Shape.C) throw Fail($"slope of {c} values for {x.Shape.C} channels");
            var node = new PReluNode { Inputs = { x.Node }, Channels = c, Shared = c == 1 };
            node.Name = Unique(BaseName("prelu"));
            Weight($"{node.Name}.weight", slope, [c]);
            return Emit(node, x.Rank);
        }

        private Data Elementwise()
        {
            string kind = _op.ToLowerInvariant();
            var a = Value(0); var b = Value(1);
            if (a is Data da && b is Data db)
            {
                if (da.Groups > 0 || db.Groups > 0) throw Fail("computes on a grouped view");
                int rank = Math.Max(da.Rank, db.Rank);
                if (kind == "add" && da.Shape == db.Shape) return Emit(new AddNode { Inputs = { da.Node, db.Node } }, rank, "add");
                return Emit(new ElementwiseNode { Kind = kind, Inputs = { da.Node, db.Node } }, rank, kind);
            }
            bool constantFirst = a is Const;
            var x = (Data)(constantFirst ? b : a);
            var c = (Const)(constantFirst ? a : b);
            if (x.Groups > 0) throw Fail("computes on a grouped view");
            var node = new ElementwiseNode { Kind = kind, Inputs = { x.Node }, ConstantFirst = constantFirst };
            if (c.Count == 1) node.Scalar = c.Values[0];
            else
            {
                // the constant must vary along the channel axis only (axis 1 of the feature map, right-aligned)
                int channelAxis = c.Rank - (x.Rank - 1);
                bool perChannel = channelAxis >= 0 && c.Dims[channelAxis] == x.Shape.C
                    && c.Dims.Select((d, i) => i == channelAxis || d == 1).All(ok => ok) && c.Rank <= x.Rank;
                if (!perChannel)
                    throw Fail($"a constant of shape [{string.Join(", ", c.Dims)}] with a {x.Shape} feature map"
                        + " (only scalars and per-channel constants are supported)");
                node.ConstantChannels = x.Shape.C;
                node.Name = Unique(BaseName(kind));
                Weight($"{node.Name}.constant", c, [x.Shape.C]);
            }
            return Emit(node, x.Rank, kind);
        }

        private Data Pool()
        {
            var x = Rank4(0);
            var (pads, explicitPads) = Pads();
            if (explicitPads != null) throw Fail("has asymmetric pads");
            if (IntsAttr("dilations") is { } dl && dl.Any(v => v != 1)) throw Fail("uses dilated pooling");
            if (_op == "AveragePool" && IntAttr("count_include_pad", 0) == 0 && pads.Any(p => p > 0))
                throw Fail("excludes padding from the average (count_include_pad=0), which is not supported");
            Pool2dNode pool = _op == "MaxPool" ? new MaxPool2dNode() : new AvgPool2dNode();
            pool.Inputs = new() { x.Node };
            pool.Kernel = Pair(IntsAttr("kernel_shape"), 1); pool.Stride = Pair(IntsAttr("strides"), 1); pool.Padding = pads;
            pool.CeilMode = IntAttr("ceil_mode", 0) == 1;
            return Emit(pool, 4, _op == "MaxPool" ? "max_pool" : "avg_pool");
        }

        private Data Resize()
        {
            var x = Rank4(0);
            string mode = StrAttr("mode", "nearest");
            string transform = StrAttr("coordinate_transformation_mode", _op == "Upsample" ? "asymmetric" : "half_pixel");
            var up = new UpsampleNode { Inputs = { x.Node } };
            up.Mode = mode switch
            {
                "nearest" => "nearest", "linear" or "bilinear" => "bilinear", _ => throw Fail($"mode '{mode}' is not supported"),
            };
            up.AlignCorners = transform == "align_corners";
            if (up.Mode == "bilinear" && transform is not ("half_pixel" or "pytorch_half_pixel" or "align_corners"))
                throw Fail($"linear resizing with coordinate_transformation_mode '{transform}' is not supported");
            if (up.Mode == "nearest" && (transform is not ("asymmetric") || StrAttr("nearest_mode", "round_prefer_floor") != "floor")
                && !(transform == "asymmetric" && _op == "Upsample"))
                throw Fail($"nearest resizing with coordinate_transformation_mode '{transform}' and nearest_mode"
                    + $" '{StrAttr("nearest_mode", "round_prefer_floor")}' is not supported (PyTorch writes asymmetric/floor)");
            // Upsample-9: (X, scales); Resize-11+: (X, roi, scales[, sizes])
            int scalesAt = _op == "Upsample" ? 1 : 2;
            if (Has(3))
            {
                var sizes = C(3);
                if (sizes.Count != 4) throw Fail("needs 4 sizes");
                if (sizes.Values[0] != 1 || sizes.Values[1] != x.Shape.C) throw Fail("resizes the batch or channel axis");
                // sizes computed from another feature map's shape: resize to that map's size, whatever it is
                if (sizes.Dims0[2] is { Axis: 2 } rh && sizes.Dims0[3] is { Axis: 3 } rw && rh.Node == rw.Node)
                    up.Inputs.Add(rh.Node);
                else up.Size = [checked((int)sizes.Values[2]), checked((int)sizes.Values[3])];
            }
            else if (Has(scalesAt) && C(scalesAt).Values is { Length: 4 } sc && sc[0] == 1 && sc[1] == 1 && sc[2] == sc[3])
                up.Scale = sc[2];
            else if (_attrs.TryGetValue("scales", out var sa) && sa.Floats(AttributeField.Floats) is { Count: 4 } s && s[2] == s[3])
                up.Scale = s[2];
            else throw Fail("needs equal height and width scales, or sizes");
            return Emit(up, 4, "upsample");
        }

        private Data Pad()
        {
            var x = Rank4(0);
            if (StrAttr("mode", "constant") != "constant") throw Fail($"mode '{StrAttr("mode", "")}' (only zero padding is supported)");
            var p = Has(1) ? C(1).Values.Select(v => (long)v).ToArray() : IntsAttr("pads") ?? throw Fail("needs pads");
            if (p.Length != 8) throw Fail($"needs 8 pads for a rank-4 map, got {p.Length}");
            if (p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0) throw Fail("pads the batch or channel axis");
            if (Has(2) && C(2).Values.Any(v => v != 0)) throw Fail("pads with a value other than 0");
            if (Has(3)) throw Fail("pads selected axes only");
            if (p.Any(v => Math.Abs(v) > 4096)) throw Fail($"pads by [{string.Join(", ", p)}]");
            if (p.All(v => v == 0)) return x; // at this input size the skip already fits: nothing to pad
            return Emit(new PadNode { Inputs = { x.Node }, Pads = [(int)p[2], (int)p[3], (int)p[6], (int)p[7]] }, 4, "pad");
        }

        private Data Reshape()
        {
            var x = D(0);
            var target = C(1).Values.Select(v => (long)v).ToArray();
            var s = x.Shape;
            long perImage = (long)s.C * s.H * s.W;
            // the batch dimension: a copy (0), the batch size computed from the input's shape, or inferred (−1)
            bool BatchDim(int i) => target[i] == 0 || target[i] == -1 || C(1).Dims0[i] is { Axis: 0 } || target[i] == 1;
            if (x.Groups > 0)
            {
                // back from group norm's [N, G, −1] view to the map's own shape
                if (target.Length == 4 && BatchDim(0) && target[1] == s.C && target[2] == s.H && target[3] == s.W)
                    return x with { Rank = 4, Groups = 0 };
                throw Fail($"reshapes a grouped view to [{string.Join(", ", target)}]");
            }
            if (target.Length == 3 && x.Rank == 4 && BatchDim(0) && target[1] > 0 && s.C % target[1] == 0
                && (target[2] == -1 || target[2] == perImage / target[1]))
                return x with { Rank = 3, Groups = (int)target[1] };
            if (s.H * s.W == 1 && target.Length is 2 or 4 && BatchDim(0))
            {
                var rest = target.Skip(1).Select((v, i) => v == 0 && i + 1 < x.Rank ? (i == 0 ? s.C : 1) : v).ToArray();
                long known = rest.Where(v => v > 0).Aggregate(1L, (a, b) => a * b);
                int unknown = rest.Count(v => v < 0);
                // one −1 takes what the others leave of the C values; the result must be [C] or [C, 1, 1]
                if (unknown == 1 && known > 0 && s.C % known == 0) rest = rest.Select(v => v < 0 ? s.C / known : v).ToArray();
                if (unknown <= 1 && rest[0] == s.C && rest.Skip(1).All(v => v == 1)) return x with { Rank = target.Length };
            }
            throw Fail($"reshapes a {s} feature map to [{string.Join(", ", target)}]"
                + " (only pooled vectors and group norm's view can be reshaped)");
        }

        /// <summary>
        /// A group norm without affine followed by a per-channel Mul and Add (torch.onnx's decomposition) becomes one
        /// group norm with γ, β.
        /// </summary>
        private void FuseGroupNormAffine()
        {
            var consumers = _nodes.SelectMany(n => n.Inputs.Select(i => (i, n))).ToLookup(p => p.i, p => p.n);
            foreach (var gn in _nodes.OfType<GroupNormNode>().Where(g => !g.Affine).ToList())
            {
                var scale = consumers[gn.Name].ToList();
                if (scale is not [ElementwiseNode { Kind: "mul", ConstantChannels: not null, ConstantFirst: false } mul])
                    continue;
                if (consumers[mul.Name].ToList() is not [ElementwiseNode { Kind: "add", ConstantChannels: not null } add]) continue;
                gn.Affine = true;
                _weights[$"{gn.Name}.weight"] = _weights[$"{mul.Name}.constant"];
                _weights[$"{gn.Name}.bias"] = _weights[$"{add.Name}.constant"];
                _weights.Remove($"{mul.Name}.constant"); _weights.Remove($"{add.Name}.constant");
                _nodes.Remove(mul); _nodes.Remove(add);
                foreach (var n in _nodes) for (int i = 0; i < n.Inputs.Count; i++) if (n.Inputs[i] == add.Name) n.Inputs[i] = gn.Name;
            }
        }

        // ---------- tensors ----------

        private InvalidDataException Truncated(string name, string holds, long[] dims) =>
            new($"{path}: tensor '{Quote(name)}' holds {holds} for shape [{string.Join(", ", dims)}] (truncated?)");

        private long[]? Axes() => Has(1) ? C(1).Values.Select(v => (long)v).ToArray() : IntsAttr("axes");

        private Const ReadTensor(ProtoMessage t)
        {
            string name = t.String(TensorField.Name);
            var dims = t.Ints(TensorField.Dims).ToArray();
            if (dims.Any(d => d < 0)) throw new InvalidDataException($"{path}: tensor '{Quote(name)}' has a negative dimension");
            long count = 1;
            foreach (var d in dims)
            {
                count = checked(count * d);
                if (count > int.MaxValue / 8) throw new InvalidDataException($"{path}: tensor '{Quote(name)}' is too large");
            }
            var type = (DataType)t.Int(TensorField.DataType, 1);
            if (t.Int(TensorField.DataLocation) == 1)
                throw new InvalidDataException(
                    $"{path}: tensor '{Quote(name)}' uses external data, which is not supported (save the model as one file)");
            var raw = t.Bytes(TensorField.RawData).LastOrDefault();
            bool isInt = type is not (DataType.Float or DataType.Double or DataType.Float16);
            double[] values;
            if (!raw.IsEmpty || count == 0 && !t.Ints(TensorField.Int64Data).Any() && !t.Floats(TensorField.FloatData).Any())
            {
                int size = type switch
                {
                    DataType.Float or DataType.Int32 or DataType.UInt32 => 4, DataType.Double or DataType.Int64 or DataType.UInt64 => 8,
                    DataType.Float16 or DataType.Int16 or DataType.UInt16 => 2, DataType.Int8 or DataType.UInt8 or DataType.Bool => 1,
                    _ => throw new InvalidDataException($"{path}: tensor '{Quote(name)}' has ONNX data type {(int)type}, which is not supported"),
                };
                if (raw.Length != count * size)
                    throw Truncated(name, $"{raw.Length} bytes", dims);
                var s = raw.Span;
                values = new double[count];
                for (int i = 0; i < count; i++)
                {
                    var b = s.Slice(i * size, size);
                    values[i] = type switch
                    {
                        DataType.Float => BinaryPrimitives.ReadSingleLittleEndian(b),
                        DataType.Double => BinaryPrimitives.ReadDoubleLittleEndian(b),
                        DataType.Float16 => (double)BinaryPrimitives.ReadHalfLittleEndian(b),
                        DataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(b),
                        DataType.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(b),
                        DataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(b),
                        DataType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(b),
                        DataType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(b),
                        DataType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(b),
                        DataType.Int8 => (sbyte)b[0],
                        _ => b[0],
                    };
                }
            }
            else values = type switch
            {
                DataType.Float => t.Floats(TensorField.FloatData).Select(v => (double)v).ToArray(),
                DataType.Double => t.Doubles(TensorField.DoubleData).ToArray(),
                DataType.Int64 => t.Ints(TensorField.Int64Data).Select(v => (double)v).ToArray(),
                DataType.Int32 or DataType.Int16 or DataType.Int8 or DataType.UInt8 or DataType.UInt16 or DataType.Bool =>
                    t.Ints(TensorField.Int32Data).Select(v => (double)(int)v).ToArray(),
                DataType.Float16 => t.Ints(TensorField.Int32Data).Select(v => (double)BitConverter.UInt16BitsToHalf((ushort)v)).ToArray(),
                _ => throw new InvalidDataException($"{path}: tensor '{Quote(name)}' has ONNX data type {(int)type} without raw data"),
            };
            if (values.Length != count)
                throw Truncated(name, $"{values.Length} values", dims);
            return Const.Of(dims, values, isInt);
        }
    }
}

using Sculpt.Graph;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sculpt.Runtime;

/// <summary>Names and shapes of the tensors a graph needs, in PyTorch state_dict naming.</summary>
public static class WeightLayout
{
    public static IEnumerable<(string Key, long[] Shape, bool IsBuffer)> Of(NetworkGraph graph)
    {
        foreach (var n in graph.Nodes)
        {
            switch (n)
            {
                case ConvTranspose2dNode t:
                    yield return ($"{n.Name}.weight", new long[] { t.InChannels, t.OutChannels / t.Groups, t.Kernel[0], t.Kernel[1] }, false);
                    if (t.Bias) yield return ($"{n.Name}.bias", new long[] { t.OutChannels }, false);
                    break;
                case Conv2dNode c:
                    yield return ($"{n.Name}.weight", new long[] { c.OutChannels, c.InChannels / c.Groups, c.Kernel[0], c.Kernel[1] }, false);
                    if (c.Bias) yield return ($"{n.Name}.bias", new long[] { c.OutChannels }, false);
                    break;
                case BatchNorm2dNode b:
                    yield return ($"{n.Name}.weight", new long[] { b.Channels }, false);
                    yield return ($"{n.Name}.bias", new long[] { b.Channels }, false);
                    yield return ($"{n.Name}.running_mean", new long[] { b.Channels }, true);
                    yield return ($"{n.Name}.running_var", new long[] { b.Channels }, true);
                    break;
            }
        }
    }

    /// <summary>Throws one message listing every missing, unexpected or wrongly shaped tensor.</summary>
    public static void Check(NetworkGraph graph, WeightSet weights, string source)
    {
        var problems = new List<string>();
        var expected = Of(graph).ToDictionary(e => e.Key, e => e.Shape);
        foreach (var (key, shape) in expected)
        {
            if (!weights.TryGetValue(key, out var t)) problems.Add($"missing {key}");
            else if (!t.SameShape(shape)) problems.Add($"{key} has shape {t.ShapeText}, graph needs [{string.Join(", ", shape)}]");
        }
        foreach (var key in weights.Keys)
            if (!expected.ContainsKey(key)) problems.Add($"unexpected {key}");
        if (problems.Count > 0)
            throw new InvalidDataException($"{source}: graph and weights disagree: {string.Join("; ", problems.Take(8))}{(problems.Count > 8 ? $"; and {problems.Count - 8} more" : "")}");
    }
}

/// <summary>
/// A TorchSharp module that executes any valid <see cref="NetworkGraph"/> — the single runtime for
/// training, fine-tuning and evaluation of dense and pruned models alike.
/// </summary>
public sealed class GraphModule : nn.Module<Tensor, Tensor>
{
    public NetworkGraph Graph { get; }
    private readonly List<Node> _order;
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);
    private readonly int[] _lastUse;
    private readonly int[][] _inputIndex;
    private readonly string _input;
    private readonly string _output;

    static GraphModule() => TorchRuntime.Initialize();

    public GraphModule(NetworkGraph graph, WeightSet? weights = null) : base("GraphModule")
    {
        Graph = graph.Clone();
        Graph.Validate();
        _order = Graph.TopologicalOrder();
        var inputs = Graph.InputNodes.ToList();
        var outputs = Graph.OutputNodes.ToList();
        if (inputs.Count != 1 || outputs.Count != 1)
            throw new GraphException($"GraphModule runs graphs with one input and one output (has {inputs.Count} and {outputs.Count})");
        _input = inputs[0].Name;
        _output = outputs[0].Name;

        foreach (var (key, shape, isBuffer) in WeightLayout.Of(Graph))
        {
            var t = InitialTensor(key, shape);
            var safe = key.Replace('.', '_');
            if (isBuffer) register_buffer(safe, t);
            else
            {
                var p = new Parameter(t, requires_grad: true);
                register_parameter(safe, p);
                t = p;
            }
            _tensors[key] = t;
        }

        var index = _order.Select((n, i) => (n.Name, i)).ToDictionary(p => p.Name, p => p.i);
        _lastUse = new int[_order.Count];
        _inputIndex = _order.Select(n => n.Inputs.Select(i => index[i]).ToArray()).ToArray();
        for (int i = 0; i < _order.Count; i++)
        {
            _lastUse[i] = Math.Max(_lastUse[i], i);
            foreach (var j in _inputIndex[i]) _lastUse[j] = Math.Max(_lastUse[j], i);
        }

        if (weights != null) LoadWeights(weights, "weights");
    }

    /// <summary>PyTorch's default initialisation (kaiming-uniform with a=√5 ⇒ U(±1/√fan_in)), BN γ=1, β=0.</summary>
    private static Tensor InitialTensor(string key, long[] shape)
    {
        string kind = key[(key.LastIndexOf('.') + 1)..];
        return kind switch
        {
            "running_var" => ones(shape),
            "running_mean" => zeros(shape),
            _ when shape.Length == 1 && kind == "weight" => ones(shape), // batch norm γ
            _ when shape.Length == 1 => zeros(shape), // batch norm β and conv bias start at zero
            _ => (rand(shape) * 2 - 1) * (1.0 / Math.Sqrt(shape[1] * shape[2] * shape[3])),
        };
    }

    public Tensor Tensor(string key) => _tensors[key];

    /// <summary>When set, every batch norm uses this momentum in training mode (for cumulative re-estimation).</summary>
    public double? BatchNormMomentumOverride { get; set; }

    /// <summary>
    /// Re-estimates every batch norm's running mean and variance from data (train-mode forward passes, no
    /// gradients, cumulative average over the batches). After channels are removed upstream, the statistics a
    /// BN layer learned on the dense network no longer describe its input; stale statistics shift every later
    /// activation and can push a binary output entirely below threshold.
    /// </summary>
    public void RecalibrateBatchNorm(IEnumerable<torch.Tensor> batches)
    {
        using var _ = no_grad();
        foreach (var bn in Graph.Nodes.OfType<BatchNorm2dNode>())
        {
            _tensors[$"{bn.Name}.running_mean"].zero_();
            _tensors[$"{bn.Name}.running_var"].fill_(1);
        }
        bool wasTraining = training;
        train();
        int k = 0;
        foreach (var x in batches)
        {
            BatchNormMomentumOverride = 1.0 / (k + 1);
            using var y = forward(x);
            k++;
        }
        BatchNormMomentumOverride = null;
        if (!wasTraining) eval();
    }

    public void LoadWeights(WeightSet weights, string source)
    {
        WeightLayout.Check(Graph, weights, source);
        using var _ = no_grad();
        foreach (var (key, t) in _tensors)
            t.copy_(tensor(weights[key].Data, weights[key].Shape));
    }

    public WeightSet ExportWeights()
    {
        var w = new WeightSet();
        foreach (var (key, t) in _tensors)
        {
            using var c = t.detach().contiguous();
            w[key] = new TensorData(c.shape, c.data<float>().ToArray());
        }
        return w;
    }

    /// <summary>Current gradients of the parameters (zeros where none), keyed like the weights.</summary>
    public WeightSet ExportGradients()
    {
        var w = new WeightSet();
        foreach (var (key, t) in _tensors)
        {
            if (!t.requires_grad) continue;
            using var g = t.grad is null ? zeros_like(t) : t.grad.detach().contiguous();
            w[key] = new TensorData(g.shape, g.data<float>().ToArray());
        }
        return w;
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary>Runs the graph; <paramref name="observe"/> sees every node's output (by node name) before it is released.</summary>
    public Tensor Forward(Tensor x, Action<string, Tensor>? observe)
    {
        var values = new Tensor?[_order.Count];
        Tensor? result = null;
        for (int i = 0; i < _order.Count; i++)
        {
            var node = _order[i];
            var inputIndex = _inputIndex[i];
            Tensor In(int k) => values[inputIndex[k]]!;
            Tensor y = node switch
            {
                InputNode => x,
                ConvTranspose2dNode t => F.conv_transpose2d(In(0), _tensors[$"{t.Name}.weight"], t.Bias ? _tensors[$"{t.Name}.bias"] : null,
                    L(t.Stride), L(t.Padding), L(t.OutputPadding), L(t.Dilation), t.Groups),
                Conv2dNode c => F.conv2d(In(0), _tensors[$"{c.Name}.weight"], c.Bias ? _tensors[$"{c.Name}.bias"] : null,
                    L(c.Stride), L(c.Padding), L(c.Dilation), c.Groups),
                BatchNorm2dNode b => F.batch_norm(In(0), _tensors[$"{b.Name}.running_mean"], _tensors[$"{b.Name}.running_var"],
                    _tensors[$"{b.Name}.weight"], _tensors[$"{b.Name}.bias"], training, BatchNormMomentumOverride ?? b.Momentum, b.Eps),
                ReluNode => F.relu(In(0)),
                LeakyReluNode l => F.leaky_relu(In(0), l.NegativeSlope),
                SiluNode => F.silu(In(0)),
                SigmoidNode => F.sigmoid(In(0)),
                MaxPool2dNode p => F.max_pool2d(In(0), L(p.Kernel), L(p.Stride), L(p.Padding), ceil_mode: p.CeilMode),
                AvgPool2dNode p => F.avg_pool2d(In(0), L(p.Kernel), L(p.Stride), L(p.Padding), p.CeilMode),
                AdaptiveAvgPool2dNode a => F.adaptive_avg_pool2d(In(0), L(a.OutputSize)),
                UpsampleNode u => Upsample(u, In(0), u.Inputs.Count == 2 ? In(1) : null),
                AddNode => AddAll(node, In),
                ConcatNode => cat(Enumerable.Range(0, node.Inputs.Count).Select(In).ToArray(), 1),
                DropoutNode d => F.dropout(In(0), d.P, training),
                IdentityNode or OutputNode => In(0).alias(),
                _ => throw new GraphException($"node '{node.Name}': op {node.Op} has no runtime implementation"),
            };
            values[i] = y;
            observe?.Invoke(node.Name, y);
            if (node.Name == _output) result = y;
            // release intermediates as soon as their last consumer ran (autograd keeps what it needs)
            foreach (var j in inputIndex)
            {
                if (_lastUse[j] == i && _order[j] is not InputNode && _order[j].Name != _output) { values[j]?.Dispose(); values[j] = null; }
            }
        }
        return result!;
    }

    private static Tensor AddAll(Node node, Func<int, Tensor> input)
    {
        var acc = input(0) + input(1);
        for (int k = 2; k < node.Inputs.Count; k++) { var next = acc + input(k); acc.Dispose(); acc = next; }
        return acc;
    }

    private static Tensor Upsample(UpsampleNode u, Tensor x, Tensor? reference)
    {
        var mode = u.Mode == "bilinear" ? InterpolationMode.Bilinear : InterpolationMode.Nearest;
        bool? align = u.Mode == "bilinear" ? u.AlignCorners : null;
        if (reference is not null) return F.interpolate(x, new[] { reference.shape[2], reference.shape[3] }, null, mode, align);
        if (u.Size is not null) return F.interpolate(x, new long[] { u.Size[0], u.Size[1] }, null, mode, align);
        return F.interpolate(x, null, new[] { u.Scale!.Value, u.Scale!.Value }, mode, align);
    }

    private static long[] L(int[] v) => v.Select(i => (long)i).ToArray();
}

using Sculpt.Graph;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sculpt.Runtime;

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
    private readonly Shape[][] _shapes;
    private readonly Shape[] _outShapes;
    /// <summary>Each node's own tensors by their name within the node, looked up once instead of on every forward.</summary>
    private readonly Func<string, Tensor>[] _weightOf;
    private readonly string _input;
    private readonly string _output;

    static GraphModule() => TorchRuntime.Initialize();

    public GraphModule(NetworkGraph graph, WeightSet? weights = null) : base("GraphModule")
    {
        Graph = graph.Clone();
        var infos = Graph.Validate().ToDictionary(i => i.Node.Name);
        _order = Graph.TopologicalOrder();
        _shapes = _order.Select(n => infos[n.Name].InputShapes.ToArray()).ToArray();
        _outShapes = _order.Select(n => infos[n.Name].Output).ToArray();
        var inputs = Graph.InputNodes.ToList();
        var outputs = Graph.OutputNodes.ToList();
        if (inputs.Count != 1 || outputs.Count != 1)
            throw new GraphException($"GraphModule runs graphs with one input and one output (has {inputs.Count} and {outputs.Count})");
        _input = inputs[0].Name;
        _output = outputs[0].Name;

        foreach (var (key, spec) in WeightLayout.Specs(Graph))
        {
            var t = InitialTensor(spec);
            var safe = key.Replace('.', '_');
            if (spec.IsBuffer) register_buffer(safe, t);
            else
            {
                var p = new Parameter(t, requires_grad: true);
                GC.KeepAlive(t); // the initial values must outlive the native call that wraps them
                register_parameter(safe, p);
                t = p;
            }
            _tensors[key] = t;
        }

        _weightOf = _order.Select(n =>
        {
            var own = n.Weights().ToDictionary(w => w.Name, w => _tensors[$"{n.Name}.{w.Name}"], StringComparer.Ordinal);
            return (Func<string, Tensor>)(w => own[w]);
        }).ToArray();
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

    /// <summary>The spec's fill value, or PyTorch's default initialisation (kaiming-uniform with a=√5 ⇒ U(±1/√fan_in)).</summary>
    private static Tensor InitialTensor(WeightSpec spec)
    {
        using var scope = NewDisposeScope(); // holds every intermediate until the last operation returns (see HeldScalars)
        if (spec.Fill is { } v)
        {
            using var fill = v.ToScalar();
            return full(spec.Shape, fill).MoveToOuterDisposeScope();
        }
        long fanIn = spec.Shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        using var bound = (1.0 / Math.Sqrt(fanIn)).ToScalar();
        var centred = rand(spec.Shape) * HeldScalars.Two - HeldScalars.One;
        return (centred * bound).MoveToOuterDisposeScope();
    }

    public Tensor Tensor(string key) => _tensors[key];

    /// <summary>The keys of every weight and batch-norm statistic, as <see cref="ExportWeights"/> names them.</summary>
    public IEnumerable<string> TensorKeys => _tensors.Keys;

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
            _tensors[$"{bn.Name}.running_var"].fill_(HeldScalars.One);
        }
        bool wasTraining = training;
        train();
        int k = 0;
        foreach (var x in batches)
        {
            BatchNormMomentumOverride = 1.0 / (k + 1);
            using var scope = NewDisposeScope();
            forward(x);
            k++;
        }
        BatchNormMomentumOverride = null;
        if (!wasTraining) eval();
    }

    public void LoadWeights(WeightSet weights, string source) => CopyInto(_tensors, Graph, weights, source);

    public WeightSet ExportWeights() => ToWeightSet(_tensors);

    /// <summary>
    /// Fills tensors keyed like <paramref name="graph"/>'s weights (a module's own, or a copy of them such as
    /// <see cref="Training.WeightAverage"/>'s) from <paramref name="weights"/>, checked against the graph first.
    /// </summary>
    internal static void CopyInto(IReadOnlyDictionary<string, Tensor> tensors, NetworkGraph graph, WeightSet weights, string source)
    {
        WeightLayout.Check(graph, weights, source);
        using var _ = no_grad();
        foreach (var (key, t) in tensors)
        {
            // the source is held in a variable until copy_ returns: a temporary passed straight in can be
            // finalized by the GC while libtorch still reads it (TorchSharp does not keep it alive), which
            // crashed the test host now and then inside libtorch's copy_
            using var values = tensor(weights[key].Data, weights[key].Shape);
            t.copy_(values);
        }
    }

    /// <summary>The values of tensors keyed like a graph's weights, copied out (see <see cref="CopyInto"/>).</summary>
    internal static WeightSet ToWeightSet(IReadOnlyDictionary<string, Tensor> tensors)
    {
        var w = new WeightSet();
        foreach (var (key, t) in tensors)
        {
            using var detached = t.detach(); // named for the same reason as in CopyInto
            using var c = detached.contiguous();
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
            using var rawGrad = t.grad; // a fresh handle, named for the same reason as in LoadWeights
            using var grad = rawGrad is null ? zeros_like(t) : rawGrad.detach();
            using var g = grad.contiguous();
            w[key] = new TensorData(g.shape, g.data<float>().ToArray());
        }
        return w;
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary>Runs the graph; <paramref name="observe"/> sees every node's output (by node name) before it is released.</summary>
    public Tensor Forward(Tensor x, Action<string, Tensor>? observe)
    {
        var values = new Tensor?[_order.Count];
        var ops = new TorchOps(this);
        Tensor? result = null;
        for (int i = 0; i < _order.Count; i++)
        {
            var node = _order[i];
            var inputIndex = _inputIndex[i];
            Tensor y;
            if (node is InputNode) y = x;
            else
            {
                var inputs = inputIndex.Select(j => values[j]!).ToArray();
                y = node.Forward(ops, new OpContext<Tensor>(inputs, _shapes[i], _outShapes[i], _weightOf[i]));
                ops.ReleaseTemporaries(y);
            }
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

    /// <summary>The primitive operations in TorchSharp; intermediate tensors of one node are disposed after it ran.</summary>
    private sealed class TorchOps(GraphModule module) : ITensorOps<Tensor>
    {
        private readonly List<Tensor> _temporaries = new();

        private Tensor Keep(Tensor t) { _temporaries.Add(t); return t; }

        public void ReleaseTemporaries(Tensor result)
        {
            foreach (var t in _temporaries) if (!ReferenceEquals(t, result)) t.Dispose();
            _temporaries.Clear();
        }

        public Tensor Conv(Tensor x, Tensor w, Tensor? b, int[] stride, int[] padding, int[] dilation, int groups) =>
            TorchRuntime.Conv2d(x, w, b, L(stride), L(padding), L(dilation), groups, Keep);
        public Tensor ConvTranspose(Tensor x, Tensor w, Tensor? b, int[] stride, int[] padding, int[] outputPadding, int[] dilation,
            int groups) =>
            TorchRuntime.ConvTranspose2d(x, w, b, L(stride), L(padding), L(outputPadding), L(dilation), groups, Keep);
        public Tensor BatchNorm(Tensor x, Tensor mean, Tensor variance, Tensor gamma, Tensor beta, double eps, double momentum) =>
            Keep(F.batch_norm(x, mean, variance, gamma, beta, module.training, module.BatchNormMomentumOverride ?? momentum, eps));
        public Tensor InstanceNorm(Tensor x, Tensor? gamma, Tensor? beta, double eps) =>
            Keep(F.instance_norm(x, null, null, gamma, beta, true, 0.1, eps));
        public Tensor GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, double eps) =>
            Keep(F.group_norm(x, groups, gamma, beta, eps));
        public Tensor Unary(UnaryKind kind, Tensor x, double a, double b)
        {
            // held until the call returns (see HeldScalars); infinite clip bounds mean no bound
            using var first = double.IsInfinity(a) ? null : a.ToScalar();
            using var second = double.IsInfinity(b) ? null : b.ToScalar();
            return Keep(kind switch
            {
                UnaryKind.Relu => F.relu(x),
                UnaryKind.LeakyRelu => x.leaky_relu(first!),
                UnaryKind.Sigmoid => F.sigmoid(x),
                UnaryKind.Tanh => x.tanh(),
                UnaryKind.Silu => F.silu(x),
                UnaryKind.HardSwish => F.hardswish(x),
                UnaryKind.HardSigmoid => Keep(Keep(x * first!).add(second!, HeldScalars.One)).clamp(HeldScalars.Zero, HeldScalars.One),
                UnaryKind.Clip => x.clamp(first, second),
                UnaryKind.Softmax => x.softmax(1),
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            });
        }
        public Tensor PRelu(Tensor x, Tensor slope) => Keep(F.prelu(x, slope));
        public Tensor Binary(BinaryKind kind, Tensor a, Tensor b) => Keep(kind switch
        {
            BinaryKind.Add => a.add(b, HeldScalars.One), BinaryKind.Sub => a - b, BinaryKind.Mul => a * b, BinaryKind.Div => a / b,
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        });
        public Tensor Scalar(double value) => Keep(tensor((float)value));
        public Tensor PerChannel(Tensor vector) => Keep(vector.view(1, -1, 1, 1));
        public Tensor MaxPool(Tensor x, int[] kernel, int[] stride, int[] padding, bool ceil) =>
            Keep(F.max_pool2d(x, L(kernel), L(stride), L(padding), ceil_mode: ceil));
        public Tensor AvgPool(Tensor x, int[] kernel, int[] stride, int[] padding, bool ceil) =>
            Keep(F.avg_pool2d(x, L(kernel), L(stride), L(padding), ceil));
        public Tensor AdaptiveAvgPool(Tensor x, int[] outputSize, Shape input) => Keep(F.adaptive_avg_pool2d(x, L(outputSize)));
        public Tensor Resize(Tensor x, bool bilinear, bool alignCorners, double? scale, int[]? size, Tensor? reference)
        {
            var mode = bilinear ? InterpolationMode.Bilinear : InterpolationMode.Nearest;
            bool? align = bilinear ? alignCorners : null;
            if (reference is not null) return Keep(F.interpolate(x, new[] { reference.shape[2], reference.shape[3] }, null, mode, align));
            if (size is not null) return Keep(F.interpolate(x, L(size), null, mode, align));
            return Keep(F.interpolate(x, null, new[] { scale!.Value, scale!.Value }, mode, align));
        }
        public Tensor Pad(Tensor x, int[] pads) => Keep(F.pad(x, new long[] { pads[1], pads[3], pads[0], pads[2] }));
        public Tensor Concat(IReadOnlyList<Tensor> xs) => Keep(cat(xs.ToArray(), 1));
        public Tensor Dropout(Tensor x, double p) => Keep(F.dropout(x, p, module.training));
        public Tensor Identity(Tensor x) => Keep(x.alias());
    }

    private static long[] L(int[] v) => v.Select(i => (long)i).ToArray();
}

namespace Sculpt.Graph;

/// <summary>Fluent helper for architecture builders: each call appends a node and returns its name.</summary>
public sealed class GraphBuilder
{
    private readonly List<Node> _nodes = new();
    private readonly Dictionary<string, int> _channels = new();

    public int ChannelsOf(string name) => _channels[name];

    private string Add(Node n, int channels)
    {
        _nodes.Add(n);
        _channels[n.Name] = channels;
        return n.Name;
    }

    public string Input(string name, int channels, int height, int width) =>
        Add(new InputNode { Name = name, Channels = channels, Height = height, Width = width }, channels);

    public string Conv(string name, string input, int outChannels, int kernel, int stride = 1, int padding = 0,
        int dilation = 1, int groups = 1, bool bias = true) =>
        Add(new Conv2dNode
        {
            Name = name, Inputs = { input }, InChannels = _channels[input], OutChannels = outChannels,
            Kernel = new[] { kernel, kernel }, Stride = new[] { stride, stride }, Padding = new[] { padding, padding },
            Dilation = new[] { dilation, dilation }, Groups = groups, Bias = bias,
        }, outChannels);

    public string ConvTranspose(string name, string input, int outChannels, int kernel, int stride, int padding = 0, bool bias = true) =>
        Add(new ConvTranspose2dNode
        {
            Name = name, Inputs = { input }, InChannels = _channels[input], OutChannels = outChannels,
            Kernel = new[] { kernel, kernel }, Stride = new[] { stride, stride }, Padding = new[] { padding, padding }, Bias = bias,
        }, outChannels);

    public string BatchNorm(string name, string input) =>
        Add(new BatchNorm2dNode { Name = name, Inputs = { input }, Channels = _channels[input] }, _channels[input]);

    public string Relu(string name, string input) => Add(new ReluNode { Name = name, Inputs = { input } }, _channels[input]);
    public string Sigmoid(string name, string input) => Add(new SigmoidNode { Name = name, Inputs = { input } }, _channels[input]);
    public string Dropout(string name, string input, double p) => Add(new DropoutNode { Name = name, Inputs = { input }, P = p }, _channels[input]);

    public string MaxPool(string name, string input, int kernel, int stride, int padding = 0, bool ceil = false) =>
        Add(new MaxPool2dNode
        {
            Name = name, Inputs = { input }, Kernel = new[] { kernel, kernel }, Stride = new[] { stride, stride },
            Padding = new[] { padding, padding }, CeilMode = ceil,
        }, _channels[input]);

    public string AdaptiveAvgPool(string name, string input, int size) =>
        Add(new AdaptiveAvgPool2dNode { Name = name, Inputs = { input }, OutputSize = new[] { size, size } }, _channels[input]);

    public string UpsampleScale(string name, string input, double scale, string mode, bool alignCorners = false) =>
        Add(new UpsampleNode { Name = name, Inputs = { input }, Scale = scale, Mode = mode, AlignCorners = alignCorners }, _channels[input]);

    public string UpsampleLike(string name, string input, string reference, string mode, bool alignCorners = false) =>
        Add(new UpsampleNode { Name = name, Inputs = { input, reference }, Mode = mode, AlignCorners = alignCorners }, _channels[input]);

    public string Concat(string name, params string[] inputs) =>
        Add(new ConcatNode { Name = name, Inputs = inputs.ToList() }, inputs.Sum(i => _channels[i]));

    public string AddNodes(string name, params string[] inputs) =>
        Add(new AddNode { Name = name, Inputs = inputs.ToList() }, _channels[inputs[0]]);

    public string Output(string name, string input) => Add(new OutputNode { Name = name, Inputs = { input } }, _channels[input]);

    /// <summary>The nodes so far, unvalidated, for callers that append nodes by hand.</summary>
    public NetworkGraph BuildPartial() => new(_nodes.ToList());

    public NetworkGraph Build()
    {
        var g = new NetworkGraph(_nodes);
        g.Validate();
        return g;
    }
}

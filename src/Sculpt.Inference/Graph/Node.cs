using System.Text.Json.Serialization;

namespace Sculpt.Graph;

/// <summary>Channels × height × width of one image in a batch; the batch axis is implicit.</summary>
public readonly record struct Shape(int C, int H, int W)
{
    public override string ToString() => $"{C}×{H}×{W}";
}

/// <summary>
/// One tensor a node owns, in PyTorch state_dict naming (key = "&lt;node&gt;.&lt;Name&gt;"), with the axes that hold
/// the channels of the node's input and output. Slicing, importance, initialisation and weight checks all read this
/// one description; an axis of −1 holds no channels. A channel-wise parameter of a node that passes its channels
/// through (a norm's γ, a PReLU slope, a depthwise filter) has the same axis as input and output.
/// </summary>
public sealed record WeightSpec(string Name, long[] Shape, int InAxis = -1, int OutAxis = -1)
{
    /// <summary>Running statistics and other state that is not trained.</summary>
    public bool IsBuffer { get; init; }
    /// <summary>
    /// A shift (a norm's β) rather than a magnitude of the channel's filter: magnitude criteria ignore it.
    /// </summary>
    public bool IsShift { get; init; }
    /// <summary>The initial value of every element; null: PyTorch's default U(±1/√fan_in) with fan_in = Π shape[1..].</summary>
    public double? Fill { get; init; }
    public long Count => Shape.Aggregate(1L, (a, b) => checked(a * b));
}

/// <summary>
/// One typed operation of the network graph, and everything about it in one place: attributes and JSON, shape
/// inference, parameter and MAC counts, its weights and their channel axes (<see cref="Weights"/>), its channel
/// dependency rule (<see cref="ChannelRule"/>), how slicing changes it (<see cref="SetChannels"/>), and how it computes
/// (<see cref="Forward{T}"/>, written once against <see cref="ITensorOps{T}"/>: TorchSharp executes it, the ONNX
/// writer records it). Channel counts are explicit so that a pruned graph is fully described by its JSON.
/// MACs count multiply-accumulates of convolutions only; element-wise work is not counted (as thop/fvcore).
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "op")]
[JsonDerivedType(typeof(InputNode), "input")]
[JsonDerivedType(typeof(Conv2dNode), "conv2d")]
[JsonDerivedType(typeof(ConvTranspose2dNode), "conv_transpose2d")]
[JsonDerivedType(typeof(BatchNorm2dNode), "batch_norm2d")]
[JsonDerivedType(typeof(InstanceNorm2dNode), "instance_norm2d")]
[JsonDerivedType(typeof(GroupNormNode), "group_norm")]
[JsonDerivedType(typeof(ReluNode), "relu")]
[JsonDerivedType(typeof(LeakyReluNode), "leaky_relu")]
[JsonDerivedType(typeof(PReluNode), "prelu")]
[JsonDerivedType(typeof(SiluNode), "silu")]
[JsonDerivedType(typeof(SigmoidNode), "sigmoid")]
[JsonDerivedType(typeof(TanhNode), "tanh")]
[JsonDerivedType(typeof(HardSwishNode), "hardswish")]
[JsonDerivedType(typeof(HardSigmoidNode), "hardsigmoid")]
[JsonDerivedType(typeof(ClipNode), "clip")]
[JsonDerivedType(typeof(SoftmaxNode), "softmax")]
[JsonDerivedType(typeof(MaxPool2dNode), "max_pool2d")]
[JsonDerivedType(typeof(AvgPool2dNode), "avg_pool2d")]
[JsonDerivedType(typeof(AdaptiveAvgPool2dNode), "adaptive_avg_pool2d")]
[JsonDerivedType(typeof(UpsampleNode), "upsample")]
[JsonDerivedType(typeof(PadNode), "pad")]
[JsonDerivedType(typeof(AddNode), "add")]
[JsonDerivedType(typeof(ElementwiseNode), "elementwise")]
[JsonDerivedType(typeof(ConcatNode), "concat")]
[JsonDerivedType(typeof(DropoutNode), "dropout")]
[JsonDerivedType(typeof(IdentityNode), "identity")]
[JsonDerivedType(typeof(OutputNode), "output")]
public abstract class Node
{
    public string Name { get; set; } = "";
    public List<string> Inputs { get; set; } = new();

    [JsonIgnore] public abstract string Op { get; }
    /// <summary>Allowed number of inputs (min, max).</summary>
    [JsonIgnore] public virtual (int Min, int Max) Arity => (1, 1);

    /// <summary>Output shape, or throws <see cref="GraphException"/> naming this node.</summary>
    public abstract Shape InferShape(IReadOnlyList<Shape> inputs);
    public long ParameterCount() => checked(Weights().Where(w => !w.IsBuffer).Sum(w => w.Count));
    public virtual long MacCount(IReadOnlyList<Shape> inputs, Shape output) => 0;
    /// <summary>Checks of attributes that need no shapes.</summary>
    public virtual void ValidateAttributes() { }

    /// <summary>The tensors this node owns (names relative to the node) with their channel axes.</summary>
    public virtual IEnumerable<WeightSpec> Weights() => [];

    /// <summary>
    /// The channel dependency rule: the channel layout of the output from the layouts of the inputs, recording in
    /// <paramref name="deps"/> which spaces this node starts, merges, ties or fixes. The default passes the first
    /// input's channels through untouched (activations, pooling, resizing, dropout).
    /// </summary>
    public virtual List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs) => inputs[0];

    /// <summary>After slicing: the node reads <paramref name="input"/> channels (first input), writes <paramref name="output"/>.</summary>
    public virtual void SetChannels(int input, int output) { }

    /// <summary>The node's computation, written once for every backend.</summary>
    public abstract T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) where T : class;

    public Node CloneNode()
    {
        var copy = (Node)MemberwiseClone();
        copy.Inputs = new List<string>(Inputs);
        copy.CloneArrays();
        return copy;
    }
    protected virtual void CloneArrays() { }

    protected GraphException Error(string message) => new($"node '{Name}' ({Op}): {message}");

    protected void RequireChannels(Shape input, int expected, string what = "input channels")
    {
        if (input.C != expected) throw Error($"{what} mismatch: expects {expected}, receives {input.C}");
    }

    protected void RequirePositivePair(int[] pair, string what, int min = 1)
    {
        if (pair is null || pair.Length != 2) throw Error($"{what} must have 2 values");
        if (pair[0] < min || pair[1] < min) throw Error($"{what} must be ≥ {min}, got [{pair[0]}, {pair[1]}]");
    }

    /// <summary>Output length of a sliding window (convolution, pooling) along one axis; 0 when the window does not fit.</summary>
    protected internal static int SlidingOut(int size, int kernel, int stride, int pad, int dilation, bool ceil = false)
    {
        int span = dilation * (kernel - 1) + 1;
        int numer = size + 2 * pad - span;
        if (numer < 0) return 0;
        int o = (ceil ? (numer + stride - 1) / stride : numer / stride) + 1;
        // PyTorch: with ceil_mode the last window must start inside the (left-padded) input
        if (ceil && (o - 1) * stride >= size + pad) o--;
        return o;
    }

    /// <summary>Output length of a transposed convolution along one axis (PyTorch's and ONNX's formula).</summary>
    protected internal static int TransposedOut(int size, int kernel, int stride, int pad, int dilation, int outputPad) =>
        (size - 1) * stride - 2 * pad + dilation * (kernel - 1) + outputPad + 1;
}

/// <summary>What a node's <see cref="Node.Forward{T}"/> sees: its inputs (and their shapes) and its own weights by name.</summary>
public readonly record struct OpContext<T>(IReadOnlyList<T> Inputs, IReadOnlyList<Shape> InputShapes, Shape Output, Func<string, T> Weight)
{
    public T this[int i] => Inputs[i];
}

/// <summary>How a node touches a channel space: the roles a dependency rule records.</summary>
public enum Role
{
    /// <summary>Its output channels are the space's channels (a convolution's filters and bias).</summary>
    Producer,
    /// <summary>It reads the space at <see cref="Member.Offset"/> of its input channels (a convolution's input slices).</summary>
    Consumer,
    /// <summary>A normalisation whose channel-wise affine parameters follow the space.</summary>
    Norm,
    /// <summary>Other channel-wise parameters tied one-to-one to the space (depthwise filters, PReLU slopes, channel constants).</summary>
    Tied,
}

/// <summary>The calls a dependency rule makes (implemented by <see cref="ChannelGroups"/>).</summary>
public interface IDependencyBuilder
{
    /// <summary>A new channel space of <paramref name="width"/> channels produced by the current node.</summary>
    List<Segment> NewSpace(int width);
    /// <summary>The current node touches these channels in <paramref name="role"/>.</summary>
    void Member(Role role, IEnumerable<Segment> channels);
    /// <summary>These channels must be removed together, position by position (element-wise merge).</summary>
    void Merge(IReadOnlyList<Segment> a, IReadOnlyList<Segment> b);
    /// <summary>These channels cannot be pruned.</summary>
    void Fix(IEnumerable<Segment> channels, string why);
    /// <summary>These channels can only be removed in whole blocks of <paramref name="block"/> (GroupNorm's groups).</summary>
    void Blocks(IEnumerable<Segment> channels, int block);
    /// <summary>Whether two layouts line up segment for segment (same lengths in the same order).</summary>
    bool Aligned(IReadOnlyList<Segment> a, IReadOnlyList<Segment> b);
}

public enum UnaryKind { Relu, LeakyRelu, Sigmoid, Tanh, Silu, HardSwish, HardSigmoid, Clip, Softmax }
public enum BinaryKind { Add, Sub, Mul, Div }

/// <summary>
/// The primitive tensor operations nodes are written in, on N×C×H×W tensors. <typeparamref name="T"/> is a
/// TorchSharp tensor when executing and a tensor name when writing ONNX. Parameters reach a node as
/// <see cref="OpContext{T}.Weight"/>; a channel-wise vector is broadcast with <see cref="PerChannel"/>.
/// </summary>
public interface ITensorOps<T> where T : class
{
    T Conv(T x, T weight, T? bias, int[] stride, int[] padding, int[] dilation, int groups);
    T ConvTranspose(T x, T weight, T? bias, int[] stride, int[] padding, int[] outputPadding, int[] dilation, int groups);
    T BatchNorm(T x, T mean, T variance, T gamma, T beta, double eps, double momentum);
    T InstanceNorm(T x, T? gamma, T? beta, double eps);
    T GroupNorm(T x, int groups, T? gamma, T? beta, double eps);
    /// <summary>
    /// Relu, Sigmoid, Tanh, Silu, HardSwish; LeakyRelu (a = slope); HardSigmoid (clamp(a·x + b, 0, 1)); Clip (a, b);
    /// Softmax over channels.
    /// </summary>
    T Unary(UnaryKind kind, T x, double a = 0, double b = 0);
    T PRelu(T x, T slope);
    T Binary(BinaryKind kind, T a, T b);
    T Scalar(double value);
    /// <summary>A [C] vector as [1, C, 1, 1], so it broadcasts over a batch of images.</summary>
    T PerChannel(T vector);
    T MaxPool(T x, int[] kernel, int[] stride, int[] padding, bool ceil);
    T AvgPool(T x, int[] kernel, int[] stride, int[] padding, bool ceil);
    T AdaptiveAvgPool(T x, int[] outputSize, Shape input);
    T Resize(T x, bool bilinear, bool alignCorners, double? scale, int[]? size, T? reference);
    /// <summary>Zero padding: top, left, bottom, right (negative crops).</summary>
    T Pad(T x, int[] pads);
    T Concat(IReadOnlyList<T> xs);
    T Dropout(T x, double p);
    T Identity(T x);
}

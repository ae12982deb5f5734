using System.Text.Json.Serialization;

namespace Sculpt.Graph;

/// <summary>Element-wise activations: they pass their input's channels through (the default rule).</summary>
public abstract class ActivationNode : ShapePreservingNode
{
    [JsonIgnore] protected abstract UnaryKind Kind { get; }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Unary(Kind, ctx[0]);
}

public sealed class ReluNode : ActivationNode
{
    [JsonIgnore] public override string Op => "relu";
    [JsonIgnore] protected override UnaryKind Kind => UnaryKind.Relu;
}

public sealed class SigmoidNode : ActivationNode
{
    [JsonIgnore] public override string Op => "sigmoid";
    [JsonIgnore] protected override UnaryKind Kind => UnaryKind.Sigmoid;
}

public sealed class TanhNode : ActivationNode
{
    [JsonIgnore] public override string Op => "tanh";
    [JsonIgnore] protected override UnaryKind Kind => UnaryKind.Tanh;
}

public sealed class SiluNode : ActivationNode
{
    [JsonIgnore] public override string Op => "silu";
    [JsonIgnore] protected override UnaryKind Kind => UnaryKind.Silu;
}

/// <summary>x · relu6(x + 3) / 6 (MobileNetV3).</summary>
public sealed class HardSwishNode : ActivationNode
{
    [JsonIgnore] public override string Op => "hardswish";
    [JsonIgnore] protected override UnaryKind Kind => UnaryKind.HardSwish;
}

public sealed class LeakyReluNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "leaky_relu";
    public double NegativeSlope { get; set; } = 0.01;
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Unary(UnaryKind.LeakyRelu, ctx[0], NegativeSlope);
}

/// <summary>clamp(α·x + β, 0, 1); ONNX's defaults α = 0.2, β = 0.5 (PyTorch's hardsigmoid is α = 1/6).</summary>
public sealed class HardSigmoidNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "hardsigmoid";
    public double Alpha { get; set; } = 0.2;
    public double Beta { get; set; } = 0.5;
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Unary(UnaryKind.HardSigmoid, ctx[0], Alpha, Beta);
}

/// <summary>clamp(x, min, max); ReLU6 is min 0, max 6.</summary>
public sealed class ClipNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "clip";
    public double Min { get; set; } = double.NegativeInfinity;
    public double Max { get; set; } = double.PositiveInfinity;
    public override void ValidateAttributes()
    {
        if (double.IsNaN(Min) || double.IsNaN(Max) || Min > Max) throw Error($"min {Min} must not exceed max {Max}");
    }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Unary(UnaryKind.Clip, ctx[0], Min, Max);
}

/// <summary>
/// PReLU: a learned negative slope, one per channel (sliced with its channels, axis 0) or one shared by all
/// (<see cref="Channels"/> = 1, MONAI's default).
/// </summary>
public sealed class PReluNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "prelu";
    public int Channels { get; set; } = 1;
    /// <summary>Channels was 1 when the slope is shared, also after pruning leaves one channel.</summary>
    public bool Shared { get; set; } = true;
    public override void ValidateAttributes()
    {
        if (Channels < 1) throw Error($"channels must be ≥ 1, got {Channels}");
        if (Shared && Channels != 1) throw Error($"a shared slope has 1 channel, got {Channels}");
    }
    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        if (!Shared) RequireChannels(inputs[0], Channels);
        return inputs[0];
    }
    public override IEnumerable<WeightSpec> Weights() => [new("weight", [Channels], Shared ? -1 : 0, Shared ? -1 : 0) { Fill = 0.25 }];
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        if (!Shared) deps.Member(Role.Tied, inputs[0]);
        return inputs[0];
    }
    public override void SetChannels(int input, int output) { if (!Shared) Channels = input; }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.PRelu(ctx[0], ctx.Weight("weight"));
}

/// <summary>Softmax over channels: every output channel depends on every input channel, so its channels are fixed.</summary>
public sealed class SoftmaxNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "softmax";
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        // named like an output so that the layers feeding it are still found as the output layers (HeadInput)
        deps.Fix(inputs[0], $"output channels mixed by softmax '{Name}'");
        return inputs[0];
    }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Unary(UnaryKind.Softmax, ctx[0]);
}

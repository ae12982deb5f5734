using System.Text.Json.Serialization;

namespace Sculpt.Graph;

/// <summary>The graph's input image batch; its channels are fixed (they are the data's).</summary>
public sealed class InputNode : Node
{
    [JsonIgnore] public override string Op => "input";
    [JsonIgnore] public override (int Min, int Max) Arity => (0, 0);
    public int Channels { get; set; }
    public int Height { get; set; }
    public int Width { get; set; }
    public override Shape InferShape(IReadOnlyList<Shape> inputs) => new(Channels, Height, Width);
    public override void ValidateAttributes()
    {
        if (Channels < 1 || Height < 1 || Width < 1) throw Error($"shape must be positive, got {Channels}×{Height}×{Width}");
    }
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        var space = deps.NewSpace(Channels);
        deps.Fix(space, $"input '{Name}'");
        return space;
    }
    /// <summary>Never called: the runtime feeds the input itself.</summary>
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) =>
        throw new InvalidOperationException("the input node has no computation");
}

/// <summary>A graph output; its channels are fixed (they are the task's classes).</summary>
public sealed class OutputNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "output";
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        deps.Fix(inputs[0], $"output '{Name}'");
        return inputs[0];
    }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Identity(ctx[0]);
}

/// <summary>Nodes that keep the shape of their single input.</summary>
public abstract class ShapePreservingNode : Node
{
    public override Shape InferShape(IReadOnlyList<Shape> inputs) => inputs[0];
}

public sealed class IdentityNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "identity";
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Identity(ctx[0]);
}

public sealed class DropoutNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "dropout";
    public double P { get; set; } = 0.5;
    public override void ValidateAttributes()
    {
        if (P < 0 || P >= 1) throw Error($"p must be in [0, 1), got {P}");
    }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Dropout(ctx[0], P);
}

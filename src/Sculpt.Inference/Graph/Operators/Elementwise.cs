using System.Text.Json.Serialization;

namespace Sculpt.Graph;

/// <summary>
/// Element-wise sum of equally shaped inputs (residual connections). Dependency rule: the inputs' channel spaces
/// merge position by position; inputs laid out differently (e.g. a concatenation added to a single space) are fixed.
/// </summary>
public sealed class AddNode : Node
{
    [JsonIgnore] public override string Op => "add";
    [JsonIgnore] public override (int Min, int Max) Arity => (2, int.MaxValue);
    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        for (int i = 1; i < inputs.Count; i++)
            if (inputs[i] != inputs[0]) throw Error($"input shapes differ: {inputs[0]} vs {inputs[i]} (from '{Inputs[i]}')");
        return inputs[0];
    }
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        ElementwiseNode.MergeAll(deps, inputs, Name);
        return inputs[0];
    }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx)
    {
        var acc = ops.Binary(BinaryKind.Add, ctx[0], ctx[1]);
        for (int k = 2; k < ctx.Inputs.Count; k++) acc = ops.Binary(BinaryKind.Add, acc, ctx[k]);
        return acc;
    }
}

/// <summary>
/// Add, Sub, Mul or Div with broadcasting: of two tensors (attention gates, squeeze-excitation, LR-ASPP's scale),
/// or of one tensor and a constant — a scalar, or one value per channel (a learned per-channel scale or shift,
/// weight "constant", axis 0). Dependency rule: inputs with the output's channel count merge their spaces
/// (a squeeze-excitation gate [C, 1, 1] couples its producer's channels to the tensor it scales); a one-channel
/// input broadcast over many channels (a spatial gate) merges nothing; a per-channel constant is tied to its channels.
/// </summary>
public sealed class ElementwiseNode : Node
{
    [JsonIgnore] public override string Op => "elementwise";
    [JsonIgnore] public override (int Min, int Max) Arity => (1, 2);
    /// <summary>add, sub, mul or div.</summary>
    public string Kind { get; set; } = "add";
    /// <summary>With one input: the constant operand is this scalar …</summary>
    public double? Scalar { get; set; }
    /// <summary>… or one learned value per channel of this many channels.</summary>
    public int? ConstantChannels { get; set; }
    /// <summary>The constant is the left operand (c − x, c / x).</summary>
    public bool ConstantFirst { get; set; }

    [JsonIgnore] public BinaryKind Binary => Kind switch
    {
        "add" => BinaryKind.Add, "sub" => BinaryKind.Sub, "mul" => BinaryKind.Mul, "div" => BinaryKind.Div,
        _ => throw Error($"kind must be add, sub, mul or div, got '{Kind}'"),
    };

    public override void ValidateAttributes()
    {
        _ = Binary;
        int constants = (Scalar.HasValue ? 1 : 0) + (ConstantChannels.HasValue ? 1 : 0);
        if (Inputs.Count == 2 && constants != 0) throw Error("two inputs take no constant");
        if (Inputs.Count == 1 && constants != 1) throw Error("one input needs exactly one of scalar or constant_channels");
        if (ConstantChannels is < 1) throw Error($"constant_channels must be ≥ 1, got {ConstantChannels}");
        if (Scalar is { } s && !double.IsFinite(s)) throw Error($"scalar must be finite, got {s}");
    }

    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        if (inputs.Count == 1)
        {
            if (ConstantChannels is { } c) RequireChannels(inputs[0], c, "constant channels");
            return inputs[0];
        }
        int Broadcast(int a, int b, string axis) =>
            a == b || b == 1 ? a : a == 1 ? b : throw Error($"{axis} do not broadcast: {inputs[0]} vs {inputs[1]} (from '{Inputs[1]}')");
        return new(Broadcast(inputs[0].C, inputs[1].C, "channels"), Broadcast(inputs[0].H, inputs[1].H, "heights"),
            Broadcast(inputs[0].W, inputs[1].W, "widths"));
    }

    public override IEnumerable<WeightSpec> Weights() => ConstantChannels is { } c
        ? [new("constant", [c], 0, 0) { Fill = Binary is BinaryKind.Mul or BinaryKind.Div ? 1 : 0 }]
        : [];

    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        if (inputs.Count == 1)
        {
            if (ConstantChannels.HasValue) deps.Member(Role.Tied, inputs[0]);
            return inputs[0];
        }
        int width(List<Segment> l) => l.Sum(s => s.Length);
        int c = Math.Max(width(inputs[0]), width(inputs[1]));
        // an input broadcast over the channels (one channel for many) is a gate on every channel alike
        var full = inputs.Where(l => width(l) == c).ToList();
        MergeAll(deps, full, Name);
        return full[0];
    }

    /// <summary>The merge rule shared with <see cref="AddNode"/>: aligned layouts merge, others are fixed.</summary>
    internal static void MergeAll(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs, string name)
    {
        if (inputs.All(l => deps.Aligned(l, inputs[0])))
            foreach (var l in inputs.Skip(1)) deps.Merge(inputs[0], l);
        else
            foreach (var l in inputs) deps.Fix(l, $"unaligned element-wise '{name}'");
    }

    public override void SetChannels(int input, int output) { if (ConstantChannels.HasValue) ConstantChannels = input; }

    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx)
    {
        if (ctx.Inputs.Count == 2) return ops.Binary(Binary, ctx[0], ctx[1]);
        var constant = Scalar is { } s ? ops.Scalar(s) : ops.PerChannel(ctx.Weight("constant"));
        return ConstantFirst ? ops.Binary(Binary, constant, ctx[0]) : ops.Binary(Binary, ctx[0], constant);
    }
}

/// <summary>Concatenation along channels: each input's spaces are laid side by side at their offsets.</summary>
public sealed class ConcatNode : Node
{
    [JsonIgnore] public override string Op => "concat";
    [JsonIgnore] public override (int Min, int Max) Arity => (1, int.MaxValue);
    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        int c = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            if (inputs[i].H != inputs[0].H || inputs[i].W != inputs[0].W)
                throw Error($"spatial sizes differ: {inputs[0]} vs {inputs[i]} (from '{Inputs[i]}')");
            c += inputs[i].C;
        }
        return new(c, inputs[0].H, inputs[0].W);
    }
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        var layout = new List<Segment>();
        int offset = 0;
        foreach (var l in inputs) foreach (var s in l) { layout.Add(s with { Offset = offset }); offset += s.Length; }
        return layout;
    }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Concat(ctx.Inputs);
}

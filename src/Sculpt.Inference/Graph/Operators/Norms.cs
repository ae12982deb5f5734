using System.Text.Json.Serialization;

namespace Sculpt.Graph;

/// <summary>Batch norm: γ, β and running statistics on axis 0 follow the channels passing through.</summary>
public sealed class BatchNorm2dNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "batch_norm2d";
    public int Channels { get; set; }
    public double Eps { get; set; } = 1e-5;
    public double Momentum { get; set; } = 0.1;
    public override void ValidateAttributes()
    {
        if (Channels < 1) throw Error($"channels must be ≥ 1, got {Channels}");
        if (!(Eps > 0)) throw Error($"eps must be > 0, got {Eps}");
    }
    public override Shape InferShape(IReadOnlyList<Shape> inputs) { RequireChannels(inputs[0], Channels); return inputs[0]; }
    public override IEnumerable<WeightSpec> Weights() =>
    [
        new("weight", [Channels], 0, 0) { Fill = 1 },
        new("bias", [Channels], 0, 0) { Fill = 0, IsShift = true },
        new("running_mean", [Channels], 0, 0) { Fill = 0, IsBuffer = true },
        new("running_var", [Channels], 0, 0) { Fill = 1, IsBuffer = true },
    ];
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        deps.Member(Role.Norm, inputs[0]);
        return inputs[0];
    }
    public override void SetChannels(int input, int output) => Channels = input;
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) =>
        ops.BatchNorm(ctx[0], ctx.Weight("running_mean"), ctx.Weight("running_var"), ctx.Weight("weight"), ctx.Weight("bias"), Eps,
            Momentum);
}

/// <summary>A normalisation over each image's own pixels with an optional per-channel affine γ, β (axis 0).</summary>
public abstract class ImageNormNode : ShapePreservingNode
{
    public int Channels { get; set; }
    public double Eps { get; set; } = 1e-5;
    public bool Affine { get; set; } = true;
    public override void ValidateAttributes()
    {
        if (Channels < 1) throw Error($"channels must be ≥ 1, got {Channels}");
        if (!(Eps > 0)) throw Error($"eps must be > 0, got {Eps}");
    }
    public override Shape InferShape(IReadOnlyList<Shape> inputs) { RequireChannels(inputs[0], Channels); return inputs[0]; }
    public override IEnumerable<WeightSpec> Weights() => !Affine ? [] :
    [
        new("weight", [Channels], 0, 0) { Fill = 1 },
        new("bias", [Channels], 0, 0) { Fill = 0, IsShift = true },
    ];
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        if (Affine) deps.Member(Role.Norm, inputs[0]);
        return inputs[0];
    }
    protected T? Gamma<T>(OpContext<T> ctx) where T : class => Affine ? ctx.Weight("weight") : null;
    protected T? Beta<T>(OpContext<T> ctx) where T : class => Affine ? ctx.Weight("bias") : null;
}

/// <summary>
/// Instance norm (nnU-Net, MONAI): each channel of each image normalised over its own pixels, so channels are
/// independent and prune like batch norm.
/// </summary>
public sealed class InstanceNorm2dNode : ImageNormNode
{
    [JsonIgnore] public override string Op => "instance_norm2d";
    public override void SetChannels(int input, int output) => Channels = input;
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.InstanceNorm(ctx[0], Gamma(ctx), Beta(ctx), Eps);
}

/// <summary>
/// Group norm: statistics over groups of <see cref="ImageNormNode.Channels"/>/<see cref="Groups"/> consecutive
/// channels. Removing one channel would change its group-mates' statistics, so the rule prunes whole groups: the
/// channel space is removed in blocks of the group size and <see cref="Groups"/> shrinks with it.
/// </summary>
public sealed class GroupNormNode : ImageNormNode
{
    [JsonIgnore] public override string Op => "group_norm";
    public int Groups { get; set; } = 1;
    [JsonIgnore] public int GroupSize => Channels / Groups;
    public override void ValidateAttributes()
    {
        base.ValidateAttributes();
        if (Groups < 1 || Channels % Groups != 0) throw Error($"groups={Groups} must divide channels={Channels}");
    }
    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        deps.Blocks(inputs[0], GroupSize);
        return base.ChannelRule(deps, inputs);
    }
    public override void SetChannels(int input, int output)
    {
        int size = GroupSize;
        Channels = input;
        Groups = input / size;
    }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.GroupNorm(ctx[0], Groups, Gamma(ctx), Beta(ctx), Eps);
}

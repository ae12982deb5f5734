using System.Text.Json.Serialization;

namespace Sculpt.Graph;

/// <summary>
/// 2-D convolution, weight [out, in/groups, kh, kw]. Dependency rule: with groups = 1 it consumes its input's
/// channels (weight axis 1) and starts a new space of output channels (weight axis 0, bias); a depthwise
/// convolution (groups = in = out) ties input to output channel by channel (weight and bias axis 0); any other
/// grouping fixes both sides (a pruned group would have to stay balanced across groups).
/// </summary>
public class Conv2dNode : Node
{
    [JsonIgnore] public override string Op => "conv2d";
    public int InChannels { get; set; }
    public int OutChannels { get; set; }
    public int[] Kernel { get; set; } = { 3, 3 };
    public int[] Stride { get; set; } = { 1, 1 };
    public int[] Padding { get; set; } = { 0, 0 };
    public int[] Dilation { get; set; } = { 1, 1 };
    public int Groups { get; set; } = 1;
    public bool Bias { get; set; } = true;

    [JsonIgnore]
    public bool IsDepthwise => this is not ConvTranspose2dNode && Groups > 1 && Groups == InChannels && OutChannels == InChannels;

    protected override void CloneArrays()
    {
        Kernel = (int[])Kernel.Clone(); Stride = (int[])Stride.Clone();
        Padding = (int[])Padding.Clone(); Dilation = (int[])Dilation.Clone();
    }

    public override void ValidateAttributes()
    {
        if (InChannels < 1 || OutChannels < 1) throw Error($"channels must be ≥ 1, got in={InChannels} out={OutChannels}");
        RequirePositivePair(Kernel, "kernel");
        RequirePositivePair(Stride, "stride");
        RequirePositivePair(Padding, "padding", 0);
        RequirePositivePair(Dilation, "dilation");
        if (Groups < 1 || InChannels % Groups != 0 || OutChannels % Groups != 0)
            throw Error($"groups={Groups} must divide in_channels={InChannels} and out_channels={OutChannels}");
    }

    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        RequireChannels(inputs[0], InChannels);
        int h = SlidingOut(inputs[0].H, Kernel[0], Stride[0], Padding[0], Dilation[0]);
        int w = SlidingOut(inputs[0].W, Kernel[1], Stride[1], Padding[1], Dilation[1]);
        if (h < 1 || w < 1) throw Error($"kernel larger than padded input {inputs[0]}");
        return new(OutChannels, h, w);
    }

    public override long MacCount(IReadOnlyList<Shape> inputs, Shape output) =>
        (long)output.C * output.H * output.W * (InChannels / Groups) * Kernel[0] * Kernel[1];

    public override IEnumerable<WeightSpec> Weights()
    {
        if (IsDepthwise)
        {
            yield return new("weight", new long[] { OutChannels, 1, Kernel[0], Kernel[1] }, 0, 0);
            if (Bias) yield return new("bias", new long[] { OutChannels }, 0, 0) { Fill = 0 };
            yield break;
        }
        yield return new("weight", new long[] { OutChannels, InChannels / Groups, Kernel[0], Kernel[1] }, Groups == 1 ? 1 : -1, 0);
        if (Bias) yield return new("bias", new long[] { OutChannels }, -1, 0) { Fill = 0 };
    }

    public override List<Segment> ChannelRule(IDependencyBuilder deps, IReadOnlyList<List<Segment>> inputs)
    {
        if (IsDepthwise)
        {
            deps.Member(Role.Tied, inputs[0]);
            return inputs[0];
        }
        deps.Member(Role.Consumer, inputs[0]);
        var output = deps.NewSpace(OutChannels);
        deps.Member(Role.Producer, output);
        if (Groups > 1)
        {
            deps.Fix(inputs[0], $"grouped convolution '{Name}'");
            deps.Fix(output, $"grouped convolution '{Name}'");
        }
        return output;
    }

    public override void SetChannels(int input, int output)
    {
        if (IsDepthwise) { InChannels = OutChannels = Groups = input; return; }
        if (Groups > 1) return; // fixed on both sides
        InChannels = input; OutChannels = output;
    }

    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) =>
        ops.Conv(ctx[0], ctx.Weight("weight"), Bias ? ctx.Weight("bias") : null, Stride, Padding, Dilation, Groups);
}

/// <summary>Transposed convolution, weight [in, out/groups, kh, kw] as in PyTorch: input channels on axis 0, output on 1.</summary>
public sealed class ConvTranspose2dNode : Conv2dNode
{
    [JsonIgnore] public override string Op => "conv_transpose2d";
    public int[] OutputPadding { get; set; } = { 0, 0 };

    protected override void CloneArrays() { base.CloneArrays(); OutputPadding = (int[])OutputPadding.Clone(); }

    public override void ValidateAttributes()
    {
        base.ValidateAttributes();
        RequirePositivePair(OutputPadding, "output_padding", 0);
        if (OutputPadding[0] >= Math.Max(Stride[0], Dilation[0]) || OutputPadding[1] >= Math.Max(Stride[1], Dilation[1]))
            throw Error("output_padding must be smaller than stride or dilation");
    }

    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        RequireChannels(inputs[0], InChannels);
        int h = TransposedOut(inputs[0].H, Kernel[0], Stride[0], Padding[0], Dilation[0], OutputPadding[0]);
        int w = TransposedOut(inputs[0].W, Kernel[1], Stride[1], Padding[1], Dilation[1], OutputPadding[1]);
        if (h < 1 || w < 1) throw Error($"output would be empty for input {inputs[0]}");
        return new(OutChannels, h, w);
    }

    public override long MacCount(IReadOnlyList<Shape> inputs, Shape output) =>
        (long)inputs[0].C * inputs[0].H * inputs[0].W * (OutChannels / Groups) * Kernel[0] * Kernel[1];

    public override IEnumerable<WeightSpec> Weights()
    {
        yield return new("weight", new long[] { InChannels, OutChannels / Groups, Kernel[0], Kernel[1] }, 0, Groups == 1 ? 1 : -1);
        if (Bias) yield return new("bias", new long[] { OutChannels }, -1, Groups == 1 ? 0 : -1) { Fill = 0 };
    }

    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) =>
        ops.ConvTranspose(ctx[0], ctx.Weight("weight"), Bias ? ctx.Weight("bias") : null, Stride, Padding, OutputPadding, Dilation, Groups);
}

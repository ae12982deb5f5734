using System.Text.Json.Serialization;

namespace Sculpt.Graph;

public abstract class Pool2dNode : Node
{
    public int[] Kernel { get; set; } = { 2, 2 };
    public int[] Stride { get; set; } = { 2, 2 };
    public int[] Padding { get; set; } = { 0, 0 };
    public bool CeilMode { get; set; }
    protected override void CloneArrays()
    {
        Kernel = (int[])Kernel.Clone(); Stride = (int[])Stride.Clone(); Padding = (int[])Padding.Clone();
    }
    public override void ValidateAttributes()
    {
        RequirePositivePair(Kernel, "kernel");
        RequirePositivePair(Stride, "stride");
        RequirePositivePair(Padding, "padding", 0);
        if (Padding[0] * 2 > Kernel[0] || Padding[1] * 2 > Kernel[1]) throw Error("padding must be at most half the kernel");
    }
    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        int h = SlidingOut(inputs[0].H, Kernel[0], Stride[0], Padding[0], 1, CeilMode);
        int w = SlidingOut(inputs[0].W, Kernel[1], Stride[1], Padding[1], 1, CeilMode);
        if (h < 1 || w < 1) throw Error($"kernel larger than padded input {inputs[0]}");
        return new(inputs[0].C, h, w);
    }
}

public sealed class MaxPool2dNode : Pool2dNode
{
    [JsonIgnore] public override string Op => "max_pool2d";
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.MaxPool(ctx[0], Kernel, Stride, Padding, CeilMode);
}

/// <summary>Average pooling; padded positions count in the average (count_include_pad, PyTorch's default).</summary>
public sealed class AvgPool2dNode : Pool2dNode
{
    [JsonIgnore] public override string Op => "avg_pool2d";
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.AvgPool(ctx[0], Kernel, Stride, Padding, CeilMode);
}

/// <summary>Adaptive average pooling; 1×1 is global average pooling (ONNX GlobalAveragePool, ReduceMean over H, W).</summary>
public sealed class AdaptiveAvgPool2dNode : Node
{
    [JsonIgnore] public override string Op => "adaptive_avg_pool2d";
    public int[] OutputSize { get; set; } = { 1, 1 };
    protected override void CloneArrays() => OutputSize = (int[])OutputSize.Clone();
    public override void ValidateAttributes() => RequirePositivePair(OutputSize, "output_size");
    public override Shape InferShape(IReadOnlyList<Shape> inputs) => new(inputs[0].C, OutputSize[0], OutputSize[1]);
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.AdaptiveAvgPool(ctx[0], OutputSize, ctx.InputShapes[0]);
}

/// <summary>
/// Resizes its first input by <see cref="Scale"/>, to a fixed <see cref="Size"/>, or — with a second
/// input — to that input's spatial size (how DeepLab returns to the image size whatever it is).
/// </summary>
public sealed class UpsampleNode : Node
{
    [JsonIgnore] public override string Op => "upsample";
    [JsonIgnore] public override (int Min, int Max) Arity => (1, 2);
    public string Mode { get; set; } = "nearest";
    public double? Scale { get; set; }
    public int[]? Size { get; set; }
    public bool AlignCorners { get; set; }
    protected override void CloneArrays() => Size = (int[]?)Size?.Clone();

    public override void ValidateAttributes()
    {
        if (Mode != "nearest" && Mode != "bilinear") throw Error($"mode must be 'nearest' or 'bilinear', got '{Mode}'");
        int ways = (Scale.HasValue ? 1 : 0) + (Size != null ? 1 : 0) + (Inputs.Count == 2 ? 1 : 0);
        if (ways != 1) throw Error("give exactly one of scale, size, or a second (reference) input");
        if (Scale is { } s && !(s > 0)) throw Error($"scale must be > 0, got {s}");
        if (Size != null) RequirePositivePair(Size, "size");
    }

    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        var x = inputs[0];
        if (inputs.Count == 2) return new(x.C, inputs[1].H, inputs[1].W);
        if (Size != null) return new(x.C, Size[0], Size[1]);
        return new(x.C, (int)Math.Floor(x.H * Scale!.Value), (int)Math.Floor(x.W * Scale!.Value));
    }

    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) =>
        ops.Resize(ctx[0], Mode == "bilinear", AlignCorners, Scale, Size, ctx.Inputs.Count == 2 ? ctx[1] : null);
}

/// <summary>Zero padding of the spatial borders (negative values crop), as F.pad writes it around a U-Net's skip.</summary>
public sealed class PadNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "pad";
    /// <summary>Top, left, bottom, right.</summary>
    public int[] Pads { get; set; } = { 0, 0, 0, 0 };
    protected override void CloneArrays() => Pads = (int[])Pads.Clone();
    public override void ValidateAttributes()
    {
        if (Pads is not { Length: 4 }) throw Error("pads must have 4 values (top, left, bottom, right)");
    }
    public override Shape InferShape(IReadOnlyList<Shape> inputs)
    {
        var x = inputs[0];
        int h = x.H + Pads[0] + Pads[2], w = x.W + Pads[1] + Pads[3];
        if (h < 1 || w < 1) throw Error($"padding {string.Join(", ", Pads)} leaves nothing of {x}");
        return new(x.C, h, w);
    }
    public override T Forward<T>(ITensorOps<T> ops, OpContext<T> ctx) => ops.Pad(ctx[0], Pads);
}

using System.Text.Json.Serialization;

namespace Sculpt.Graph;

/// <summary>Channels × height × width of one image in a batch; the batch axis is implicit.</summary>
public readonly record struct Shape(int C, int H, int W)
{
    public override string ToString() => $"{C}×{H}×{W}";
}

/// <summary>
/// One typed operation of the network graph. Channel counts are explicit so that a pruned graph is
/// fully described by its JSON, and so that validation can catch mismatches before any tensor exists.
/// MACs count multiply-accumulates of convolutions only; element-wise work is not counted (as thop/fvcore).
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "op")]
[JsonDerivedType(typeof(InputNode), "input")]
[JsonDerivedType(typeof(Conv2dNode), "conv2d")]
[JsonDerivedType(typeof(ConvTranspose2dNode), "conv_transpose2d")]
[JsonDerivedType(typeof(BatchNorm2dNode), "batch_norm2d")]
[JsonDerivedType(typeof(ReluNode), "relu")]
[JsonDerivedType(typeof(LeakyReluNode), "leaky_relu")]
[JsonDerivedType(typeof(SiluNode), "silu")]
[JsonDerivedType(typeof(SigmoidNode), "sigmoid")]
[JsonDerivedType(typeof(MaxPool2dNode), "max_pool2d")]
[JsonDerivedType(typeof(AvgPool2dNode), "avg_pool2d")]
[JsonDerivedType(typeof(AdaptiveAvgPool2dNode), "adaptive_avg_pool2d")]
[JsonDerivedType(typeof(UpsampleNode), "upsample")]
[JsonDerivedType(typeof(AddNode), "add")]
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
    public virtual long ParameterCount() => 0;
    public virtual long MacCount(IReadOnlyList<Shape> inputs, Shape output) => 0;
    /// <summary>Checks of attributes that need no shapes.</summary>
    public virtual void ValidateAttributes() { }

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

    protected static int SlidingOut(int size, int kernel, int stride, int pad, int dilation, bool ceil = false)
    {
        int span = dilation * (kernel - 1) + 1;
        int numer = size + 2 * pad - span;
        if (numer < 0) return 0;
        int o = (ceil ? (numer + stride - 1) / stride : numer / stride) + 1;
        // PyTorch: with ceil_mode the last window must start inside the (left-padded) input
        if (ceil && (o - 1) * stride >= size + pad) o--;
        return o;
    }
}

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
}

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

    public override long ParameterCount() =>
        (long)OutChannels * (InChannels / Groups) * Kernel[0] * Kernel[1] + (Bias ? OutChannels : 0);

    public override long MacCount(IReadOnlyList<Shape> inputs, Shape output) =>
        (long)output.C * output.H * output.W * (InChannels / Groups) * Kernel[0] * Kernel[1];
}

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
        int h = (inputs[0].H - 1) * Stride[0] - 2 * Padding[0] + Dilation[0] * (Kernel[0] - 1) + OutputPadding[0] + 1;
        int w = (inputs[0].W - 1) * Stride[1] - 2 * Padding[1] + Dilation[1] * (Kernel[1] - 1) + OutputPadding[1] + 1;
        if (h < 1 || w < 1) throw Error($"output would be empty for input {inputs[0]}");
        return new(OutChannels, h, w);
    }

    // Weight layout is [in, out/groups, kh, kw] as in PyTorch.
    public override long ParameterCount() =>
        (long)InChannels * (OutChannels / Groups) * Kernel[0] * Kernel[1] + (Bias ? OutChannels : 0);

    public override long MacCount(IReadOnlyList<Shape> inputs, Shape output) =>
        (long)inputs[0].C * inputs[0].H * inputs[0].W * (OutChannels / Groups) * Kernel[0] * Kernel[1];
}

public sealed class BatchNorm2dNode : Node
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
    public override long ParameterCount() => 2L * Channels;
}

/// <summary>Nodes that keep the shape of their single input.</summary>
public abstract class ShapePreservingNode : Node
{
    public override Shape InferShape(IReadOnlyList<Shape> inputs) => inputs[0];
}

public sealed class ReluNode : ShapePreservingNode { [JsonIgnore] public override string Op => "relu"; }
public sealed class SiluNode : ShapePreservingNode { [JsonIgnore] public override string Op => "silu"; }
public sealed class SigmoidNode : ShapePreservingNode { [JsonIgnore] public override string Op => "sigmoid"; }
public sealed class IdentityNode : ShapePreservingNode { [JsonIgnore] public override string Op => "identity"; }
public sealed class LeakyReluNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "leaky_relu";
    public double NegativeSlope { get; set; } = 0.01;
}
public sealed class DropoutNode : ShapePreservingNode
{
    [JsonIgnore] public override string Op => "dropout";
    public double P { get; set; } = 0.5;
    public override void ValidateAttributes()
    {
        if (P < 0 || P >= 1) throw Error($"p must be in [0, 1), got {P}");
    }
}

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

public sealed class MaxPool2dNode : Pool2dNode { [JsonIgnore] public override string Op => "max_pool2d"; }
public sealed class AvgPool2dNode : Pool2dNode { [JsonIgnore] public override string Op => "avg_pool2d"; }

public sealed class AdaptiveAvgPool2dNode : Node
{
    [JsonIgnore] public override string Op => "adaptive_avg_pool2d";
    public int[] OutputSize { get; set; } = { 1, 1 };
    protected override void CloneArrays() => OutputSize = (int[])OutputSize.Clone();
    public override void ValidateAttributes() => RequirePositivePair(OutputSize, "output_size");
    public override Shape InferShape(IReadOnlyList<Shape> inputs) => new(inputs[0].C, OutputSize[0], OutputSize[1]);
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
}

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
}

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
}

public sealed class OutputNode : ShapePreservingNode { [JsonIgnore] public override string Op => "output"; }

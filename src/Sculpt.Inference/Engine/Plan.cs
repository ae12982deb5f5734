using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Engine;

/// <summary>
/// A tensor of the plan: an activation (one image's C×H×W, in an arena slot) or a constant
/// (weights, a per-channel vector broadcast as [1, C, 1, 1], or a scalar).
/// </summary>
internal sealed class Value
{
    public int C, H, W;
    public float[]? Constant;
    public long[]? ConstantShape;
    /// <summary>Arena slot of an activation; −1 for the graph input, which is read from the caller's array.</summary>
    public int Slot = -2;
    public bool IsActivation => Constant is null;
    public int Size => C * H * W;
    public int Plane => H * W;
    /// <summary>
    /// Zero rows and columns stored around each channel plane: set where a convolution writes its output already
    /// padded for the one convolution that reads it (<see cref="SculptEngine"/>), which then needs no copy.
    /// </summary>
    public int Border;
    /// <summary>Floats the value occupies in its slot.</summary>
    public int Stored => C * (H + 2 * Border) * (W + 2 * Border);
    /// <summary>How many steps read this value, and the index of the last one.</summary>
    public int Readers, LastReader = -1;
    /// <summary>The step that writes it (null for the input and constants).</summary>
    public Step? Producer;

    public static Value Activation(int c, int h, int w) => new() { C = c, H = h, W = w };
    public static Value Const(float[] data, long[] shape, int c = 1, int h = 1, int w = 1) =>
        new() { Constant = data, ConstantShape = shape, C = c, H = h, W = w };
}

/// <summary>
/// The buffers of one image's run: its input, the arena slots, the zero-bordered scratch, and a copy of one image of a
/// batch (the engine runs a batch one image at a time, <see cref="SculptEngine.Run(float[], int, Span{float})"/>).
/// </summary>
internal sealed class Frame(float[][] slots, int scratch, int inputSize)
{
    public float[] Input = [];
    public readonly float[] InputImage = new float[inputSize];
    public readonly float[] Scratch = new float[Math.Max(1, scratch)];
    public float[] Of(Value v) => v.Slot == -1 ? Input : v.Constant ?? slots[v.Slot];
}

/// <summary>One kernel call of the plan.</summary>
internal abstract class Step
{
    public Value[] Inputs = [];
    public Value Output = null!;
    public abstract void Run(Frame f);
    public virtual string Name => GetType().Name.Replace("Step", "");
    /// <summary>Multiply-accumulates per image, for the per-layer report.</summary>
    public virtual long Macs => 0;

    /// <summary>The zero border around each plane of <paramref name="v"/> (its slot may hold another value's data there).</summary>
    protected static unsafe void ClearBorder(float* y, Value v)
    {
        int b = v.Border, h = v.H, w = v.W, wp = w + 2 * b, hp = h + 2 * b;
        for (int c = 0; c < v.C; c++)
        {
            float* plane = y + c * hp * wp;
            new Span<float>(plane, b * wp).Clear();
            new Span<float>(plane + (b + h) * wp, b * wp).Clear();
            for (int r = b; r < b + h; r++)
                for (int j = 0; j < b; j++) { plane[r * wp + j] = 0; plane[r * wp + b + w + j] = 0; }
        }
    }
}

/// <summary>
/// Records a graph as kernel steps by running each node's one definition (<see cref="Node.Forward{T}"/>) against
/// symbolic values, as the ONNX writer does (the engine then fuses them, <see cref="SculptEngine"/>).
/// </summary>
internal sealed class Recorder : ITensorOps<Value>
{
    public readonly List<Step> Steps = new();

    private Value Add(Step s)
    {
        Steps.Add(s);
        s.Output.Producer = s;
        return s.Output;
    }

    private static void RequireActivation(Value v, string what)
    {
        if (!v.IsActivation) throw new NotSupportedException($"{what} of a constant");
    }

    public Value Conv(Value x, Value weight, Value? bias, int[] stride, int[] padding, int[] dilation, int groups)
    {
        RequireActivation(x, "convolution");
        var k = weight.ConstantShape!;
        int oc = (int)k[0], kh = (int)k[2], kw = (int)k[3];
        int ho = Node.SlidingOut(x.H, kh, stride[0], padding[0], dilation[0]);
        int wo = Node.SlidingOut(x.W, kw, stride[1], padding[1], dilation[1]);
        return Add(new ConvStep(x, Value.Activation(oc, ho, wo), (float[])weight.Constant!.Clone(),
            bias?.Constant is { } b ? (float[])b.Clone() : null,
            kh, kw, stride, padding, dilation, groups));
    }

    public Value ConvTranspose(Value x, Value weight, Value? bias, int[] stride, int[] padding, int[] outputPadding, int[] dilation,
        int groups)
    {
        RequireActivation(x, "transposed convolution");
        var k = weight.ConstantShape!;
        int oc = (int)k[1] * groups, kh = (int)k[2], kw = (int)k[3];
        int ho = Node.TransposedOut(x.H, kh, stride[0], padding[0], dilation[0], outputPadding[0]);
        int wo = Node.TransposedOut(x.W, kw, stride[1], padding[1], dilation[1], outputPadding[1]);
        return Add(new ConvTransposeStep(x, Value.Activation(oc, ho, wo), weight.Constant!, bias?.Constant, kh, kw, stride, padding,
            dilation, groups));
    }

    public Value BatchNorm(Value x, Value mean, Value variance, Value gamma, Value beta, double eps, double momentum)
    {
        RequireActivation(x, "batch norm");
        int c = x.C;
        var scale = new float[c]; var shift = new float[c];
        for (int i = 0; i < c; i++)
        {
            // ONNX Runtime's BatchNormalization: (x − mean) / sqrt(var + ε) · γ + β, in float
            float s = gamma.Constant![i] / MathF.Sqrt(variance.Constant![i] + (float)eps);
            scale[i] = s; shift[i] = beta.Constant![i] - mean.Constant![i] * s;
        }
        return Add(new AffineStep(x, Value.Activation(x.C, x.H, x.W), scale, shift));
    }

    public Value InstanceNorm(Value x, Value? gamma, Value? beta, double eps) =>
        Add(new GroupNormStep(x, Value.Activation(x.C, x.H, x.W), x.C, gamma?.Constant, beta?.Constant, eps));

    public Value GroupNorm(Value x, int groups, Value? gamma, Value? beta, double eps) =>
        Add(new GroupNormStep(x, Value.Activation(x.C, x.H, x.W), groups, gamma?.Constant, beta?.Constant, eps));

    public Value Unary(UnaryKind kind, Value x, double a = 0, double b = 0)
    {
        RequireActivation(x, kind.ToString());
        return Add(new UnaryStep(x, Value.Activation(x.C, x.H, x.W), kind, (float)a, (float)b));
    }

    public Value PRelu(Value x, Value slope) => Add(new PReluStep(x, Value.Activation(x.C, x.H, x.W), slope.Constant!));

    public Value Binary(BinaryKind kind, Value a, Value b)
    {
        if (!a.IsActivation && !b.IsActivation) throw new NotSupportedException("element-wise operation of two constants");
        int c = Math.Max(a.C, b.C), h = Math.Max(a.H, b.H), w = Math.Max(a.W, b.W);
        foreach (var v in new[] { a, b })
            if ((v.C != c && v.C != 1) || (v.H != h && v.H != 1) || (v.W != w && v.W != 1))
                throw new NotSupportedException($"broadcast of {v.C}×{v.H}×{v.W} to {c}×{h}×{w}");
        return Add(new BinaryStep(a, b, Value.Activation(c, h, w), kind));
    }

    public Value Scalar(double value) => Value.Const([(float)value], []);

    public Value PerChannel(Value vector) => Value.Const(vector.Constant!, [1, vector.Constant!.Length, 1, 1], c: vector.Constant!.Length);

    public Value MaxPool(Value x, int[] kernel, int[] stride, int[] padding, bool ceil) =>
        Pool(x, kernel, stride, padding, ceil, max: true);
    public Value AvgPool(Value x, int[] kernel, int[] stride, int[] padding, bool ceil) =>
        Pool(x, kernel, stride, padding, ceil, max: false);

    private Value Pool(Value x, int[] kernel, int[] stride, int[] padding, bool ceil, bool max)
    {
        int ho = Node.SlidingOut(x.H, kernel[0], stride[0], padding[0], 1, ceil);
        int wo = Node.SlidingOut(x.W, kernel[1], stride[1], padding[1], 1, ceil);
        return Add(new PoolStep(x, Value.Activation(x.C, ho, wo), kernel, stride, padding, max));
    }

    public Value AdaptiveAvgPool(Value x, int[] outputSize, Shape input) =>
        Add(new AdaptivePoolStep(x, Value.Activation(x.C, outputSize[0], outputSize[1])));

    public Value Resize(Value x, bool bilinear, bool alignCorners, double? scale, int[]? size, Value? reference)
    {
        int ho, wo;
        float sy, sx;
        if (scale is { } s)
        {
            ho = (int)Math.Floor(x.H * (float)s); wo = (int)Math.Floor(x.W * (float)s);
            sy = sx = (float)s;
        }
        else
        {
            (ho, wo) = size is { } hw ? (hw[0], hw[1]) : (reference!.H, reference.W);
            sy = (float)ho / x.H; sx = (float)wo / x.W;
        }
        return Add(new ResizeStep(x, Value.Activation(x.C, ho, wo), bilinear, alignCorners, sy, sx));
    }

    public Value Pad(Value x, int[] pads) =>
        Add(new PadStep(x, Value.Activation(x.C, x.H + pads[0] + pads[2], x.W + pads[1] + pads[3]), pads[0], pads[1]));

    public Value Concat(IReadOnlyList<Value> xs) =>
        Add(new ConcatStep(xs.ToArray(), Value.Activation(xs.Sum(v => v.C), xs[0].H, xs[0].W)));

    public Value Dropout(Value x, double p) => x;
    public Value Identity(Value x) => x;

    /// <summary>The steps of <paramref name="graph"/> with its weights; the input value and the output value.</summary>
    public static (List<Step> Steps, Value Input, Value Output) Record(NetworkGraph graph, WeightSet weights)
    {
        var infos = graph.Validate();
        var recorder = new Recorder();
        var values = new Dictionary<string, Value>();
        Value? input = null, output = null;
        foreach (var info in infos)
        {
            var node = info.Node;
            if (node is InputNode i)
            {
                input = values[node.Name] = Value.Activation(i.Channels, i.Height, i.Width);
                input.Slot = -1;
                continue;
            }
            var ins = node.Inputs.Select(n => values[n]).ToList();
            Value Weight(string name)
            {
                var t = weights[$"{node.Name}.{name}"];
                return Value.Const(t.Data, t.Shape);
            }
            var v = node.Forward(recorder, new OpContext<Value>(ins, info.InputShapes, info.Output, Weight));
            if (!v.IsActivation || (v.C, v.H, v.W) != (info.Output.C, info.Output.H, info.Output.W))
                throw new InvalidOperationException($"node '{node.Name}': planned {v.C}×{v.H}×{v.W}, the graph says {info.Output}");
            values[node.Name] = v;
            if (node is OutputNode) output = v;
        }
        return (recorder.Steps, input!, output!);
    }
}

using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Engine;

/// <summary>One planned kernel: its name, output shape, the multiply-accumulates and the activation bytes it reads and writes per
/// image.</summary>
public sealed record EngineLayer(string Name, string Output, long Macs, long Bytes);

/// <summary>
/// Sculpt's own CPU executor for small graphs, in managed code (System.Numerics vectors: AVX2/FMA on x64, NEON on
/// ARM), so a sculpted model needs no native runtime. The graph is planned once: every node recorded through its
/// one definition, batch norm folded into the convolution before it, ReLU/clip/leaky ReLU fused into the
/// convolution's epilogue, activations assigned to arena slots reused once their last reader has run. A run
/// allocates nothing: each concurrent caller takes an arena of its own from a pool (thread-safe).
/// </summary>
public sealed class SculptEngine
{
    private readonly List<Step> _steps;
    private readonly Value _input, _output;
    private readonly int[] _slotSizes;
    private readonly int _scratch;
    // arenas not in use (a lock, not a concurrent collection: those allocate on some operations)
    private readonly Stack<Frame> _frames = new();
    private readonly Lock _framesLock = new();

    public int InputChannels => _input.C;
    public int InputHeight => _input.H;
    public int InputWidth => _input.W;
    public (int C, int H, int W) OutputShape => (_output.C, _output.H, _output.W);
    /// <summary>Activations a convolution writes already zero-bordered for the convolution that reads them.</summary>
    internal int BorderedValues => _steps.Count(s => s.Output.Border > 0);
    /// <summary>The planned kernels in execution order.</summary>
    public IReadOnlyList<EngineLayer> Layers { get; }

    private SculptEngine(List<Step> steps, Value input, Value output)
    {
        _steps = steps; _input = input; _output = output;
        _slotSizes = AssignSlots(steps, input, output);
        _scratch = steps.OfType<ConvStep>().Select(c => c.ScratchSize).DefaultIfEmpty(0).Max();
        Layers = steps.Select(s => new EngineLayer(s.Name, $"{s.Output.C}×{s.Output.H}×{s.Output.W}", s.Macs,
            4L * (s.Inputs.Where(v => v.IsActivation).Sum(v => (long)v.Size) + s.Output.Size))).ToList();
    }

    /// <summary>Plans <paramref name="graph"/> with <paramref name="weights"/>; <see cref="NotSupportedException"/> names what it cannot
    /// run.</summary>
    public static SculptEngine Create(NetworkGraph graph, WeightSet weights) => Create(graph, weights, int.MaxValue);

    /// <summary>As <see cref="Create(NetworkGraph, WeightSet)"/>, with vectors of at most <paramref name="maxLanes"/> floats (tests run
    /// every width) and, when given, <paramref name="fourChannelColumns"/> instead of what the CPU's registers decide (tests run both
    /// on any CPU).</summary>
    internal static SculptEngine Create(NetworkGraph graph, WeightSet weights, int maxLanes, bool? fourChannelColumns = null)
    {
        var (steps, input, output) = Recorder.Record(graph, weights);
        if (input is null || output is null) throw new NotSupportedException("the graph needs one input and one output");
        Fuse(steps, output);
        foreach (var c in steps.OfType<ConvStep>()) c.Prepare(maxLanes);
        foreach (var t in steps.OfType<ConvTransposeStep>()) t.Prepare(maxLanes);
        ConcatenateIntoReaders(steps, output);
        BorderOutputs(steps, output);
        foreach (var c in steps.OfType<ConvStep>()) c.PlanOutput(fourChannelColumns ?? VectorWidths.ThirtyTwoRegisters);
        return new SculptEngine(steps, input, output);
    }

    public static SculptEngine Create(ModelPackage model) => Create(model.Graph, model.Weights);

    private static void CountReaders(List<Step> steps)
    {
        foreach (var s in steps) { s.Output.Readers = 0; s.Output.LastReader = -1; }
        for (int i = 0; i < steps.Count; i++)
            foreach (var v in steps[i].Inputs) { v.Readers++; v.LastReader = i; }
    }

    /// <summary>Batch norm into the convolution before it, then an activation into the convolution's epilogue.</summary>
    private static void Fuse(List<Step> steps, Value output)
    {
        CountReaders(steps);
        for (int i = 0; i < steps.Count; i++)
        {
            var s = steps[i];
            if (s.Inputs.Length != 1 || s.Inputs[0].Producer is not ConvStep conv || conv.HasEpilogue || s.Inputs[0].Readers != 1
                || s.Inputs[0] == output) continue;
            bool fused = true;
            switch (s)
            {
                case AffineStep bn: conv.Fold(bn.Scale, bn.Shift); break;
                case UnaryStep { Kind: UnaryKind.Relu }: conv.Lo = 0; conv.HasEpilogue = true; break;
                case UnaryStep { Kind: UnaryKind.Clip } clip: conv.Lo = clip.A; conv.Hi = clip.B; conv.HasEpilogue = true; break;
                case UnaryStep { Kind: UnaryKind.LeakyRelu } leaky: conv.NegativeSlope = leaky.A; conv.HasEpilogue = true; break;
                default: fused = false; break;
            }
            if (!fused) continue;
            // the convolution now writes the fused step's output
            conv.Output = s.Output;
            s.Output.Producer = conv;
            steps.RemoveAt(i--);
        }
        CountReaders(steps);
    }

    /// <summary>The first step that reads <paramref name="v"/> (the callers have checked it is the only reader).</summary>
    private static Step? ReaderOf(List<Step> steps, Value v) => steps.FirstOrDefault(s => s.Inputs.Contains(v));

    /// <summary>
    /// A concatenation whose one reader is a convolution that copies its input into a padded scratch anyway (a
    /// U-Net's decoder input) is not run: the convolution copies the parts to their channels itself.
    /// </summary>
    private static void ConcatenateIntoReaders(List<Step> steps, Value output)
    {
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i] is not ConcatStep concat || concat.Output.Readers != 1 || concat.Output == output) continue;
            if (ReaderOf(steps, concat.Output) is not ConvStep { ReadsPaddedInput: true } conv) continue;
            conv.ReadConcatenation(concat);
            steps.RemoveAt(i--);
        }
        CountReaders(steps);
    }

    /// <summary>
    /// A direct convolution or a pooling whose output only one padded direct convolution reads (a U-Net block's first
    /// convolution and the pooling before it) writes that output with the reader's zero border in place, so the
    /// reader copies nothing.
    /// </summary>
    private static void BorderOutputs(List<Step> steps, Value output)
    {
        foreach (var producer in steps.Where(s => s is ConvStep or PoolStep))
        {
            var y = producer.Output;
            if (producer is ConvStep { IsDirect: false } || y.Readers != 1 || y == output) continue;
            if (ReaderOf(steps, y) is not ConvStep { ReadsPaddedInput: true } reader || reader.Inputs.Length != 1) continue;
            if (reader.Padding is not [var ph, var pw] || ph != pw) continue;
            y.Border = ph;
        }
    }

    /// <summary>Arena slots by liveness: a value's slot is free again after its last reader; returns the slot sizes per image.</summary>
    private static int[] AssignSlots(List<Step> steps, Value input, Value output)
    {
        var sizes = new List<int>();
        var free = new List<int>();
        for (int i = 0; i < steps.Count; i++)
        {
            var y = steps[i].Output;
            // the smallest free slot that is large enough, else the largest free one grown
            int best = free.Where(k => sizes[k] >= y.Stored).OrderBy(k => sizes[k]).Select(k => (int?)k).FirstOrDefault()
                ?? free.OrderByDescending(k => sizes[k]).Select(k => (int?)k).FirstOrDefault() ?? -1;
            if (best >= 0) { free.Remove(best); sizes[best] = Math.Max(sizes[best], y.Stored); y.Slot = best; }
            else { y.Slot = sizes.Count; sizes.Add(y.Stored); }
            foreach (var v in steps[i].Inputs.Distinct())
                if (v.IsActivation && v != input && v != output && v.LastReader == i) free.Add(v.Slot);
            if (y.Readers == 0 && y != output) free.Add(y.Slot);
        }
        return sizes.ToArray();
    }

    private Frame Rent()
    {
        lock (_framesLock)
            if (_frames.Count > 0) return _frames.Pop();
        return new Frame(_slotSizes.Select(s => new float[s]).ToArray(), _scratch, _input.Size);
    }

    private void Return(Frame f)
    {
        f.Input = [];
        lock (_framesLock) _frames.Push(f);
    }

    /// <summary>
    /// Runs a batch of <paramref name="batch"/> NCHW float32 images; writes the logits (N × C × H × W) into
    /// <paramref name="output"/>. Allocates nothing once an arena exists. The images go through the whole network
    /// one at a time: a small model's activations for one image stay in the cache, a batch's would not (a batch of
    /// 16 through each layer in turn ran at 26–60% of the batch-1 rate per frame, 1,663-parameter model).
    /// </summary>
    public void Run(float[] input, int batch, Span<float> output)
    {
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch));
        if (input.Length != batch * _input.Size)
            throw new ArgumentException($"input has {input.Length} values, a batch of {batch} needs {batch * _input.Size}");
        if (output.Length != batch * _output.Size)
            throw new ArgumentException($"output has room for {output.Length} values, needs {batch * _output.Size}");
        var f = Rent();
        try
        {
            int inSize = _input.Size, outSize = _output.Size;
            for (int n = 0; n < batch; n++)
            {
                if (batch == 1) f.Input = input;
                else
                {
                    input.AsSpan(n * inSize, inSize).CopyTo(f.InputImage);
                    f.Input = f.InputImage;
                }
                foreach (var s in _steps) s.Run(f);
                f.Of(_output).AsSpan(0, outSize).CopyTo(output.Slice(n * outSize, outSize));
            }
        }
        finally { Return(f); }
    }

    public float[] Run(float[] input, int batch)
    {
        var y = new float[batch * _output.Size];
        Run(input, batch, y);
        return y;
    }

    /// <summary>A run over a fixed batch of <see cref="Common.TimingInput"/> (for timing), allocating nothing per call.</summary>
    public Action SampleRun(int batch)
    {
        var input = Common.TimingInput.Of(batch * _input.Size);
        var output = new float[batch * _output.Size];
        return () => Run(input, batch, output);
    }

    /// <summary>
    /// Milliseconds per image of each planned kernel (median of <paramref name="runs"/> timed runs after warm-up),
    /// in <see cref="Layers"/>' order: where the engine's time goes.
    /// </summary>
    public double[] ProfileLayers(int runs)
    {
        var f = Rent();
        try
        {
            f.Input = new float[_input.Size];
            var times = _steps.Select(_ => new List<double>(runs)).ToArray();
            for (int r = 0; r < runs + 5; r++)
                for (int i = 0; i < _steps.Count; i++)
                {
                    long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                    _steps[i].Run(f);
                    if (r >= 5) times[i].Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
            return times.Select(t => Common.Statistics.Percentile(t, 50)).ToArray();
        }
        finally { Return(f); }
    }
}

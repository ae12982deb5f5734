using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Sculpt.Clinical;
using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Onnx;
using Sculpt.Runtime;

namespace Sculpt.Deploy;

/// <summary>Which executor runs the model.</summary>
public enum EngineChoice
{
    /// <summary>Both are timed on this machine at load, alternating, and the faster is kept.</summary>
    Auto,
    /// <summary>ONNX Runtime (native).</summary>
    Ort,
    /// <summary>Sculpt's own managed engine: no native library is loaded.</summary>
    Sculpt,
}

/// <summary>How a <see cref="Segmenter"/> runs its model.</summary>
public sealed record SegmenterOptions
{
    /// <summary>The executor; <see cref="EngineChoice.Auto"/> chooses by measurement (ONNX Runtime where Sculpt's cannot plan the graph).</summary>
    public EngineChoice Engine { get; init; } = EngineChoice.Auto;
    /// <summary>ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose (one per core).</summary>
    public int Threads { get; init; }
    /// <summary>
    /// Time ONNX Runtime's two useful optimisation levels on this machine at load and keep the faster (a pruned
    /// model often runs faster without the blocked layout, a dense one with it); false: the highest level.
    /// </summary>
    public bool ChooseFastestLevel { get; init; }
    /// <summary>Frames per model run.</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>
    /// Height and width to run an ONNX file at that leaves them dynamic (torch.onnx with dynamic axes, as nnU-Net-style
    /// exports often are); where the file fixes them, it must agree. Null: the file's own size.
    /// </summary>
    public (int Height, int Width)? InputSize { get; init; }
}

/// <summary>
/// A segmentation model ready to run: a <c>.sculpt</c> package or an <c>.onnx</c> file with its task metadata
/// (labels, input size, normalisation), executed on the CPU by Sculpt's own engine or by ONNX Runtime
/// (<see cref="SegmenterOptions.Engine"/>). Images in, label maps out, with the model's own preprocessing; cine
/// loops in, LV area per frame, ED/ES frames and the ejection fraction out. Thread-safe: concurrent callers may
/// share one instance (ONNX Runtime sessions run concurrently, the engine gives each caller an arena of its own,
/// and the segmenter holds no other state).
/// </summary>
public sealed class Segmenter : IDisposable
{
    private readonly OrtModel? _ort;
    private readonly Engine.SculptEngine? _engine;
    private readonly int _batchSize;

    /// <summary>What the model does: labels, input size and channels, normalisation.</summary>
    public TaskInfo Task { get; }
    /// <summary>The file the model was loaded from.</summary>
    public string Source { get; }
    /// <summary>The ONNX Runtime optimisation level the model runs at (null when Sculpt's engine runs it).</summary>
    public GraphOptimizationLevel? Optimization => _ort?.Optimization;
    /// <summary>The executor that runs the model: "sculpt" or "ort".</summary>
    public string EngineName => _engine != null ? "sculpt" : "ort";
    /// <summary>Batch-1 milliseconds of both engines as measured at load when the choice was automatic.</summary>
    public (double SculptMs, double OrtMs)? Timing { get; private init; }

    private Segmenter(string source, TaskInfo task, OrtModel? ort, Engine.SculptEngine? engine, int batchSize)
    {
        Source = source; Task = task; _ort = ort; _engine = engine; _batchSize = batchSize;
    }

    /// <summary>Loads a <c>.sculpt</c> package or an <c>.onnx</c> model; one-line errors name the file.</summary>
    public static Segmenter Open(string path, SegmenterOptions? options = null)
    {
        options ??= new();
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), "BatchSize must be at least 1");
        bool onnx = path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
        ModelPackage? pkg = onnx ? null : ModelPackage.Load(path);
        if (onnx && options.Engine != EngineChoice.Ort) pkg = TryImport(path, options.Engine == EngineChoice.Sculpt, options.InputSize);
        Engine.SculptEngine? engine = null;
        if (pkg != null && options.Engine != EngineChoice.Ort)
        {
            try { engine = Engine.SculptEngine.Create(pkg); }
            catch (NotSupportedException) when (options.Engine == EngineChoice.Auto) { }
            catch (NotSupportedException e) { throw new InvalidDataException($"{path}: Sculpt's engine cannot run this model: {e.Message}"); }
        }
        var task = pkg?.Meta.Task;
        if (options.Engine == EngineChoice.Sculpt) return new Segmenter(path, task!, null, engine, options.BatchSize);
        // a package runs in ONNX Runtime as its ONNX export, made in memory
        var bytes = pkg != null && !onnx ? OnnxExport.Encode(pkg) : null;
        var ort = OpenOrt(level => bytes != null ? OrtModel.FromBytes(bytes, path, options.Threads, level) : new OrtModel(path, options.Threads, level), options);
        try
        {
            if (onnx) task = OnnxTask(ort, path, options.InputSize);
            if (engine == null) return new Segmenter(path, task!, ort, null, options.BatchSize);
            // both can run it: the faster at batch 1 on this machine, timed alternately so that noise hits both alike
            var (faster, ours, theirs) = Latency.FasterOf(engine.SampleRun(1), ort.SampleRun(1), warmUpSeconds: 0.3, warmUpRuns: 5,
                samples: 12, block: 3, maxSeconds: 5);
            if (faster == 0) { ort.Dispose(); return new Segmenter(path, task!, null, engine, options.BatchSize) { Timing = (ours, theirs) }; }
            return new Segmenter(path, task!, ort, null, options.BatchSize) { Timing = (ours, theirs) };
        }
        catch { ort.Dispose(); throw; }
    }

    /// <summary>An ONNX file as a package for Sculpt's engine: its sculpt.task metadata, or null where the importer cannot read it.</summary>
    private static ModelPackage? TryImport(string path, bool required, (int Height, int Width)? inputSize)
    {
        try { return OnnxImport.Read(path, inputSize); }
        catch (InvalidDataException) when (!required) { return null; }
    }

    /// <summary>As <see cref="Open"/>, off the caller's thread (loading reads and decodes the whole model).</summary>
    public static Task<Segmenter> OpenAsync(string path, SegmenterOptions? options = null, CancellationToken cancel = default) =>
        System.Threading.Tasks.Task.Run(() => Open(path, options), cancel);

    private static OrtModel OpenOrt(Func<GraphOptimizationLevel, OrtModel> open, SegmenterOptions options) =>
        options.ChooseFastestLevel ? OrtModel.Fastest(open) : open(GraphOptimizationLevel.ORT_ENABLE_ALL);

    private static TaskInfo OnnxTask(OrtModel ort, string path, (int Height, int Width)? inputSize)
    {
        if (ort.Metadata.TryGetValue("sculpt.task", out var json))
        {
            TaskInfo task;
            try { task = JsonSerializer.Deserialize<TaskInfo>(json, NetworkGraph.JsonOptions) ?? throw new JsonException("null"); }
            catch (JsonException e) { throw new InvalidDataException($"{path}: the sculpt.task metadata is not valid: {e.Message}"); }
            OnnxImport.InputSize(path, task.InputHeight, task.InputWidth, inputSize,
                $"?, {task.InputChannels}, {task.InputHeight}, {task.InputWidth}");
            return task;
        }
        // a foreign ONNX model: no normalisation known, input size from the graph or the caller
        var shape = ort.InputShape;
        var (h, w) = OnnxImport.InputSize(path, shape.ElementAtOrDefault(2), shape.ElementAtOrDefault(3), inputSize,
            string.Join(", ", shape.Select(d => d <= 0 ? "?" : d.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        return new TaskInfo { InputChannels = (int)Math.Max(1, shape.ElementAtOrDefault(1)), InputHeight = h, InputWidth = w };
    }

    /// <summary>Raw NCHW float32 in, raw logits out: no preprocessing at all.</summary>
    public (float[] Data, long[] Shape) RunRaw(float[] input, long[] shape)
    {
        if (shape.Length != 4) throw new InvalidDataException($"input must be 4-D NCHW, has {shape.Length} dimensions [{string.Join(", ", shape)}]");
        if (shape[1] != Task.InputChannels || shape[2] != Task.InputHeight || shape[3] != Task.InputWidth)
            throw new InvalidDataException($"input shape [{string.Join(", ", shape)}] does not fit the model's [N, {Task.InputChannels}, {Task.InputHeight}, {Task.InputWidth}]");
        if (_engine != null)
        {
            int n = checked((int)shape[0]);
            var (c, h, w) = _engine.OutputShape;
            return (_engine.Run(input, n), [n, c, h, w]);
        }
        return _ort!.Run(input, shape);
    }

    /// <summary>Label maps at model input size for images given as [0,1] planes (C×H×W) at model input size.</summary>
    public List<byte[]> Segment(IReadOnlyList<float[]> images)
    {
        int c = Task.InputChannels, h = Task.InputHeight, w = Task.InputWidth, hw = h * w;
        var result = new List<byte[]>(images.Count);
        for (int start = 0; start < images.Count; start += _batchSize)
        {
            int n = Math.Min(_batchSize, images.Count - start);
            var x = new float[n * c * hw];
            for (int b = 0; b < n; b++)
            {
                if (images[start + b].Length != c * hw)
                    throw new ArgumentException($"image {start + b} has {images[start + b].Length} values, the model takes {c}×{h}×{w}");
                for (int ch = 0; ch < c; ch++)
                {
                    double mean = Task.Normalization.Mean[Math.Min(ch, Task.Normalization.Mean.Length - 1)];
                    double std = Task.Normalization.Std[Math.Min(ch, Task.Normalization.Std.Length - 1)];
                    for (int i = 0; i < hw; i++) x[(b * c + ch) * hw + i] = (float)((images[start + b][ch * hw + i] - mean) / std);
                }
            }
            var (logits, shape) = RunRaw(x, new long[] { n, c, h, w });
            for (int b = 0; b < n; b++) result.Add(Labels(logits, (int)shape[1], b, hw));
        }
        return result;
    }

    private static byte[] Labels(float[] logits, int classes, int b, int hw)
    {
        var mask = new byte[hw];
        for (int i = 0; i < hw; i++)
        {
            if (classes == 1) { mask[i] = logits[b * hw + i] > 0 ? (byte)1 : (byte)0; continue; }
            int best = 0; float bestValue = float.NegativeInfinity;
            for (int cls = 0; cls < classes; cls++)
            {
                float v = logits[(b * classes + cls) * hw + i];
                if (v > bestValue) { bestValue = v; best = cls; }
            }
            mask[i] = (byte)best;
        }
        return mask;
    }

    /// <summary>
    /// Label maps (one channel, pixel = label) at each image's own size: every image resized to the model input
    /// (bilinear), segmented, and its labels resized back (nearest).
    /// </summary>
    public List<Image8> SegmentImages(IReadOnlyList<Image8> images)
    {
        var small = Segment(images.Select(ToModelInput).ToList());
        return images.Select((img, i) => new Image8(img.Width, img.Height, 1,
            ImageIO.ResizeNearest(small[i], Task.InputHeight, Task.InputWidth, img.Height, img.Width))).ToList();
    }

    /// <summary>One image's label map at its own size.</summary>
    public Image8 SegmentImage(Image8 image) => SegmentImages([image])[0];

    /// <summary>
    /// A cine loop: label maps, LV area, long axis and area–length volume per frame, ED/ES per beat and the
    /// ejection fraction. <paramref name="spacing"/> (millimetres per pixel, as the ultrasound region of a DICOM
    /// file gives it) adds volumes in mL.
    /// </summary>
    public CineAnalysis AnalyzeCine(IReadOnlyList<Image8> frames, PixelSpacing? spacing = null) => CineAnalysis.Measure(SegmentImages(frames), Lv, spacing, cycle: true);

    /// <summary>
    /// Reads a study — a multi-frame DICOM file, a video file or a folder of frame images — and analyses it as
    /// a cine loop; a DICOM file's ultrasound region gives the pixel size.
    /// </summary>
    public async Task<CineAnalysis> AnalyzeStudyAsync(string path, CancellationToken cancel = default)
    {
        var study = await System.Threading.Tasks.Task.Run(() => StudyFrames.Read(path), cancel).ConfigureAwait(false);
        cancel.ThrowIfCancellationRequested();
        return await System.Threading.Tasks.Task.Run(() => AnalyzeCine(study.Images, study.Dicom?.Spacing), cancel).ConfigureAwait(false);
    }

    /// <summary>The label value of the left ventricle ("lv" in the task's labels; 1 when unnamed).</summary>
    public byte Lv => (byte)Math.Max(1, Task.Labels.IndexOf("lv"));

    private float[] ToModelInput(Image8 img) =>
        ImageIO.ResizeBilinear(ImageIO.ToPlanes(img, Task.InputChannels), Task.InputChannels, img.Height, img.Width, Task.InputHeight, Task.InputWidth);

    public void Dispose() => _ort?.Dispose();
}

/// <summary>A segmented cine loop: per-frame label maps and LV measurements, beats and the ejection fraction.</summary>
public sealed record CineAnalysis(IReadOnlyList<Image8> Masks, IReadOnlyList<double> LvAreaPx, IReadOnlyList<double> LongAxisPx,
    IReadOnlyList<double> VolumePx3, IReadOnlyList<Beat> Beats, double? MlPerPx3)
{
    /// <summary>Mean ejection fraction over beats, in percent; null without a complete beat or with an undefined one.</summary>
    public double? EjectionFraction => Beats.Count > 0 && Beats.Average(b => b.EjectionFraction) is var ef && double.IsFinite(ef) ? ef : null;

    public int FramesWithoutLv => LvAreaPx.Count(a => a == 0);

    /// <summary>A volume in pixels³ as millilitres, where the pixel size is known.</summary>
    public double? Millilitres(double px3) => MlPerPx3 is { } f && double.IsFinite(px3) ? px3 * f : null;

    /// <summary>
    /// LV measurements of label maps; <paramref name="cycle"/> false (separate images, not a loop) leaves the
    /// beats empty.
    /// </summary>
    public static CineAnalysis Measure(IReadOnlyList<Image8> masks, byte lv, PixelSpacing? spacing, bool cycle)
    {
        var areas = new List<double>(masks.Count); var lengths = new List<double>(masks.Count); var volumes = new List<double>(masks.Count);
        foreach (var m in masks)
        {
            var (area, length) = AreaLength.Measure(m.Pixels, m.Height, m.Width, lv);
            areas.Add(area); lengths.Add(length); volumes.Add(AreaLength.Volume(area, length));
        }
        // area–length volumes scale with the cube of the pixel size; for unequal x and y sizes their geometric mean
        // stands in for the long axis' direction (ultrasound regions are square in practice)
        double? mlPerPx3 = spacing is { } sp ? Math.Pow(Math.Sqrt(sp.XMm * sp.YMm), 3) / 1000 : null;
        return new CineAnalysis(masks, areas, lengths, volumes, cycle ? CardiacCycle.Beats(volumes) : [], mlPerPx3);
    }
}

using Sculpt.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace Sculpt.Deploy;

/// <summary>An ONNX Runtime CPU session over an exported model, with explicit threads and graph optimisation.</summary>
public sealed class OrtModel : IDisposable
{
    private readonly InferenceSession _session;
    public string InputName { get; }
    public string OutputName { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public long[] InputShape { get; }
    public string SourcePath { get; }
    public GraphOptimizationLevel Optimization { get; }

    public OrtModel(string path, int threads = 0, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL)
        : this(File.Exists(path) ? Open(() => new InferenceSession(path, Options(threads, optimization)), path) : throw new FileNotFoundException($"{path}: ONNX file not found"), path, optimization)
    {
    }

    private OrtModel(InferenceSession session, string source, GraphOptimizationLevel optimization)
    {
        _session = session;
        SourcePath = source;
        Optimization = optimization;
        InputName = _session.InputMetadata.Keys.Single();
        OutputName = _session.OutputMetadata.Keys.First();
        InputShape = _session.InputMetadata[InputName].Dimensions.Select(d => (long)d).ToArray();
        Metadata = _session.ModelMetadata.CustomMetadataMap;
    }

    /// <summary>A session over a model exported in memory (no file): for timing a package as ONNX Runtime runs it.</summary>
    public static OrtModel FromPackage(Runtime.ModelPackage model, int threads = 0, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL) =>
        FromBytes(OnnxExport.Encode(model), $"{model.Meta.Architecture ?? "model"} (exported in memory)", threads, optimization);

    /// <summary>A session over an ONNX model held in memory; <paramref name="source"/> names it in errors.</summary>
    public static OrtModel FromBytes(byte[] onnx, string source, int threads = 0, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL) =>
        new(Open(() => new InferenceSession(onnx, Options(threads, optimization)), source), source, optimization);

    /// <summary>
    /// Opens the model at ORT's two useful CPU levels and keeps the one faster at batch 1 on this machine.
    /// ALL adds the NCHWc blocked layout, which pays off for wide layers (the dense unet-classic) but costs a
    /// layout reorder per convolution in a pruned one: a 5 M-MAC unet-classic descendant spent 21% of its run
    /// in 18 reorders and ran at 0.482 ms with EXTENDED against 0.589 ms with ALL (bench/RESULTS.md).
    /// </summary>
    public static OrtModel Fastest(Func<GraphOptimizationLevel, OrtModel> open)
    {
        var candidates = new[] { GraphOptimizationLevel.ORT_ENABLE_ALL, GraphOptimizationLevel.ORT_ENABLE_EXTENDED }.Select(open).ToArray();
        int best = Latency.FasterOf(candidates[0].SampleRun(1), candidates[1].SampleRun(1), 0, warmUpRuns: 3, samples: 16, block: 4)
            .Index;
        candidates[1 - best].Dispose();
        return candidates[best];
    }

    /// <summary>A run over a fixed synthetic batch of the model's input size (for timing).</summary>
    public Action SampleRun(int batch)
    {
        var shape = InputShape.Select(d => d < 0 ? 1 : d).ToArray();
        shape[0] = batch;
        var input = Common.TimingInput.Of(shape.Aggregate(1L, (a, b) => a * b));
        return () => Run(input, shape);
    }

    /// <summary>Session options every Sculpt session uses: sequential execution, explicit threads, errors only.</summary>
    public static SessionOptions Options(int threads, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        var options = new SessionOptions { GraphOptimizationLevel = optimization, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        if (threads > 0) { options.IntraOpNumThreads = threads; options.InterOpNumThreads = 1; }
        return options;
    }

    private static InferenceSession Open(Func<InferenceSession> open, string source)
    {
        try { return open(); }
        catch (OnnxRuntimeException e) { throw new InvalidDataException($"{source}: ONNX Runtime cannot load the model: {e.Message.Split('\n')[0]}"); }
    }

    /// <summary>Runs a float32 NCHW batch; returns the output values and shape.</summary>
    public (float[] Data, long[] Shape) Run(float[] input, long[] shape)
    {
        for (int d = 1; d < Math.Min(shape.Length, InputShape.Length); d++)
            if (InputShape[d] > 0 && InputShape[d] != shape[d])
                throw new InvalidDataException($"input shape [{string.Join(", ", shape)}] does not fit the model's [{string.Join(", ", InputShape.Select(v => v < 0 ? "N" : v.ToString(System.Globalization.CultureInfo.InvariantCulture)))}]");
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, new[] { InputName }, new[] { value }, new[] { OutputName });
        var o = outputs[0];
        return (o.GetTensorDataAsSpan<float>().ToArray(), o.GetTensorTypeAndShape().Shape);
    }

    public void Dispose() => _session.Dispose();
}

public sealed record LatencyStats(double P50Ms, double P95Ms, double P99Ms, int Runs, int Batch)
{
    public double ThroughputFps => Batch * 1000.0 / P50Ms;
}

public static class Latency
{
    /// <summary>
    /// Runs <paramref name="run"/> for at least <paramref name="seconds"/> (and 5 times): long enough for .NET's
    /// tiered compilation to replace Sculpt's engine's first-tier code with its optimised, profile-guided code.
    /// Measured on the 1148× model: timed straight after 5 runs, the recompilations on the background thread
    /// showed as a p95 of 4.3 ms against a p50 of 0.39 ms.
    /// </summary>
    public static void WarmUp(Action run, double seconds, int runs = 5)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < runs || clock.Elapsed.TotalSeconds < seconds; i++) run();
    }

    /// <summary>
    /// Which of two runs is faster on this machine now (0 or 1; a tie goes to the first): both warmed, then timed
    /// alternately in blocks; with the two median milliseconds.
    /// </summary>
    public static (int Index, double FirstMs, double SecondMs) FasterOf(Action first, Action second, double warmUpSeconds, int warmUpRuns,
        int samples, int block, double maxSeconds = 60)
    {
        WarmUp(first, warmUpSeconds, warmUpRuns);
        WarmUp(second, warmUpSeconds, warmUpRuns);
        var times = Alternating([first, second], samples, block, maxSeconds);
        double a = Common.Statistics.Percentile(times[0], 50), b = Common.Statistics.Percentile(times[1], 50);
        return (a <= b ? 0 : 1, a, b);
    }

    /// <summary>Wall-clock latency of <paramref name="run"/> after warm-up, as percentiles in milliseconds.</summary>
    public static LatencyStats Measure(Action run, int batch, int runs = 200, int warmup = 10, double maxSeconds = 20)
    {
        // warm-up: at most `warmup` runs or 3 s, so a slow dense model does not spend a minute warming up
        var warm = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < warmup && (i == 0 || warm.Elapsed.TotalSeconds < 3); i++) run();
        var samples = new List<double>(runs);
        var total = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < runs && (total.Elapsed.TotalSeconds < maxSeconds || samples.Count < 5); i++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            run();
            samples.Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        return new LatencyStats(Common.Statistics.Percentile(samples, 50), Common.Statistics.Percentile(samples, 95), Common.Statistics.Percentile(samples, 99), samples.Count, batch);
    }

    public static LatencyStats Ort(OrtModel model, int batch, int runs = 200) => Measure(model.SampleRun(batch), batch, runs);

    /// <summary>
    /// Wall-clock milliseconds of several runs timed alternately in blocks, so machine noise hits them alike.
    /// Each block starts with one uncounted run that re-warms the caches the other runs evicted (a 124 MB dense
    /// model empties them: timed run by run against it, a 5 M-MAC model read 1.01 ms instead of 0.47). Stops
    /// when every run has <paramref name="samples"/> timings or after <paramref name="maxSeconds"/>.
    /// </summary>
    public static List<double>[] Alternating(IReadOnlyList<Action> runs, int samples, int block, double maxSeconds = 60)
    {
        var times = runs.Select(_ => new List<double>()).ToArray();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (times[0].Count < samples && clock.Elapsed.TotalSeconds < maxSeconds)
            for (int k = 0; k < runs.Count; k++)
            {
                runs[k]();
                for (int i = 0; i < block; i++)
                {
                    long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                    runs[k]();
                    times[k].Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
            }
        return times;
    }

    /// <summary>
    /// Frames per second of several independent streams at once, each calling its own run on its own thread
    /// (one single-threaded session per core is how a small model uses a multi-core CPU: a single session's
    /// threads synchronise at every node, which costs more than the node itself). Counts the runs every stream
    /// completes in <paramref name="seconds"/> after a common start.
    /// </summary>
    public static double ConcurrentThroughput(IReadOnlyList<Action> streams, int batch, double seconds)
    {
        foreach (var run in streams) WarmUp(run, 0.5);
        var counts = new long[streams.Count];
        using var start = new Barrier(streams.Count + 1);
        var deadline = 0L;
        var threads = streams.Select((run, k) => new Thread(() =>
        {
            start.SignalAndWait();
            while (System.Diagnostics.Stopwatch.GetTimestamp() < Volatile.Read(ref deadline)) { run(); counts[k]++; }
        }) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        Volatile.Write(ref deadline, t0 + (long)(seconds * System.Diagnostics.Stopwatch.Frequency));
        start.SignalAndWait();
        threads.ForEach(t => t.Join());
        double elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
        return counts.Sum() * batch / elapsed;
    }

    /// <summary>
    /// Batch-1 latency as a fixed cost per run plus a cost per GMAC, fitted by least squares to measured
    /// (MACs, milliseconds) pairs; null with fewer than three distinct sizes.
    /// </summary>
    public static (double FixedMs, double MsPerGmac)? FitLatency(IReadOnlyList<(long Macs, double Ms)> points)
    {
        if (points.Select(p => p.Macs).Distinct().Count() < 3) return null;
        double mx = points.Average(p => p.Macs / 1e9), my = points.Average(p => p.Ms);
        double sxx = points.Sum(p => (p.Macs / 1e9 - mx) * (p.Macs / 1e9 - mx)), sxy = points.Sum(p => (p.Macs / 1e9 - mx) * (p.Ms - my));
        double slope = sxy / sxx;
        return (my - slope * mx, slope);
    }

    /// <summary>
    /// The machine's practical peak with the given threads: a 1024×1024 by 1024×1024 float32 matrix multiply,
    /// written as a 1×1 convolution over a 32×32 map so ONNX Runtime runs it with the same GEMM kernels (MLAS)
    /// that its convolutions use; the best of 20 runs after 3 warm-up runs.
    /// </summary>
    public static double PeakGflops(int threads)
    {
        var b = new Graph.GraphBuilder();
        b.Output("y", b.Conv("gemm", b.Input("x", 1024, 32, 32), 1024, 1, bias: false));
        var graph = b.Build();
        var rng = new Random(0);
        var weights = new Runtime.WeightSet { ["gemm.weight"] = new Runtime.TensorData(new long[] { 1024, 1024, 1, 1 }, Enumerable.Range(0, 1024 * 1024).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray()) };
        using var model = OrtModel.FromPackage(new Runtime.ModelPackage(graph, weights, new Runtime.ModelMeta { Task = new Runtime.TaskInfo { InputChannels = 1024, InputHeight = 32, InputWidth = 32 } }), threads);
        var input = new float[1024 * 32 * 32];
        var shape = new long[] { 1, 1024, 32, 32 };
        for (int i = 0; i < 3; i++) model.Run(input, shape);
        double best = double.MaxValue;
        for (int i = 0; i < 20; i++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            model.Run(input, shape);
            best = Math.Min(best, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return 2.0 * 1024 * 1024 * 1024 / best / 1e9;
    }
}

/// <summary>Where ONNX Runtime spends a run: per operator type, and the part outside any kernel.</summary>
public sealed record OrtProfile(double RunMs, double KernelMs, int Nodes, List<(string Op, int Count, double Ms)> ByOp)
{
    /// <summary>Time of a run spent outside operator kernels (scheduling, allocation, per-node dispatch).</summary>
    public double OverheadMs => RunMs - KernelMs;

    /// <summary>Runs the model <paramref name="runs"/> times with ORT's profiler on and averages its per-node kernel times.</summary>
    public static OrtProfile Measure(string onnxPath, int batch, int runs, int threads, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        using var scratch = new Common.TempFolder("sculpt-ortprof-");
        var dir = scratch.Path;
        var options = OrtModel.Options(threads, optimization);
        // the prefix first: setting EnableProfiling passes the prefix of that moment to ONNX Runtime, and
        // in the other order the profile landed in the working directory
        options.ProfileOutputPathPrefix = Path.Combine(dir, "p");
        options.EnableProfiling = true;
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(onnxPath, options);
        var name = session.InputMetadata.Keys.Single();
        var shape = session.InputMetadata[name].Dimensions.Select(d => (long)(d < 0 ? batch : d)).ToArray();
        var input = Common.TimingInput.Of(shape.Aggregate(1L, (a, b) => a * b));
        using var value = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions();
        var outName = session.OutputMetadata.Keys.First();
        for (int i = 0; i < runs + 5; i++) { using var o = session.Run(runOptions, new[] { name }, new[] { value }, new[] { outName }); }
        var file = session.EndProfiling();
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.IsPathRooted(file) ? file : Path.Combine(Environment.CurrentDirectory, file)));
        var runDurations = new List<double>();
        var kernels = new List<(int Run, string Op, double Us)>();
        int run = -1;
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            string cat = e.TryGetProperty("cat", out var c) ? c.GetString() ?? "" : "", evName = e.GetProperty("name").GetString() ?? "";
            double dur = e.TryGetProperty("dur", out var d) ? d.GetDouble() : 0;
            if (cat == "Session" && evName == "model_run") { runDurations.Add(dur); run++; }
            else if (cat == "Node" && evName.EndsWith("_kernel_time") && e.TryGetProperty("args", out var args) && args.TryGetProperty("op_name", out var op))
                kernels.Add((run + 1, op.GetString() ?? "?", dur));
        }
        // the first 5 runs are warm-up; kernel events precede their run's model_run event
        var measured = Enumerable.Range(5, Math.Max(0, runDurations.Count - 5)).ToHashSet();
        var kept = kernels.Where(k => measured.Contains(k.Run)).ToList();
        int n = Math.Max(1, measured.Count);
        double runMs = runDurations.Skip(5).DefaultIfEmpty(0).Average() / 1000;
        var byOp = kept.GroupBy(k => k.Op).Select(g => (g.Key, g.Count() / n, g.Sum(k => k.Us) / n / 1000)).OrderByDescending(x => x.Item3).ToList();
        return new OrtProfile(runMs, byOp.Sum(x => x.Item3), kept.Count / n, byOp);
    }
}

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

    public OrtModel(string path, int threads = 0, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: ONNX file not found");
        SourcePath = path;
        var options = new SessionOptions { GraphOptimizationLevel = optimization, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        if (threads > 0) { options.IntraOpNumThreads = threads; options.InterOpNumThreads = 1; }
        try { _session = new InferenceSession(path, options); }
        catch (OnnxRuntimeException e) { throw new InvalidDataException($"{path}: ONNX Runtime cannot load the model: {e.Message.Split('\n')[0]}"); }
        InputName = _session.InputMetadata.Keys.Single();
        OutputName = _session.OutputMetadata.Keys.First();
        InputShape = _session.InputMetadata[InputName].Dimensions.Select(d => (long)d).ToArray();
        Metadata = _session.ModelMetadata.CustomMetadataMap;
    }

    /// <summary>Runs a float32 NCHW batch; returns the output values and shape.</summary>
    public (float[] Data, long[] Shape) Run(float[] input, long[] shape)
    {
        for (int d = 1; d < Math.Min(shape.Length, InputShape.Length); d++)
            if (InputShape[d] > 0 && InputShape[d] != shape[d])
                throw new InvalidDataException($"input shape [{string.Join(", ", shape)}] does not fit the model's [{string.Join(", ", InputShape.Select(v => v < 0 ? "N" : v.ToString()))}]");
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
        return new LatencyStats(Training.Metrics.Percentile(samples, 50), Training.Metrics.Percentile(samples, 95), Training.Metrics.Percentile(samples, 99), samples.Count, batch);
    }

    public static LatencyStats Ort(OrtModel model, int batch, int runs = 200)
    {
        var shape = (long[])model.InputShape.Clone();
        shape[0] = batch;
        var input = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < input.Length; i++) input[i] = (i % 97) / 97f;
        return Measure(() => model.Run(input, shape), batch, runs);
    }

    /// <summary>Dense float32 matrix multiply throughput with the given threads: the machine's practical peak.</summary>
    public static double PeakGflops(int threads)
    {
        Runtime.TorchRuntime.Initialize();
        if (threads > 0) TorchSharp.torch.set_num_threads(threads);
        using var a = TorchSharp.torch.rand(1024, 1024);
        using var b = TorchSharp.torch.rand(1024, 1024);
        for (int i = 0; i < 3; i++) { using var w = a.matmul(b); }
        var times = new List<double>();
        for (int i = 0; i < 10; i++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            using var c = a.matmul(b);
            times.Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return 2.0 * 1024 * 1024 * 1024 / times.Min() / 1e9;
    }
}

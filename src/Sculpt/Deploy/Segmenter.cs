using System.Text.Json;
using Sculpt.Graph;
using Sculpt.Runtime;
using static TorchSharp.torch;

namespace Sculpt.Deploy;

/// <summary>
/// One interface over a .sculpt model (TorchSharp) or an exported .onnx model (ONNX Runtime): raw tensor in,
/// logits out; or images in, label maps out with the model's own normalisation.
/// </summary>
public sealed class Segmenter : IDisposable
{
    private readonly GraphModule? _module;
    private readonly OrtModel? _ort;
    public TaskInfo Task { get; }
    public string Source { get; }

    private Segmenter(string source, TaskInfo task, GraphModule? module, OrtModel? ort)
    {
        Source = source; Task = task; _module = module; _ort = ort;
    }

    public static Segmenter Open(string path)
    {
        if (path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            var ort = new OrtModel(path);
            TaskInfo task;
            if (ort.Metadata.TryGetValue("sculpt.task", out var json)) task = JsonSerializer.Deserialize<TaskInfo>(json, NetworkGraph.JsonOptions)!;
            else
            {
                // a foreign ONNX model: no normalisation known, input size from the graph
                task = new TaskInfo { InputChannels = (int)Math.Max(1, ort.InputShape.ElementAtOrDefault(1)), InputHeight = (int)ort.InputShape.ElementAtOrDefault(2), InputWidth = (int)ort.InputShape.ElementAtOrDefault(3) };
                if (task.InputHeight <= 0 || task.InputWidth <= 0) throw new InvalidDataException($"{path}: the ONNX input has no fixed height and width; export it with a fixed spatial size");
            }
            return new Segmenter(path, task, null, ort);
        }
        var pkg = ModelPackage.Load(path);
        var module = new GraphModule(pkg.Graph, pkg.Weights);
        module.eval();
        return new Segmenter(path, pkg.Meta.Task, module, null);
    }

    /// <summary>Raw NCHW float32 in, raw logits out: no preprocessing at all.</summary>
    public (float[] Data, long[] Shape) RunRaw(float[] input, long[] shape)
    {
        if (shape.Length != 4) throw new InvalidDataException($"input must be 4-D NCHW, has {shape.Length} dimensions [{string.Join(", ", shape)}]");
        if (shape[1] != Task.InputChannels || shape[2] != Task.InputHeight || shape[3] != Task.InputWidth)
            throw new InvalidDataException($"input shape [{string.Join(", ", shape)}] does not fit the model's [N, {Task.InputChannels}, {Task.InputHeight}, {Task.InputWidth}]");
        if (_ort != null) return _ort.Run(input, shape);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var y = _module!.forward(tensor(input, shape)).contiguous();
        return (y.data<float>().ToArray(), y.shape);
    }

    /// <summary>Label maps at model input size for images given as [0,1] planes at model input size.</summary>
    public List<byte[]> Segment(IReadOnlyList<float[]> images, int batchSize = 16)
    {
        int c = Task.InputChannels, h = Task.InputHeight, w = Task.InputWidth, hw = h * w;
        var result = new List<byte[]>(images.Count);
        for (int start = 0; start < images.Count; start += batchSize)
        {
            int n = Math.Min(batchSize, images.Count - start);
            var x = new float[n * c * hw];
            for (int b = 0; b < n; b++)
                for (int ch = 0; ch < c; ch++)
                {
                    double mean = Task.Normalization.Mean[Math.Min(ch, Task.Normalization.Mean.Length - 1)];
                    double std = Task.Normalization.Std[Math.Min(ch, Task.Normalization.Std.Length - 1)];
                    for (int i = 0; i < hw; i++) x[(b * c + ch) * hw + i] = (float)((images[start + b][ch * hw + i] - mean) / std);
                }
            var (logits, shape) = RunRaw(x, new long[] { n, c, h, w });
            int k = (int)shape[1];
            for (int b = 0; b < n; b++)
            {
                var mask = new byte[hw];
                for (int i = 0; i < hw; i++)
                {
                    if (k == 1) { mask[i] = logits[b * hw + i] > 0 ? (byte)1 : (byte)0; continue; }
                    int best = 0; float bestValue = float.NegativeInfinity;
                    for (int cls = 0; cls < k; cls++)
                    {
                        float v = logits[(b * k + cls) * hw + i];
                        if (v > bestValue) { bestValue = v; best = cls; }
                    }
                    mask[i] = (byte)best;
                }
                result.Add(mask);
            }
        }
        return result;
    }

    public void Dispose()
    {
        _module?.Dispose();
        _ort?.Dispose();
    }
}

using Sculpt.Data;
using Sculpt.Deploy;
using Sculpt.Runtime;
using Sculpt.Training;

namespace Sculpt.Report;

/// <summary>What computes an evaluation's predictions: libtorch, as training and pruning score, or a deployment runtime.</summary>
public enum EvalEngine { Torch, Sculpt, Ort }

/// <summary>A model file scored by the runtime it will run in: `sculpt eval`'s work.</summary>
public static class ModelEvaluation
{
    /// <summary>
    /// <paramref name="model"/> (read from <paramref name="modelPath"/>, which the deployment runtimes open themselves)
    /// scored on <paramref name="samples"/> by <paramref name="engine"/>; <paramref name="labels"/> name the summary's rows,
    /// <paramref name="seed"/> draws the bootstrap; <paramref name="inputSize"/> is the size to run an ONNX file at that
    /// leaves it dynamic; <paramref name="progress"/> hears (frames done, frames in all).
    /// </summary>
    public static Evaluation Evaluate(ModelPackage model, string modelPath, IReadOnlyList<Sample> samples, IReadOnlyList<string> labels,
        EvalEngine engine, int seed = 0, int threads = 0, (int Height, int Width)? inputSize = null, Action<int, int>? progress = null)
    {
        var predictions = Predict(model, modelPath, samples, engine, threads, inputSize, progress);
        return Evaluator.Evaluate(samples, predictions, model.Meta.Task, labels, seed);
    }

    private static List<byte[]> Predict(ModelPackage model, string modelPath, IReadOnlyList<Sample> samples, EvalEngine engine, int threads,
        (int Height, int Width)? inputSize, Action<int, int>? progress)
    {
        var task = model.Meta.Task;
        if (engine == EvalEngine.Torch)
        {
            using var module = new GraphModule(model.Graph, model.Weights);
            return Evaluator.Predict(module, samples, task, progress: progress);
        }
        var options = new SegmenterOptions
        {
            Engine = engine == EvalEngine.Ort ? EngineChoice.Ort : EngineChoice.Sculpt, Threads = threads, InputSize = inputSize,
        };
        using var segmenter = Segmenter.Open(modelPath, options);
        var predictions = new List<byte[]>(samples.Count);
        foreach (var chunk in samples.Chunk(64))
        {
            predictions.AddRange(segmenter.Segment(
                chunk.Select(s => Batches.InChannels(s.Image, task.InputChannels, task.InputHeight, task.InputWidth)).ToList()));
            progress?.Invoke(predictions.Count, samples.Count);
        }
        return predictions;
    }
}

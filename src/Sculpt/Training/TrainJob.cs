using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Models;
using Sculpt.Runtime;

namespace Sculpt.Training;

/// <summary>Dataset + architecture + options → a trained, self-describing model package.</summary>
public static class TrainJob
{
    public static TaskInfo TaskFor(SegmentationDataset ds, Normalization norm) => new()
    {
        Labels = ds.Labels.ToList(), Mode = ds.IsBinary ? "binary" : "multiclass", InputChannels = ds.Channels,
        InputHeight = ds.Height, InputWidth = ds.Width, Normalization = norm,
        PixelSpacingMm = ds.Samples.FirstOrDefault()?.SpacingMm,
    };

    public static (ModelPackage Model, TrainResult Result) Run(SegmentationDataset ds, string arch, UNetConfig config, TrainOptions options,
        Action<Progress>? progress = null)
    {
        if (config.InChannels != ds.Channels || config.Classes != (ds.IsBinary ? 1 : ds.Labels.Count) || config.InputSize != ds.Height)
            throw new ArgumentException("architecture does not match the dataset (channels, classes or input size)");
        return Run(ds, arch, UNet.Build(config), JsonSerializer.SerializeToNode(config, NetworkGraph.JsonOptions), options, progress);
    }

    /// <summary>Trains any built graph (one input, one output) from PyTorch's default initialisation, seeded.</summary>
    public static (ModelPackage Model, TrainResult Result) Run(SegmentationDataset ds, string arch, NetworkGraph graph, JsonNode? architectureConfig,
        TrainOptions options, Action<Progress>? progress = null) => Run(ds, arch, graph, null, architectureConfig, options, progress);

    /// <summary>
    /// Trains a model that exists already (an imported one) from its own weights, or its architecture from a fresh
    /// initialisation when <paramref name="reinitialise"/> is set. Grey data feeds a colour model
    /// in every channel (as EchoNet feeds its grey videos to DeepLabV3); sizes and classes must match.
    /// </summary>
    public static (ModelPackage Model, TrainResult Result) Continue(SegmentationDataset ds, ModelPackage start, TrainOptions options,
        Action<Progress>? progress = null, bool reinitialise = false)
    {
        var input = start.Graph.InputNodes.Single();
        if (input.Height != ds.Height || input.Width != ds.Width)
            throw new DatasetException($"{ds.Source}: frames are {ds.Width}×{ds.Height}, the model takes {input.Width}×{input.Height}");
        // a model of two softmax outputs segments two labels, as binary frames have (nnU-Net exports binary tasks so)
        _ = DataFit.Check(ds, start.Meta.Task, DataUse.Retrain); // the command line shows the warning
        var config = start.Meta.Training?["architecture"]?.DeepClone();
        // reinitialised: the architecture alone, from a seeded fresh start (a pruned architecture trained from scratch)
        return Run(ds, start.Meta.Architecture ?? "imported", start.Graph, reinitialise ? null : start.Weights, config, options, progress,
            reinitialise, DataFit.RetrainedLabels(ds, start.Meta.Task));
    }

    private static (ModelPackage Model, TrainResult Result) Run(SegmentationDataset ds, string arch, NetworkGraph graph, WeightSet? weights,
        JsonNode? architectureConfig, TrainOptions options, Action<Progress>? progress, bool reinitialise = false,
        List<string>? labels = null)
    {
        var train = ds.Split("train");
        var val = ds.Split("val");
        var task = TaskFor(ds, ds.Normalization ?? Batches.Statistics(train, ds.Channels));
        task.InputChannels = graph.InputNodes.Single().Channels;
        if (labels is not null) task.Labels = labels;
        task.Mode = graph.OutputChannels() == 1 ? "binary" : "multiclass"; // how its logits decode: the graph's outputs decide
        if (ds.Height != ds.Width) throw new DatasetException($"{ds.Source}: model input must be square, data is {ds.Width}×{ds.Height}");
        using var teacher = options.Distill is { } d ? Teacher(ds, d.Teacher, graph) : null;
        var trainOptions = teacher is null ? options
            : options with { ExtraLoss = Distillation.Loss(teacher, options.Distill!.Kind, options.Distill.Weight, task.Normalization,
                options.Distill.Teacher.Meta.Task.Normalization) };
        TrainResult result;
        if (reinitialise)
            result = Trainer.TrainFresh(graph, train, val, task, trainOptions, progress);
        else
        {
            TorchSharp.torch.manual_seed(options.Seed);
            using var model = new GraphModule(graph, weights);
            result = Trainer.Train(model, train, val, task, trainOptions, progress);
        }
        var meta = new ModelMeta
        {
            Task = task,
            Architecture = arch,
            Training = new JsonObject
            {
                ["data"] = Path.GetFullPath(ds.Source), ["train_samples"] = train.Count, ["val_samples"] = val.Count,
                ["architecture"] = architectureConfig,
                ["options"] = JsonSerializer.SerializeToNode(options with { ExtraLoss = null }, NetworkGraph.JsonOptions),
                ["best_epoch"] = result.BestEpoch,
                ["starts"] = result.Starts,
                ["history"] = JsonSerializer.SerializeToNode(result.History, NetworkGraph.JsonOptions),
                ["torchsharp"] = TorchRuntime.TorchSharpVersion,
                ["onednn"] = TorchRuntime.OneDnnChoice,
            },
            Metrics = new() { ["val_dice"] = Math.Round(result.BestValDice, 6) },
        };
        return (new ModelPackage(graph, result.BestWeights, meta), result);
    }

    private static GraphModule Teacher(SegmentationDataset ds, ModelPackage teacher, NetworkGraph student)
    {
        var input = teacher.Graph.InputNodes.Single();
        var studentInput = student.InputNodes.Single();
        int teacherOutputs = teacher.Graph.OutputChannels(), studentOutputs = student.OutputChannels();
        if (input.Channels != studentInput.Channels || input.Height != studentInput.Height || input.Width != studentInput.Width
            || teacherOutputs != studentOutputs)
            throw new DatasetException($"{ds.Source}: the teacher takes {input.Channels}×{input.Height}×{input.Width} and gives "
                + $"{teacherOutputs} output channel(s); the model trained takes {studentInput.Channels}×{studentInput.Height}×"
                + $"{studentInput.Width} and gives {studentOutputs}");
        var module = new GraphModule(teacher.Graph, teacher.Weights);
        module.eval();
        return module;
    }
}

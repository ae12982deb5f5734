using System.Globalization;
using System.Text.Json.Nodes;
using Sculpt.Onnx;
using Sculpt.Import;
using Sculpt.Models;
using Sculpt.Runtime;

namespace Sculpt.Cli.Commands;

public static class ImportCommand
{
    public const string Help = """
        sculpt import --pytorch CKPT --arch deeplabv3_resnet50|unet-classic|unet|unet-small --out M.sculpt
                      [--in-channels C] [--classes K] [--size S] [--mean M[,M,M] --std S[,S,S]] [--labels a,b,…] [--json]
        sculpt import --onnx FILE.onnx --out M.sculpt [--input-size H,W] [--mean … --std … --labels …] [--json]

        --onnx: what torch.onnx.export writes for a segmentation CNN (opsets 11–17; torchvision's DeepLabV3, FCN and
        LR-ASPP, MobileNetV3, U-Nets with batch, instance or group norm, PReLU, attention gates, squeeze-excitation)
        becomes a graph with weights that can be pruned. Shape computations are evaluated at the model's input size:
        where the file leaves height and width dynamic, give it with --input-size. The input must be NCHW with a
        fixed C. Layers take PyTorch's module names. Unsupported operators are listed with the nodes that use them.
        Export with batch norm kept (training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) to
        fine-tune batch-norm layers as such; the default export folds them into the convolutions (README).

        Reads a torch.save file — the zip format (PyTorch ≥ 1.6) or the legacy format of older checkpoints,
        tensors saved on a GPU included — holding a state dict or a training checkpoint such as EchoNet's
        {'epoch', 'state_dict', 'best_loss', 'loss', 'opt_dict', 'scheduler_dict'} ('module.' prefixes from
        DataParallel are removed). Only tensors and plain containers are read; any other pickled object is
        refused and nothing in the file is executed. Parameter names must be the architecture's: torchvision's
        for deeplabv3_resnet50 (EchoNet-Dynamic: --in-channels 3 --classes 1 --size 112), Sculpt's for the
        U-Nets (see sculpt inspect). Missing, unexpected or wrongly shaped keys are listed.
        --mean/--std: the input normalisation on the 0–255 scale (EchoNet computes it from its training videos).

        example: sculpt import --pytorch best.pt --arch deeplabv3_resnet50 --in-channels 3 --classes 1 --size 112 --mean 32.6,32.7,33.1 --std 49.9,50.0,50.4 --out echonet.sculpt
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "json" });
        if (a.Get("onnx") is { } onnx) return FromOnnx(a, onnx);
        var checkpoint = a.Required("pytorch");
        var arch = a.Required("arch");
        var outPath = a.Required("out");
        Args.RefuseOverwrite(outPath, checkpoint);
        int inChannels = a.Int("in-channels", arch.StartsWith("deeplab") ? 3 : 1, 1, 64), classes = a.Int("classes", 1, 1, 255);
        int size = a.Int("size", 112, 16, 8192);
        var (mean, std) = NormalizationOptions(a, inChannels);
        var labels = a.Get("labels")?.Split(',').ToList() ?? TaskInfo.DefaultLabels(classes);
        var graph = Architectures.Build(arch, inChannels, classes, size);
        var task = new TaskInfo
        {
            Labels = labels, Mode = classes == 1 ? "binary" : "multiclass", InputChannels = inChannels, InputHeight = size, InputWidth = size,
            Normalization = new Normalization { Mean = mean.Select(m => m / 255).ToArray(), Std = std.Select(s => s / 255).ToArray() },
        };
        if (task.Labels.Count != (classes == 1 ? 2 : classes))
            throw new UsageException($"--labels needs {(classes == 1 ? 2 : classes)} names");
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        var model = Importer.FromPyTorch(checkpoint, graph, task, arch);
        model.Save(outPath);
        return Imported(model, checkpoint, "pytorch", outPath, json, $"as {arch} ");
    }

    /// <summary>What was imported: one line for a person, or with --json what a script needs to go on.</summary>
    private static int Imported(ModelPackage model, string source, string format, string outPath, bool json, string how = "")
    {
        var task = model.Meta.Task;
        if (json)
        {
            Output.Json(new JsonObject
            {
                ["source"] = source, ["format"] = format, ["out"] = outPath, ["nodes"] = model.Graph.Nodes.Count,
                ["params"] = model.Graph.ParameterCount(), ["macs"] = model.Graph.MacCount(),
                ["input"] = new JsonArray(task.InputChannels, task.InputHeight, task.InputWidth), ["mode"] = task.Mode,
                ["labels"] = new JsonArray(task.Labels.Select(l => (JsonNode?)l).ToArray()),
            });
            return 0;
        }
        Console.WriteLine($"imported {source} {how}({model.Graph.Nodes.Count} nodes, {model.Graph.ParameterCount():N0} params) "
            + $"→ {outPath}");
        return 0;
    }

    private static int FromOnnx(Args a, string onnx)
    {
        var outPath = a.Required("out");
        Args.RefuseOverwrite(outPath, onnx);
        var model = OnnxImport.Read(onnx, a.InputSize(onnx: true));
        var task = model.Meta.Task;
        if (a.Has("mean") || a.Has("std"))
        {
            var (mean, std) = NormalizationOptions(a, task.InputChannels);
            task.Normalization = new Normalization { Mean = mean.Select(m => m / 255).ToArray(), Std = std.Select(s => s / 255).ToArray() };
        }
        if (a.Get("labels") is { } labels)
        {
            var list = labels.Split(',').ToList();
            if (list.Count != task.Labels.Count) throw new UsageException($"--labels needs {task.Labels.Count} names");
            task.Labels = list;
        }
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        model.Save(outPath);
        return Imported(model, onnx, "onnx", outPath, json);
    }

    /// <summary>--mean/--std on the 0–255 scale: one value for every channel or one per channel.</summary>
    private static (double[] Mean, double[] Std) NormalizationOptions(Args a, int channels)
    {
        double[] Values(string name, double fallback)
        {
            var v = a.Get(name);
            if (v == null) return Enumerable.Repeat(fallback, channels).ToArray();
            var list = v.Split(',').Select(s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : throw new UsageException($"--{name}: '{s}' is not a number")).ToArray();
            if (list.Length != 1 && list.Length != channels)
                throw new UsageException($"--{name} needs 1 or {channels} values, got {list.Length}");
            return list.Length == 1 ? Enumerable.Repeat(list[0], channels).ToArray() : list;
        }
        var std = Values("std", 255);
        if (std.Any(s => s <= 0)) throw new UsageException("--std values must be > 0");
        return (Values("mean", 0), std);
    }
}

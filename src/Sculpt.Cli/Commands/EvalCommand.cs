using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Onnx;
using Sculpt.Report;
using Sculpt.Runtime;
using Sculpt.Training;
using Sculpt.Common;

namespace Sculpt.Cli.Commands;

public static class EvalCommand
{
    private const string PerCaseFile = "per_case.csv", SummaryFile = "summary.json";
    public const string Help = """
        sculpt eval --model MODEL.sculpt|MODEL.onnx --data DIR [--split test|val|train|all] [--engine torch|sculpt|ort]
                    [--input-size H,W] [--out DIR] [--seed S] [--threads T] [--lenient] [--json]

        Dice, IoU and HD95 (pixels; mm when the data gives a pixel spacing) per case and label, summarised as
        mean with a 95% bootstrap confidence interval (2000 resamples, --seed). Both-empty masks score Dice 1 and
        HD95 0; one empty mask leaves HD95 undefined (counted, excluded from the mean).
        --out writes per_case.csv and summary.json there. For data with cardiac phases (EchoNet-Dynamic), Dice
        pooled over all pixels of the split is also reported for ED and ES frames (EchoNet's definition).
        --lenient skips bad dataset items with a counted warning.
        --engine: what computes the predictions. torch (the default for .sculpt) is libtorch, as training and
        pruning score; ort (the default for .onnx) and sculpt are the deployment runtimes `sculpt segment` uses, so
        an exported file is scored as it will run. An .onnx file exported by Sculpt carries its labels and
        normalisation; another is read as `sculpt import --onnx` reads it, and one that leaves height and width dynamic
        runs at --input-size H,W (frames are resized to it, as to any model's input).

        example: sculpt eval --model models/unet16.sculpt --data data/echo --split test --out eval/
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "json", "lenient" });
        var modelPath = a.Required("model");
        var data = a.Required("data");
        var split = a.Choice("split", "test", s => SegmentationDataset.ParseSplit(s, orAll: true));
        bool onnx = modelPath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
        var engineName = a.Get("engine", onnx ? "ort" : "torch");
        var engine = engineName switch
        {
            "torch" => EvalEngine.Torch, "sculpt" => EvalEngine.Sculpt, "ort" => EvalEngine.Ort,
            _ => throw new UsageException($"--engine must be torch, sculpt or ort, got '{Messages.Quote(engineName)}'"),
        };
        var outDir = a.Get("out");
        int seed = a.Int("seed", 0);
        int threads = a.Threads();
        bool json = a.Flag("json"), lenient = a.Flag("lenient");
        var inputSize = a.InputSize(onnx);
        a.EnsureAllUsed();
        // an output folder that cannot take the files fails before the evaluation, not after it
        if (outDir != null) foreach (var file in new[] { PerCaseFile, SummaryFile }) AtomicFile.CheckWritable(Path.Combine(outDir, file));

        var pkg = onnx ? OnnxImport.Read(modelPath, inputSize) : ModelPackage.Load(modelPath);
        var task = pkg.Meta.Task;
        var ds = DataLoading.Load(data, task.InputHeight, task.InputWidth, lenient);
        DataFit.Check(ds, task, DataUse.Score);
        // the data's names: the same labels as the model's, and real names where an import gave the model placeholders
        var labels = ds.Labels;
        var samples = split == "all" ? ds.Samples : ds.Split(split).ToList();
        if (samples.Count == 0) throw new DatasetException($"{data}: split '{split}' is empty");
        var line = new ProgressLine();
        var result = ModelEvaluation.Evaluate(pkg, modelPath, samples, labels, engine, seed, threads, inputSize,
            line.Counter($"eval ({engineName})", "frames"));
        line.Done();
        var summaryJson = new JsonObject
        {
            ["model"] = modelPath, ["engine"] = engineName, ["data"] = data, ["split"] = split, ["cases"] = samples.Count, ["seed"] = seed,
            ["labels"] = JsonSerializer.SerializeToNode(result.Summary, NetworkGraph.JsonOptions),
            ["dice"] = result.MeanDice,
        };
        if (result.PooledDice.Count > 0)
            summaryJson["pooled_dice"] = new JsonObject(result.PooledDice.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        if (outDir != null)
            AtomicFile.WriteAllTexts([(Path.Combine(outDir, PerCaseFile), result.PerCaseCsv(labels)),
                (Path.Combine(outDir, SummaryFile), summaryJson.ToJsonString(Output.Indented))]);
        if (json) { Output.Json(summaryJson); return 0; }
        Console.WriteLine($"{modelPath} ({engineName}) on {data} [{split}], {samples.Count} cases (mean [95% CI])");
        Console.Write(Output.Table(new[] { "label", "Dice", "IoU", "HD95 px", "HD95 undefined", "HD95 mm" },
            result.Summary.Select(s => new[]
            {
                s.Label, $"{Output.F(s.Dice)} [{Output.F(s.DiceLo)}, {Output.F(s.DiceHi)}]", $"{Output.F(s.IoU)} [{Output.F(s.IoULo)}, {Output.F(s.IoUHi)}]",
                $"{Output.F(s.Hd95Px, "0.00")} [{Output.F(s.Hd95Lo, "0.00")}, {Output.F(s.Hd95Hi, "0.00")}]", s.Hd95Undefined.ToString(), s.Hd95Mm is { } mm ? Output.F(mm, "0.00") : "-",
            })));
        foreach (var (phase, d) in result.PooledDice)
            Console.WriteLine($"Dice pooled over all {phase} pixels of the split (EchoNet's definition): {d:0.0000}");
        if (outDir != null) Console.WriteLine($"per-case results: {Path.Combine(outDir, PerCaseFile)}");
        return 0;
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Training;

namespace Sculpt.Cli.Commands;

public static class DemoCommand
{
    public const string Help = """
        sculpt demo [--out DIR] [--quick] [--seed S] [--json]

        The whole story on built-in synthetic echocardiography: synthesise a dataset, train a dense U-Net,
        evaluate it on the held-out test split (Dice, IoU, HD95 with 95% CIs) against a non-learned baseline
        (Otsu threshold + dark component at the expected LV position). Everything lands in DIR (default
        runs/demo): data/, models/dense.sculpt, eval/, summary.json. --quick is a small smoke run (~1 minute).
        The same --seed reproduces the same numbers on the same machine.

        example: sculpt demo --out runs/demo --seed 0
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "quick", "json" });
        var outDir = a.Get("out", "runs/demo");
        bool quick = a.Flag("quick"), json = a.Flag("json");
        int seed = a.Int("seed", 0);
        a.EnsureAllUsed();
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
            throw new UsageException($"{outDir} exists and is not empty; choose another --out or remove it");

        var clock = Stopwatch.StartNew();
        var synth = new SynthOptions { Count = quick ? 160 : 600, Seed = seed, Videos = quick ? 1 : 2 };
        var arch = quick ? "unet-small" : "unet";
        var train = new TrainOptions { Epochs = quick ? 4 : 10, BatchSize = 8, Seed = seed, LearningRate = 3e-3 };
        string dataDir = Path.Combine(outDir, "data"), modelPath = Path.Combine(outDir, "models", "dense.sculpt");

        Step(json, $"1/3 synthesising {synth.Count} echo frames → {dataDir}");
        var progress = new ProgressLine { Quiet = json };
        SynthDataset.Write(dataDir, synth, (k, n) => progress.Update($"synth {ProgressLine.Bar((double)k / n)} {k}/{n}"));
        progress.Done();

        var ds = SegmentationDataset.Load(dataDir);
        var config = UNet.Preset(arch, ds.Channels, 1, ds.Height);
        Step(json, $"2/3 training {arch} ({Output.Count(UNet.Build(config).ParameterCount())} params) for {train.Epochs} epochs on {ds.Split("train").Count} frames");
        var (pkg, result) = TrainCommand.Run(ds, arch, config, train, json);
        pkg.Save(modelPath);

        Step(json, "3/3 evaluating on the test split");
        var test = ds.Split("test");
        using var model = new GraphModule(pkg.Graph, pkg.Weights);
        var preds = Evaluator.Predict(model, test, pkg.Meta.Task);
        var cases = Evaluator.Score(test, preds, ds.Height, ds.Width, ds.Labels.Count);
        var summary = Evaluator.Summarize(cases, ds.Labels, seed)[0];
        var baseline = new DarkRegionBaseline(ds.Split("train"), ds.Height, ds.Width);
        var baseCases = Evaluator.Score(test, test.Select(s => baseline.Segment(s.Image, ds.Height, ds.Width)).ToList(), ds.Height, ds.Width, ds.Labels.Count);
        var baseSummary = Evaluator.Summarize(baseCases, ds.Labels, seed)[0];

        Directory.CreateDirectory(Path.Combine(outDir, "eval"));
        var examples = test.Take(6).Select((s, i) => new[]
        {
            SegmentationDataset.ToImage8(s.Image, ds.Height, ds.Width), Overlay.Draw(s.Image, s.Mask, ds.Height, ds.Width),
            Overlay.Draw(s.Image, preds[i], ds.Height, ds.Width), Overlay.Draw(s.Image, baseline.Segment(s.Image, ds.Height, ds.Width), ds.Height, ds.Width),
        }).SelectMany(x => x).ToList();
        ImageIO.WritePng(Path.Combine(outDir, "eval", "examples.png"), Overlay.Montage(examples, 4));

        var record = new JsonObject
        {
            ["seed"] = seed, ["quick"] = quick, ["arch"] = arch, ["params"] = pkg.Graph.ParameterCount(), ["macs"] = pkg.Graph.MacCount(),
            ["val_dice"] = result.BestValDice, ["test_cases"] = test.Count,
            ["dice"] = summary.Dice, ["dice_ci"] = new JsonArray(summary.DiceLo, summary.DiceHi), ["iou"] = summary.IoU, ["hd95_px"] = summary.Hd95Px,
            ["baseline_dice"] = baseSummary.Dice, ["baseline_dice_ci"] = new JsonArray(baseSummary.DiceLo, baseSummary.DiceHi), ["baseline_hd95_px"] = baseSummary.Hd95Px,
            ["model"] = modelPath, ["data"] = dataDir, ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            ["torchsharp"] = TorchRuntime.TorchSharpVersion,
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, "summary.json"), record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (json) { Output.Json(record); return 0; }
        Console.WriteLine();
        Console.Write(Output.Table(new[] { "method", "params", "test Dice [95% CI]", "IoU", "HD95 px" }, new[]
        {
            new[] { $"{arch} (trained)", Output.Count(pkg.Graph.ParameterCount()), $"{Output.F(summary.Dice)} [{Output.F(summary.DiceLo)}, {Output.F(summary.DiceHi)}]", Output.F(summary.IoU), Output.F(summary.Hd95Px, "0.00") },
            new[] { "dark-region baseline", "0", $"{Output.F(baseSummary.Dice)} [{Output.F(baseSummary.DiceLo)}, {Output.F(baseSummary.DiceHi)}]", Output.F(baseSummary.IoU), Output.F(baseSummary.Hd95Px, "0.00") },
        }));
        Console.WriteLine($"\ndata      {dataDir}\nmodel     {modelPath}\nexamples  {Path.Combine(outDir, "eval", "examples.png")} (image | truth | model | baseline)\nsummary   {Path.Combine(outDir, "summary.json")}\ntotal     {Output.Duration(clock.Elapsed)}");
        return 0;
    }

    private static void Step(bool quiet, string text)
    {
        if (!quiet) Console.Error.WriteLine(text);
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Deploy;
using Sculpt.Pruning;
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
        (Otsu threshold + dark component at the expected LV position), prune it iteratively to 300× fewer
        parameters (steps of at most 1.5×, Taylor importance, batch-norm re-estimation, distillation from the
        dense model), export both to ONNX and time them
        in ONNX Runtime at batch 1. Everything lands in DIR (default runs/demo): data/, models/ (dense and
        pruned .sculpt and .onnx), prune.run/ (per-step log), eval/, summary.json. --quick is a small smoke
        run (~1–2 minutes). The same --seed reproduces the same Dice numbers on the same machine.

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
        var synth = new SynthOptions { Count = quick ? 160 : 400, Seed = seed, Videos = quick ? 1 : 2 };
        var arch = quick ? "unet-small" : "unet";
        var train = new TrainOptions { Epochs = quick ? 4 : 5, BatchSize = 8, Seed = seed, LearningRate = 3e-3 };
        string dataDir = Path.Combine(outDir, "data"), modelPath = Path.Combine(outDir, "models", "dense.sculpt");

        Step(json, $"1/5 synthesising {synth.Count} echo frames → {dataDir}");
        var progress = new ProgressLine { Quiet = json };
        SynthDataset.Write(dataDir, synth, (k, n) => progress.Update($"synth {ProgressLine.Bar((double)k / n)} {k}/{n}"));
        progress.Done();

        var ds = SegmentationDataset.Load(dataDir);
        var config = UNet.Preset(arch, ds.Channels, 1, ds.Height);
        Step(json, $"2/5 training {arch} ({Output.Count(UNet.Build(config).ParameterCount())} params) for {train.Epochs} epochs on {ds.Split("train").Count} frames");
        var (pkg, result) = TrainCommand.Run(ds, arch, config, train, json);
        pkg.Save(modelPath);

        Step(json, "3/5 evaluating on the test split");
        var test = ds.Split("test");
        using var model = new GraphModule(pkg.Graph, pkg.Weights);
        var preds = Evaluator.Predict(model, test, pkg.Meta.Task);
        var cases = Evaluator.Score(test, preds, ds.Height, ds.Width, ds.Labels.Count);
        var summary = Evaluator.Summarize(cases, ds.Labels, seed)[0];
        var baseline = new DarkRegionBaseline(ds.Split("train"), ds.Height, ds.Width);
        var baseCases = Evaluator.Score(test, test.Select(s => baseline.Segment(s.Image, ds.Height, ds.Width)).ToList(), ds.Height, ds.Width, ds.Labels.Count);
        var baseSummary = Evaluator.Summarize(baseCases, ds.Labels, seed)[0];

        double compression = quick ? 20 : 300;
        Step(json, $"4/5 pruning to {compression}× fewer parameters (iterative, Taylor importance, distillation)");
        var pruneOptions = new PruneOptions
        {
            Compression = compression, FineTuneEpochs = 1, FineTuneSamples = quick ? 48 : 96, FinalEpochs = quick ? 1 : 3, Distill = true, Seed = seed,
            LearningRate = 3e-3, BatchSize = 8,
        };
        var pruneLine = new ProgressLine { Quiet = json };
        var (pruned, steps) = PruneJob.Run(pkg, ds, pruneOptions, Path.Combine(outDir, "prune.run"), progress: p =>
            pruneLine.Update($"prune step {p.Step}/{p.Steps} {p.Phase}: {Output.Count(p.Params)} params ({p.Compression:0.#}×){(p.Training is { } t ? $" epoch {t.Epoch}/{t.Epochs} loss {t.Loss:0.000}" : "")}", p.Phase == "done"));
        pruneLine.Done();
        string prunedPath = Path.Combine(outDir, "models", "pruned.sculpt");
        pruned.Save(prunedPath);
        using var prunedModel = new GraphModule(pruned.Graph, pruned.Weights);
        var prunedPreds = Evaluator.Predict(prunedModel, test, pruned.Meta.Task);
        var prunedSummary = Evaluator.Summarize(Evaluator.Score(test, prunedPreds, ds.Height, ds.Width, ds.Labels.Count), ds.Labels, seed)[0];

        Step(json, "5/5 exporting to ONNX and timing batch-1 latency in ONNX Runtime");
        string denseOnnx = Path.Combine(outDir, "models", "dense.onnx"), prunedOnnx = Path.Combine(outDir, "models", "pruned.onnx");
        OnnxExport.Save(pkg, denseOnnx);
        OnnxExport.Save(pruned, prunedOnnx);
        LatencyStats denseLatency, prunedLatency;
        using (var d = new OrtModel(denseOnnx)) denseLatency = Latency.Ort(d, 1, 100);
        using (var p = new OrtModel(prunedOnnx)) prunedLatency = Latency.Ort(p, 1, 500);

        Directory.CreateDirectory(Path.Combine(outDir, "eval"));
        var examples = test.Take(6).Select((s, i) => new[]
        {
            SegmentationDataset.ToImage8(s.Image, ds.Height, ds.Width), Overlay.Draw(s.Image, s.Mask, ds.Height, ds.Width),
            Overlay.Draw(s.Image, preds[i], ds.Height, ds.Width), Overlay.Draw(s.Image, prunedPreds[i], ds.Height, ds.Width),
            Overlay.Draw(s.Image, baseline.Segment(s.Image, ds.Height, ds.Width), ds.Height, ds.Width),
        }).SelectMany(x => x).ToList();
        ImageIO.WritePng(Path.Combine(outDir, "eval", "examples.png"), Overlay.Montage(examples, 5));

        var record = new JsonObject
        {
            ["seed"] = seed, ["quick"] = quick, ["arch"] = arch, ["params"] = pkg.Graph.ParameterCount(), ["macs"] = pkg.Graph.MacCount(),
            ["val_dice"] = result.BestValDice, ["test_cases"] = test.Count,
            ["dice"] = summary.Dice, ["dice_ci"] = new JsonArray(summary.DiceLo, summary.DiceHi), ["iou"] = summary.IoU, ["hd95_px"] = Output.Num(summary.Hd95Px),
            ["baseline_dice"] = baseSummary.Dice, ["baseline_dice_ci"] = new JsonArray(baseSummary.DiceLo, baseSummary.DiceHi), ["baseline_hd95_px"] = Output.Num(baseSummary.Hd95Px),
            ["pruned_params"] = pruned.Graph.ParameterCount(), ["pruned_macs"] = pruned.Graph.MacCount(),
            ["compression"] = (double)pkg.Graph.ParameterCount() / pruned.Graph.ParameterCount(),
            ["pruned_dice"] = prunedSummary.Dice, ["pruned_dice_ci"] = new JsonArray(prunedSummary.DiceLo, prunedSummary.DiceHi), ["pruned_hd95_px"] = Output.Num(prunedSummary.Hd95Px),
            ["relative_dice_loss_percent"] = 100 * (summary.Dice - prunedSummary.Dice) / summary.Dice,
            ["latency_ms"] = new JsonObject { ["dense_p50"] = denseLatency.P50Ms, ["pruned_p50"] = prunedLatency.P50Ms },
            ["prune_steps"] = new JsonArray(steps.Select(s => (JsonNode)new JsonObject { ["step"] = s.Step, ["params"] = s.Params, ["compression"] = s.Compression, ["val_dice"] = s.ValDice }).ToArray()),
            ["model"] = modelPath, ["pruned_model"] = prunedPath, ["data"] = dataDir, ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            ["torchsharp"] = TorchRuntime.TorchSharpVersion,
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, "summary.json"), record.ToJsonString(Output.Indented));
        if (json) { Output.Json(record); return 0; }
        Console.WriteLine();
        Console.Write(Output.Table(new[] { "method", "params", "MACs", "test Dice [95% CI]", "IoU", "HD95 px", "ORT p50 ms (batch 1)" }, new[]
        {
            new[] { $"{arch} dense", Output.Count(pkg.Graph.ParameterCount()), Output.Count(pkg.Graph.MacCount()), $"{Output.F(summary.Dice)} [{Output.F(summary.DiceLo)}, {Output.F(summary.DiceHi)}]", Output.F(summary.IoU), Output.F(summary.Hd95Px, "0.00"), Output.F(denseLatency.P50Ms, "0.000") },
            new[] { $"pruned {(double)pkg.Graph.ParameterCount() / pruned.Graph.ParameterCount():0}×", Output.Count(pruned.Graph.ParameterCount()), Output.Count(pruned.Graph.MacCount()), $"{Output.F(prunedSummary.Dice)} [{Output.F(prunedSummary.DiceLo)}, {Output.F(prunedSummary.DiceHi)}]", Output.F(prunedSummary.IoU), Output.F(prunedSummary.Hd95Px, "0.00"), Output.F(prunedLatency.P50Ms, "0.000") },
            new[] { "dark-region baseline", "0", "0", $"{Output.F(baseSummary.Dice)} [{Output.F(baseSummary.DiceLo)}, {Output.F(baseSummary.DiceHi)}]", Output.F(baseSummary.IoU), Output.F(baseSummary.Hd95Px, "0.00"), "" },
        }));
        Console.WriteLine($"\nrelative Dice loss of the pruned model: {100 * (summary.Dice - prunedSummary.Dice) / summary.Dice:0.00}%; batch-1 ORT speed-up {denseLatency.P50Ms / prunedLatency.P50Ms:0.0}×");
        Console.WriteLine($"\ndata      {dataDir}\nmodels    {modelPath}, {prunedPath} (+ .onnx)\nexamples  {Path.Combine(outDir, "eval", "examples.png")} (image | truth | dense | pruned | baseline)\nsummary   {Path.Combine(outDir, "summary.json")}\ntotal     {Output.Duration(clock.Elapsed)}");
        return 0;
    }

    private static void Step(bool quiet, string text)
    {
        if (!quiet) Console.Error.WriteLine(text);
    }
}

using System.Diagnostics;
using System.Text.Json.Nodes;
using Sculpt.Onnx;
using Sculpt.Data;
using Sculpt.Deploy;
using Sculpt.Models;
using Sculpt.Pruning;
using Sculpt.Report;
using Sculpt.Runtime;
using Sculpt.Training;
using Sculpt.Common;

namespace Sculpt.Cli.Commands;

public static class DemoCommand
{
    public const string Help = """
        sculpt demo [--out DIR] [--quick] [--seed S] [--resume] [--json]
                    [--arch A] [--frames N] [--epochs E] [--compression X] [--criterion C] [--allocation A] [--max-loss L]
                    [--ft-samples N] [--max-step-ratio Q] [--min-channels C] [--final-epochs F] [--threads T]

        The paper's experiment on built-in synthetic echocardiography, end to end:
          1 synthesise N frames (default 400) → DIR/data
          2 train a dense U-Net (default `unet`, width 16, 5 epochs) → DIR/models/dense.sculpt
          3 prune iteratively to X× fewer parameters (default 1148, the published point), steps of at most Q×
            (default 1.5), Taylor importance (default; --criterion l1|l2|bn-scale|fpgm|random), batch-norm
            re-estimation, cost-aware allocation (default; --allocation global|uniform: see sculpt prune --help), a
            short fine-tune after every step (N = 64 samples at the dense model's cost), then F
            (default 20) epochs for the final model → DIR/prune.run (every step), DIR/models/pruned.sculpt.
            With --max-loss L the chosen model is instead the smallest step model whose validation Dice is within
            L (e.g. 0.04, the paper's ~4%) of the dense model's
          4 measure every step model on the test split (Dice with 95% CI) and in ONNX Runtime (batch-1
            latency, throughput) → DIR/curve.json; export dense and pruned to ONNX
          5 write DIR/report.html (see `sculpt report`) and DIR/summary.json
        --quick: a smaller model and data set (~3 minutes). --resume continues a stopped run after its last
        completed stage with the configuration stored in DIR/run.json. The same --seed reproduces the same
        Dice numbers on the same machine.

        example: sculpt demo --out runs/demo --seed 0
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "quick", "json", "resume" });
        var run = new RunFolder(a.Get("out", "runs/demo"));
        bool quick = a.Flag("quick"), json = a.Flag("json"), resume = a.Flag("resume");
        var config = new RunConfig
        {
            Seed = a.Int("seed", 0), Arch = a.Get("arch", quick ? "unet-small" : "unet"),
            Frames = a.Int("frames", quick ? 160 : 400, 20, 1_000_000), // train, val and test splits
            Epochs = a.Int("epochs", quick ? 4 : 5, 1, 10_000),
            Compression = a.Double("compression", quick ? 50 : HtmlReport.PublishedCompression, 1, 1e12),
            MinDice = null, FineTuneSamples = a.Int("ft-samples", 64, 0, 100_000_000),
            MaxStepRatio = a.Double("max-step-ratio", 1.5, 1, 1e6, aboveMin: true),
            MinChannels = a.Int("min-channels", 2, 1, 4096), Criterion = a.Get("criterion", "taylor"),
            Allocation = a.Get("allocation", "cost"), FinalEpochs = a.Int("final-epochs", quick ? 10 : 20, 0, 10_000),
        };
        double? maxLoss = a.Has("max-loss") ? a.Double("max-loss", 0, 0, 1, belowMax: true) : null;
        a.Choice("criterion", "taylor", Importance.Parse); // names checked now, not after training
        a.Choice("allocation", "cost", AllocationModes.Parse);
        a.Threads();
        a.EnsureAllUsed();
        var command = "sculpt demo " + string.Join(' ', argv);
        config.Commands.Add(command);
        if (resume)
        {
            // a resumed run keeps its stored configuration; the resuming command joins its record
            config = run.ReadConfig();
            config.Commands.Add(command);
            run.WriteConfig(config);
        }
        else if (Directory.Exists(run.Root) && Directory.EnumerateFileSystemEntries(run.Root).Any())
            throw new UsageException($"{run.Root} exists and is not empty; choose another --out, remove it, or continue it with --resume");
        else
        {
            config.MaxRelativeLoss = maxLoss;
            Directory.CreateDirectory(run.Root);
            run.WriteConfig(config);
        }

        var clock = Stopwatch.StartNew();
        void Stage(string text) => Console.Error.WriteLine(text);

        if (!File.Exists(Path.Combine(run.DataDir, "manifest.json")))
        {
            Stage($"1/5 synthesising {config.Frames} echo frames → {run.DataDir}");
            var progress = new ProgressLine();
            SynthDataset.Write(run.DataDir, new SynthOptions { Count = config.Frames, Seed = config.Seed, Videos = 2 }, (k, n) => progress.Update($"synth {ProgressLine.Bar((double)k / n)} {k}/{n}"));
            progress.Done();
        }
        var ds = SegmentationDataset.Load(run.DataDir);

        ModelPackage dense;
        if (File.Exists(run.DenseModel)) dense = ModelPackage.Load(run.DenseModel);
        else
        {
            var unet = UNet.Preset(config.Arch, ds.Channels, 1, ds.Height);
            Stage($"2/5 training {config.Arch} ({Output.Count(UNet.Build(unet).ParameterCount())} params) for {config.Epochs} epochs on {ds.Split("train").Count} frames");
            (dense, _) = TrainCommand.Run(ds, config.Arch, unet, new TrainOptions { Epochs = config.Epochs, BatchSize = 8, Seed = config.Seed, LearningRate = 3e-3 });
            dense.Save(run.DenseModel);
        }

        if (!File.Exists(run.PrunedModel))
        {
            if (config.MinDice is null && config.MaxRelativeLoss is { } loss)
            {
                config.MinDice = Math.Round(dense.Meta.Metrics["val_dice"] * (1 - loss), 6);
                run.WriteConfig(config);
            }
            string chosen = config.MinDice is { } md ? $"; chosen: smallest step with val Dice ≥ {md:0.0000}" : "";
            Stage($"3/5 pruning to {config.Compression:0.#}× fewer parameters (steps ≤ {config.MaxStepRatio}×, "
                + $"{config.Criterion} importance, {config.Allocation} allocation{chosen})");
            var (pruned, _) = PruneCommand.Run(dense, ds, new PruneOptions
            {
                Compression = config.Compression, MinDice = config.MinDice, MaxStepRatio = config.MaxStepRatio, FineTuneEpochs = 1, FineTuneSamples = config.FineTuneSamples,
                FinalEpochs = config.FinalEpochs, Distill = config.Distill, Criterion = Importance.Parse(config.Criterion), Seed = config.Seed, LearningRate = 1e-3, BatchSize = 8,
                Allocation = new AllocationOptions { MinChannels = config.MinChannels, Mode = AllocationModes.Parse(config.Allocation) },
            }, run.PruneRun, resume: true);
            pruned.Save(run.PrunedModel);
        }

        if (!File.Exists(run.CurvePath))
        {
            Stage("4/5 measuring every step model: test Dice, ONNX Runtime latency and throughput");
            var line = new ProgressLine();
            Curve.Measure(run, config.Seed, progress: s => line.Update(s)).Write(run.CurvePath);
            line.Done();
        }
        if (!File.Exists(run.DenseOnnx)) OnnxExport.Save(dense, run.DenseOnnx);
        if (!File.Exists(run.PrunedOnnx)) OnnxExport.Save(ModelPackage.Load(run.PrunedModel), run.PrunedOnnx);

        Stage($"5/5 writing {run.ReportPath}");
        HtmlReport.Write(run, run.ReportPath);
        HtmlReport.WriteMainPlotPng(run, run.MainPlotPath);
        var curve = Curve.Read(run.CurvePath);
        var record = Summary(run, config, ds, curve, clock.Elapsed);
        AtomicFile.WriteAllText(Path.Combine(run.Root, "summary.json"), record.ToJsonString(Output.Indented));
        if (json) { Output.Json(record); return 0; }

        Console.WriteLine();
        Console.Write(PruneCommand.StepTable(run.ReadSteps()));
        Console.WriteLine();
        var baseline = record["baseline"]!;
        Console.Write(Output.Table(new[] { "model", "params", "MACs", "compression", "test Dice [95% CI]", "HD95 px", "ORT p50 ms (batch 1)", "frames/s" },
            curve.Points.Where(p => p.Step == 0 || p.Name.StartsWith("pruned") || p.Name.StartsWith(Curve.ControlPrefix)).Select(p => new[]
            {
                p.Name, Output.Count(p.Params), Output.Count(p.Macs), $"{p.Compression:0.0}×", $"{Output.F(p.TestDice)} [{Output.F(p.TestDiceLo)}, {Output.F(p.TestDiceHi)}]",
                Output.F(p.Hd95Px ?? double.NaN, "0.00"), Output.F(p.LatencyP50Ms, "0.000"), Output.F(p.ThroughputFps, "0"),
            }).Append(new[] { "dark-region baseline", "0", "0", "", $"{Output.F(baseline["dice"]!.GetValue<double>())} [{Output.F(baseline["dice_ci"]![0]!.GetValue<double>())}, {Output.F(baseline["dice_ci"]![1]!.GetValue<double>())}]", "", "", "" })));
        var d = curve.Points.First(p => p.Step == 0);
        var f = curve.Points.Last(p => p.Name.StartsWith("pruned"));
        // a dense model that found nothing (Dice 0, as after one epoch on tiny data) has no relative loss to speak of
        string relativeLoss = d.TestDice > 0 ? $"{100 * (d.TestDice - f.TestDice) / d.TestDice:0.00}%" : "undefined (dense test Dice 0)";
        Console.WriteLine($"\n{f.Compression:0}× fewer parameters, relative test Dice loss {relativeLoss}, "
            + $"batch-1 ORT speed-up {d.LatencyP50Ms / f.LatencyP50Ms:0.0}×{(curve.Output is { } output ? $"; output: {output}" : "")}");
        Console.WriteLine($"\nreport    {run.ReportPath}\ndata      {run.DataDir}\nmodels    {run.DenseModel}, {run.PrunedModel} (+ .onnx)\nsteps     {run.StepsLog}\nsummary   {Path.Combine(run.Root, "summary.json")}\ntotal     {Output.Duration(clock.Elapsed)}");
        return 0;
    }

    private static JsonObject Summary(RunFolder run, RunConfig config, SegmentationDataset ds, Curve curve, TimeSpan elapsed)
    {
        var test = ds.Split("test");
        var baseline = new DarkRegionBaseline(ds.Split("train"), ds.Height, ds.Width);
        var baseSummary = Evaluator.Summarize(Evaluator.Score(test, test.Select(s => baseline.Segment(s.Image, ds.Height, ds.Width)).ToList(), ds.Height, ds.Width, ds.Labels.Count), ds.Labels, config.Seed)[0];
        JsonObject Point(CurvePoint p) => new()
        {
            ["params"] = p.Params, ["macs"] = p.Macs, ["compression"] = p.Compression, ["dice"] = p.TestDice, ["dice_ci"] = new JsonArray(p.TestDiceLo, p.TestDiceHi),
            ["hd95_px"] = p.Hd95Px, ["latency_ms"] = new JsonObject { ["p50"] = p.LatencyP50Ms, ["p95"] = p.LatencyP95Ms }, ["throughput_fps"] = p.ThroughputFps,
        };
        var dense = curve.Points.First(p => p.Step == 0);
        var pruned = curve.Points.Last(p => p.Name.StartsWith("pruned"));
        var prunedWeights = curve.Points.FirstOrDefault(p => p.Name == Curve.PrunedWeightsName);
        return new JsonObject
        {
            ["seed"] = config.Seed, ["arch"] = config.Arch, ["test_cases"] = test.Count, ["dense"] = Point(dense), ["pruned"] = Point(pruned),
            ["output"] = curve.Output,
            ["pruned_weights"] = prunedWeights is null ? null : Point(prunedWeights),
            ["relative_dice_loss_percent"] = dense.TestDice > 0 ? 100 * (dense.TestDice - pruned.TestDice) / dense.TestDice : null,
            ["speedup_batch1"] = dense.LatencyP50Ms / pruned.LatencyP50Ms,
            ["controls"] = new JsonArray(curve.Points.Where(p => p.Name.StartsWith(Curve.ControlPrefix))
                .Select(p => { var o = Point(p); o["name"] = p.Name; return (JsonNode)o; }).ToArray()),
            ["baseline"] = new JsonObject { ["dice"] = baseSummary.Dice, ["dice_ci"] = new JsonArray(baseSummary.DiceLo, baseSummary.DiceHi), ["hd95_px"] = Output.Num(baseSummary.Hd95Px) },
            ["curve"] = new JsonArray(curve.Points.Select(p => (JsonNode)new JsonObject { ["name"] = p.Name, ["step"] = p.Step, ["compression"] = p.Compression, ["params"] = p.Params, ["val_dice"] = p.ValDice, ["dice"] = p.TestDice, ["latency_ms"] = p.LatencyP50Ms }).ToArray()),
            ["peak_gflops"] = curve.PeakGflops, ["report"] = run.ReportPath, ["seconds"] = Math.Round(elapsed.TotalSeconds, 1),
        };
    }
}

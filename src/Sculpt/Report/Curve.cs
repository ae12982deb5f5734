using System.Diagnostics;
using System.Text.Json;
using Sculpt.Data;
using Sculpt.Deploy;
using Sculpt.Graph;
using Sculpt.Runtime;
using Sculpt.Training;
using Sculpt.Common;

namespace Sculpt.Report;

/// <summary>One model of a run measured on the test split and in ONNX Runtime.</summary>
public sealed record CurvePoint(string Name, int Step, long Params, long Macs, double Compression, double? ValDice,
    double TestDice, double TestDiceLo, double TestDiceHi, double? Hd95Px, double LatencyP50Ms, double LatencyP95Ms, double ThroughputFps, int ThroughputBatch)
{
    /// <summary>Achieved arithmetic rate at batch 1: 2·MACs per frame over the median latency.</summary>
    public double Gflops => 2.0 * Macs / (LatencyP50Ms / 1000) / 1e9;
}

/// <summary>The compression/quality/speed curve of a run: every step model plus the final pruned model.</summary>
/// <param name="Output">Which network the run output (<see cref="Pruning.Outputs"/>); null in curves measured before it was recorded.</param>
public sealed record Curve(List<CurvePoint> Points, double PeakGflops, int Threads, MachineInfo Machine, DateTime MeasuredUtc, List<string> Missing,
    string? Output = null)
{
    public static Curve Read(string path)
    {
        try { return JsonSerializer.Deserialize<Curve>(Common.InputFile.ReadText(path, "curve file"), NetworkGraph.JsonOptions) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a curve file: {e.Message}"); }
    }

    public void Write(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, NetworkGraph.JsonOptions));

    /// <summary>Names of the points that are from-scratch controls, not pruning results.</summary>
    public const string ControlPrefix = "from scratch";

    /// <summary>The fine-tuned pruned weights, a point of their own when the run's output is the retrained architecture.</summary>
    public const string PrunedWeightsName = "pruned weights, fine-tuned";

    /// <summary>
    /// Measures every step model listed in the run's steps.jsonl and the final pruned model: test Dice with a
    /// 95% bootstrap CI, HD95, ORT batch-1 latency and throughput at <paramref name="batch"/>, with the
    /// process's ORT threads. A step whose model file is missing is recorded in <see cref="Missing"/>.
    /// </summary>
    public static Curve Measure(RunFolder run, int seed, int threads = 0, int batch = 16, Action<string>? progress = null)
    {
        var steps = run.ReadSteps();
        var dense = ModelPackage.Load(run.DenseModel);
        var task = dense.Meta.Task;
        var ds = SegmentationDataset.Load(run.DataDir, task.InputHeight, task.InputWidth);
        var test = ds.Split("test");
        if (test.Count == 0) throw new DatasetException($"{run.DataDir}: the curve needs a non-empty test split");
        double denseParams = dense.Graph.ParameterCount();
        var points = new List<CurvePoint>();
        var missing = new List<string>();
        var models = steps.Select(s => (Name: s.Step == 0 ? "dense" : $"step {s.Step}", Path: run.StepModel(s.Step), s.Step, (double?)s.ValDice)).ToList();
        int lastStep = steps.Count == 0 ? 0 : steps[^1].Step;
        // when the output is a network trained from scratch, the fine-tuned pruned weights are measured too (listed
        // first: the last "pruned" point is the output)
        var prunedWeights = Pruning.PruneJob.PrunedWeightsPath(run.PruneRun);
        // loaded once: which network it is decides the list, and it is measured below
        var pruned = File.Exists(run.PrunedModel) ? ModelPackage.Load(run.PrunedModel) : null;
        if (File.Exists(prunedWeights) && pruned != null && Pruning.Outputs.Of(pruned.Meta) != Pruning.Outputs.PrunedWeights)
            models.Add((PrunedWeightsName, prunedWeights, lastStep, null));
        models.Add(("pruned (final)", run.PrunedModel, lastStep, null));
        // the prune run's from-scratch controls (Pruning.ScratchControl), when it trained them
        foreach (var (kind, what) in new[] { ("scratch", "pruned architecture"), ("uniform", "uniform width") })
        {
            var control = Path.Combine(run.PruneRun, $"control-{kind}.sculpt");
            if (File.Exists(control)) models.Add(($"{ControlPrefix}: {what}", control, steps.Count == 0 ? 0 : steps[^1].Step, null));
        }
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < models.Count; i++)
        {
            var (name, path, step, valDice) = models[i];
            if (!File.Exists(path)) { missing.Add(Path.GetRelativePath(run.Root, path)); continue; }
            progress?.Invoke($"curve {i + 1}/{models.Count} {name}: test Dice and ONNX Runtime latency (elapsed {clock.Elapsed:mm\\:ss})");
            var model = i == 0 ? dense : path == run.PrunedModel && pruned != null ? pruned : ModelPackage.Load(path);
            if (name.StartsWith("pruned") || name.StartsWith(ControlPrefix)) valDice = model.Meta.Metrics.TryGetValue("val_dice", out var v) ? v : null;
            // the control's budget is in its own meta.json, read here rather than by loading the model a second time
            if (name.StartsWith(ControlPrefix))
                name += $" ({Pruning.ScratchControl.BudgetLabel(model.Meta.Metrics.TryGetValue("budget_scale", out var scale) ? scale : 1)})";
            MetricSummary summary;
            using (var module = new GraphModule(model.Graph, model.Weights))
                summary = Evaluator.Evaluate(test, Evaluator.Predict(module, test, task), task, ds.Labels, seed).Summary[0];
            using var ort = OrtModel.Fastest(level => OrtModel.FromPackage(model, threads, level));
            var single = Latency.Ort(ort, 1, runs: 200);
            var many = Latency.Ort(ort, batch, runs: 30);
            long p = model.Graph.ParameterCount();
            points.Add(new CurvePoint(name, step, p, model.Graph.MacCount(), denseParams / p, valDice, summary.Dice, summary.DiceLo, summary.DiceHi,
                double.IsNaN(summary.Hd95Px) ? null : summary.Hd95Px, single.P50Ms, single.P95Ms, many.ThroughputFps, batch));
        }
        return new Curve(points, Latency.PeakGflops(threads), threads > 0 ? threads : Environment.ProcessorCount, MachineInfo.Current(), DateTime.UtcNow, missing,
            pruned is null ? null : Pruning.Outputs.Of(pruned.Meta));
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Runtime;
using Sculpt.Training;
using TorchSharp;
using static TorchSharp.torch;
using Sculpt.Common;

namespace Sculpt.Pruning;

public sealed record PruneOptions
{
    public Criterion Criterion { get; init; } = Criterion.Taylor;
    public AllocationOptions Allocation { get; init; } = new();
    /// <summary>Target: dense/pruned parameter ratio, or absolute caps.</summary>
    public double? Compression { get; init; }
    public long? MaxParams { get; init; }
    public long? MaxMacs { get; init; }
    /// <summary>A batch-1 latency target on this machine, planned as a MAC target (<see cref="LatencyBudget.Plan"/>).</summary>
    public LatencyPlan? Latency { get; init; }
    /// <summary>Keep the smallest step model whose validation Dice is at least this.</summary>
    public double? MinDice { get; init; }
    /// <summary>Minimum number of steps; more are planned when needed to keep each step within <see cref="MaxStepRatio"/>.</summary>
    public int Steps { get; init; } = 6;
    /// <summary>
    /// Largest reduction of the budget metric in one step. Removing half of every layer's channels at once
    /// (a 4× step) left a trained U-Net at Dice 0 that one epoch of fine-tuning did not recover; 1.5× steps
    /// kept it above 0.94 before fine-tuning (bench/RESULTS.md).
    /// </summary>
    public double MaxStepRatio { get; init; } = 1.5;
    /// <summary>
    /// Samples drawn (seeded) for each step's fine-tuning, at the starting model's cost: a step whose model
    /// needs k× fewer MACs gets k× more samples (equal compute per step), up to the whole training split.
    /// Late steps are where quality is lost and where fine-tuning is cheap. 0 = the whole training split.
    /// </summary>
    public int FineTuneSamples { get; init; }
    public int FineTuneEpochs { get; init; } = 2;
    public int FinalEpochs { get; init; } = 6;
    public bool Distill { get; init; }
    public double DistillWeight { get; init; } = 1.0;
    /// <summary>"mse" on logits or "soft" targets: <see cref="Distillation.Loss"/>.</summary>
    public string DistillLoss { get; init; } = "mse";
    public int CalibrationBatches { get; init; } = 8;
    /// <summary>Re-estimate batch-norm statistics on calibration batches right after slicing.</summary>
    public bool RecalibrateBatchNorm { get; init; } = true;
    /// <summary>Give a network exported with folded batch norms batch norms back first (<see cref="BatchNormRestore"/>).</summary>
    public bool RestoreBatchNorm { get; init; }
    public int BatchSize { get; init; } = 8;
    public double LearningRate { get; init; } = 1e-3;
    public int Seed { get; init; }
    /// <summary>Validation Dice drop (absolute) after a step's fine-tune that counts as a collapse and triggers a back-off.</summary>
    public double CollapseDrop { get; init; } = 0.2;
    public int MaxBackoffs { get; init; } = 2;
    /// <summary>Train the from-scratch controls (<see cref="ScratchControl"/>) after pruning.</summary>
    public bool Control { get; init; } = true;
    /// <summary>
    /// The run's output is whichever of the fine-tuned pruned weights and the two controls scores the highest validation
    /// Dice (<see cref="Outputs"/>). The pruned architecture retrained from scratch: pruning then served as the search
    /// for the architecture (Liu et al., "Rethinking the Value of Network Pruning", 2019); measured on the demo over
    /// three seeds, it had the higher test Dice in every one. The uniform-width network, when it also fits the target:
    /// where it validated higher (10 of 30 runs measured, unet-classic at 1148× among them) its test Dice was higher
    /// in 9 and 0.0002 lower in one (bench/RESULTS.md). It costs nothing beyond the controls; the fine-tuned pruned
    /// weights stay in the run folder (pruned-weights.sculpt).
    /// </summary>
    public bool AdoptRetrained { get; init; } = true;
    /// <summary>
    /// Learning rate of the controls' training from scratch: five times <c>sculpt train</c>'s. A network of a few
    /// thousand parameters has few weights to carry its logits and Adam moves each by about the learning rate per
    /// step: at 2e-3 the demo's 1,681- and 1,851-parameter controls ended unconfident (training loss 0.6–0.9) or
    /// never crossed the threshold (Dice 0); at 1e-2 all eight runs trained (bench/RESULTS.md).
    /// </summary>
    public double ScratchLearningRate { get; init; } = 1e-2;
    /// <summary>
    /// The controls' sample budget as a multiple of the pruned model's (1: the same, the fair comparison). Above 1 the
    /// retrained output buys quality with training the pruning did not get: on EchoNet-format data 2× cut the mean loss
    /// of four 1148× runs from 1.34% to 0.50% (bench/RESULTS.md), at about a second per epoch of a 1,700-parameter net.
    /// </summary>
    public double ControlBudgetScale { get; init; } = 1;
}

/// <summary>One pruning step; <see cref="FineTuneSamples"/> counts the samples its fine-tuning saw (all attempts), so budgets compare.</summary>
public sealed record StepRecord(int Step, long Params, long Macs, double Compression, double ValDice, double WallSeconds, string Note,
    Dictionary<string, int> Widths, long FineTuneSamples = 0);

/// <summary>
/// Where a prune run is; <paramref name="ValDice"/> is the network's latest validation Dice (while a phase trains, its
/// last epoch's; null before the first).
/// </summary>
public sealed record PruneProgress(int Step, int Steps, string Phase, long Params, double Compression, double? ValDice, TimeSpan Eta, Training.Progress? Training);

public sealed class PruneException(string message) : Exception(message);

/// <summary>Which network a prune run output (meta.json's final pruning entry, "output"; prune --json's "output").</summary>
public static class Outputs
{
    public const string PrunedWeights = "pruned weights", Retrained = "retrained from scratch", UniformWidth = "uniform width from scratch";

    /// <summary>The output recorded in a pruned model's meta.json (models pruned before it was recorded: the pruned weights).</summary>
    public static string Of(ModelMeta meta) =>
        meta.PruningHistory.LastOrDefault()?["output"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : PrunedWeights;
}

/// <summary>
/// Iterative structured pruning: each step scores channels, allocates a geometric share of the remaining
/// reduction, slices a smaller graph, fine-tunes (optionally distilling from the dense model) and checks
/// validation Dice, backing off when it collapses. A run folder records every step (steps.jsonl, one model
/// per step, state.json) so an interrupted run resumes after its last completed step.
/// </summary>
public static class PruneJob
{
    public static Budget TargetBudget(NetworkGraph dense, PruneOptions o)
    {
        int given = new[] { o.Compression.HasValue, o.MaxParams.HasValue, o.MaxMacs.HasValue, o.Latency is not null }.Count(g => g);
        if (given != 1) throw new ArgumentException("give exactly one target: a compression, a parameter count, a MAC count or a latency");
        if (o.Compression is { } x)
            return x >= 1 ? new Budget("params", dense.ParameterCount() / x) : throw new ArgumentException($"the compression must be ≥ 1, got {x}");
        if (o.MaxParams is { } p)
            return p >= 1 ? new Budget("params", p) : throw new ArgumentException($"the parameter target must be ≥ 1, got {p}");
        long macs = o.Latency?.MaxMacs ?? o.MaxMacs!.Value;
        if (macs < 1) throw new ArgumentException($"the MAC target must be ≥ 1, got {macs}");
        return new Budget("macs", macs);
    }

    /// <summary>Checks the target is reachable at all before any work is done.</summary>
    public static void CheckReachable(NetworkGraph dense, PruneOptions o)
    {
        var budget = TargetBudget(dense, o);
        var groups = ChannelGroups.Analyze(dense);
        if (!groups.Prunable.Any()) throw new PruneException("the graph has no prunable channel group");
        var unbounded = o.Allocation with { MaxGroupRatio = 1.0 };
        double floor = Allocation.Floor(groups, budget, unbounded);
        if (floor > budget.Value)
            throw new PruneException($"target of {budget.Value:N0} {budget.Metric} cannot be reached: with every prunable group at its minimum width ({o.Allocation.MinChannels} channels) the graph still has {floor:N0} {budget.Metric} (at most {budget.Measure(dense) / floor:0.#}× smaller)");
    }

    public static (ModelPackage Model, List<StepRecord> Steps) Run(ModelPackage dense, SegmentationDataset ds, PruneOptions o, string runDir,
        bool resume = false, Action<PruneProgress>? progress = null)
    {
        CheckReachable(dense.Graph, o);
        var task = dense.Meta.Task;
        _ = DataFit.Check(ds, task, DataUse.Prune); // the command line shows the warning
        var train = ds.Split("train");
        var val = ds.Split("val");
        if (train.Count == 0 || val.Count == 0) throw new DatasetException($"{ds.Source}: pruning needs non-empty train and val splits");
        if (o.RestoreBatchNorm) dense = BatchNormRestore.Apply(dense, CalibrationBatches(train, task, o.CalibrationBatches, o.BatchSize, o.Seed));
        // the budget counts the model as given: restored batch norms are part of what pruning must fit in it
        var budget = TargetBudget(dense.Graph, o);
        double denseParams = dense.Graph.ParameterCount();
        double start = budget.Measure(dense.Graph);
        long startMacs = dense.Graph.MacCount();
        Directory.CreateDirectory(runDir);
        var stepsPath = Path.Combine(runDir, "steps.jsonl");
        var statePath = Path.Combine(runDir, "state.json");
        var records = new List<StepRecord>();
        var current = dense;
        int firstStep = 1;
        var clock = Stopwatch.StartNew();

        // hashed once: for unet-classic that is serialising 124 MB of weights
        string denseHash = dense.ContentHash();
        var identity = StepsIdentity(denseHash, train, val, o, budget);
        if (resume && File.Exists(statePath))
        {
            int done = 0;
            JsonObject? madeWith = null;
            ResumeState.Read(statePath, () =>
            {
                var state = JsonNode.Parse(Common.InputFile.ReadText(statePath, "resume state")) as JsonObject ?? throw new JsonException("not an object");
                done = ResumeState.Int(state, "completed_step");
                if (done < 0 || done > 100_000) throw new JsonException($"completed_step {done} is out of range");
                madeWith = ResumeState.MadeWith(state);
            });
            ResumeState.CheckMadeWith(statePath, madeWith, identity, "model, data and options (or give another --run)");
            ResumeState.Read(stepsPath, () =>
            {
                records = Common.InputFile.ReadLines(stepsPath, "step log").Where(l => l.Length > 0)
                    .Select(l => JsonSerializer.Deserialize<StepRecord>(l, NetworkGraph.JsonOptions) ?? throw new JsonException("null record"))
                    .Where(r => r.Step <= done).ToList();
                if (records.Count == 0 || records[0].Step != 0) throw new JsonException("the dense model's record (step 0) is missing");
            });
            if (done > 0) current = ModelPackage.Load(StepModelPath(runDir, done));
            firstStep = done + 1;
        }
        else
        {
            foreach (var f in Directory.GetFiles(runDir, "step_*.sculpt")) File.Delete(f);
            // a resumed run reads its latency plan back rather than timing again (timing twice never gives the same MACs)
            if (o.Latency is { } plan) LatencyBudget.Save(plan, runDir);
            else File.Delete(Path.Combine(runDir, LatencyBudget.FileName));
            using var denseModule = new GraphModule(dense.Graph, dense.Weights);
            var rec0 = new StepRecord(0, dense.Graph.ParameterCount(), dense.Graph.MacCount(), 1, Evaluator.MeanDice(denseModule, val, task), 0, "dense",
                Widths(ChannelGroups.Analyze(dense.Graph)));
            records.Add(rec0);
            AtomicFile.WriteAllText(stepsPath, JsonSerializer.Serialize(rec0, LineJson) + "\n");
            WriteState(statePath, 0, o, identity);
        }

        using var teacher = o.Distill ? new GraphModule(dense.Graph, dense.Weights) : null;
        teacher?.eval();
        var distill = teacher is null ? null : Distillation.Loss(teacher, o.DistillLoss, o.DistillWeight);

        // Planned steps shrink geometrically from the current size to the target; a back-off leaves the step
        // smaller than planned, so the remaining steps re-plan from where it ended and, if needed, extra steps
        // (at most as many again) follow until the target is reached.
        string? stoppedEarly = null;
        int plannedSteps = Math.Max(o.Steps, (int)Math.Ceiling(Math.Log(start / budget.Value) / Math.Log(o.MaxStepRatio) - 1e-9));
        for (int step = firstStep; step <= 2 * plannedSteps && !budget.Fits(current.Graph); step++)
        {
            int remaining = Math.Max(1, plannedSteps - step + 1);
            double currentMeasure = budget.Measure(current.Graph);
            double stepBudget = remaining == 1 ? budget.Value : currentMeasure * Math.Pow(budget.Value / currentMeasure, 1.0 / remaining);
            int shownSteps = Math.Max(plannedSteps, step);
            double previousDice = records[^1].ValDice;
            string note = "";
            long samplesSeen = 0;
            ModelPackage? accepted = null;
            double acceptedDice = 0;
            for (int attempt = 0; ; attempt++)
            {
                var stepClock = Stopwatch.StartNew();
                progress?.Invoke(new PruneProgress(step, shownSteps, "scoring", current.Graph.ParameterCount(), denseParams / current.Graph.ParameterCount(), previousDice, Eta(clock, step - firstStep, shownSteps - step + 1), null));
                var (candidate, measured) = PruneOnce(current, train, task, o, new Budget(budget.Metric, stepBudget), o.Seed + step * 101 + attempt);
                using var module = new GraphModule(candidate.Graph, candidate.Weights);
                double stepDice = Evaluator.MeanDice(module, val, task);
                if (o.FineTuneEpochs > 0)
                {
                    var ftSamples = train;
                    int sampleCount = FineTuneSampleCount(o.FineTuneSamples, startMacs, candidate.Graph.MacCount(), train.Count);
                    if (sampleCount < train.Count)
                    {
                        var order = Enumerable.Range(0, train.Count).ToArray();
                        new Random(o.Seed + step * 13 + attempt).Shuffle(order);
                        ftSamples = order.Take(sampleCount).Select(i => train[i]).ToList();
                    }
                    samplesSeen += (long)ftSamples.Count * o.FineTuneEpochs;
                    var ft = Trainer.Train(module, ftSamples, val, task, new TrainOptions
                    {
                        Epochs = o.FineTuneEpochs, BatchSize = o.BatchSize, LearningRate = o.LearningRate, Seed = o.Seed + step * 1009 + attempt, ExtraLoss = distill,
                    }, p => progress?.Invoke(new PruneProgress(step, shownSteps, "fine-tune", candidate.Graph.ParameterCount(), denseParams / candidate.Graph.ParameterCount(), previousDice, Eta(clock, step - firstStep, shownSteps - step + 1), p)));
                    // a short fine-tune from a fresh optimiser can do more harm than good (Adam's first steps move every
                    // weight by about the learning rate): keep the sliced weights when it did not help
                    if (ft.BestValDice > stepDice)
                    {
                        stepDice = ft.BestValDice;
                        candidate = new ModelPackage(candidate.Graph, ft.BestWeights, candidate.Meta);
                    }
                }
                if (previousDice - stepDice > o.CollapseDrop)
                {
                    note += $"backoff: Dice {stepDice:0.000} at {measured:N0} {budget.Metric}; ";
                    if (attempt < o.MaxBackoffs)
                    {
                        // collapse guard: retry with half (geometrically) of this step's reduction
                        stepBudget = Math.Sqrt(currentMeasure * stepBudget);
                        continue;
                    }
                    // every attempt collapsed: without a retraining to come, keep the last good model
                    if (!ContinuesThroughCollapse(o)) break;
                    note += ContinuedThroughCollapse + "; ";
                }
                var rec = new StepRecord(step, candidate.Graph.ParameterCount(), candidate.Graph.MacCount(), denseParams / candidate.Graph.ParameterCount(),
                    stepDice, stepClock.Elapsed.TotalSeconds, note.TrimEnd(' ', ';'), Widths(ChannelGroups.Analyze(candidate.Graph)), samplesSeen);
                var meta = WithHistory(current.Meta, denseHash, rec, records[^1], o);
                accepted = new ModelPackage(candidate.Graph, candidate.Weights, meta);
                accepted.Save(StepModelPath(runDir, step));
                File.AppendAllText(stepsPath, JsonSerializer.Serialize(rec, LineJson) + "\n");
                WriteState(statePath, step, o, identity);
                records.Add(rec);
                acceptedDice = stepDice;
                break;
            }
            if (accepted is null)
            {
                stoppedEarly = $"stopped at step {step}: {note.TrimEnd(' ', ';')}";
                break;
            }
            current = accepted;
            progress?.Invoke(new PruneProgress(step, shownSteps, "done", current.Graph.ParameterCount(), denseParams / current.Graph.ParameterCount(), acceptedDice, Eta(clock, step - firstStep + 1, Math.Max(0, plannedSteps - step)), null));
        }

        // choose: the final model, or with --min-dice the smallest step model that meets it
        var chosenRecord = records[^1];
        if (o.MinDice is { } minDice)
        {
            var ok = records.Where(r => r.Step > 0 && r.ValDice >= minDice).OrderBy(r => r.Params).FirstOrDefault();
            chosenRecord = ok ?? records.Where(r => r.Step > 0).OrderBy(r => r.Step).FirstOrDefault() ?? records[0];
            if (chosenRecord.Step != records[^1].Step) current = chosenRecord.Step == 0 ? dense : ModelPackage.Load(StepModelPath(runDir, chosenRecord.Step));
        }
        double finalDice = chosenRecord.ValDice;
        // the phases after the steps show the number of steps taken, not the planned minimum (--steps)
        int stepsTaken = records[^1].Step;
        // the final fine-tune is sized for the target; a run that stopped far above it (a much larger model)
        // gets proportionally fewer epochs, at least one
        int finalEpochs = o.FinalEpochs;
        if (finalEpochs > 0 && stoppedEarly is not null && o.MinDice is null)
            finalEpochs = Math.Max(1, (int)Math.Round(o.FinalEpochs * Math.Min(1.0, budget.Value / budget.Measure(current.Graph))));
        if (finalEpochs > 0)
        {
            using var module = new GraphModule(current.Graph, current.Weights);
            var ft = Trainer.Train(module, train, val, task, new TrainOptions
            {
                Epochs = finalEpochs, BatchSize = o.BatchSize, LearningRate = o.LearningRate, Seed = o.Seed + 77777, ExtraLoss = distill,
            }, p => progress?.Invoke(new PruneProgress(stepsTaken, stepsTaken, "final fine-tune", current.Graph.ParameterCount(),
                denseParams / current.Graph.ParameterCount(), p.ValDice ?? chosenRecord.ValDice, p.Eta, p)));
            if (ft.BestValDice >= finalDice) { current = new ModelPackage(current.Graph, ft.BestWeights, current.Meta); finalDice = ft.BestValDice; }
        }
        current.Meta.Metrics["val_dice"] = Math.Round(finalDice, 6);
        current.Meta.Metrics["compression"] = Math.Round(denseParams / current.Graph.ParameterCount(), 3);
        long fineTuneSamples = records.Sum(r => r.FineTuneSamples) + (long)train.Count * finalEpochs;
        var (controls, candidates) = o.Control
            ? Controls(dense, current, fineTuneSamples, train, val, o, runDir, stepsTaken, progress) : (null, []);
        double prunedWeightsDice = finalDice;
        long prunedWeightsParams = current.Graph.ParameterCount();
        string output = Outputs.PrunedWeights;
        if (candidates.Count > 0)
        {
            // kept whichever the output is, so every candidate can be evaluated on the test split
            current.Save(PrunedWeightsPath(runDir));
            if (o.AdoptRetrained && ChooseOutput(current.Graph, finalDice, candidates, budget) is { } chosen)
            {
                current = new ModelPackage(chosen.Model.Graph, chosen.Model.Weights, current.Meta);
                finalDice = chosen.ValDice;
                output = chosen.Output;
            }
        }
        if (LastGoodBeforeCollapse(records) is { } lastGood && finalDice < lastGood.ValDice - o.CollapseDrop)
        {
            // the architecture at the target did not train either: fall back to what stopping at the collapse gave
            stoppedEarly = $"stopped at step {lastGood.Step + 1}: every attempt collapsed, and the architecture pruning went on to "
                + $"reached validation Dice {finalDice:0.000} at best, retrained included; output: step {lastGood.Step}'s model";
            current = lastGood.Step == 0 ? dense : ModelPackage.Load(StepModelPath(runDir, lastGood.Step));
            finalDice = lastGood.ValDice;
            output = Outputs.PrunedWeights;
        }
        // the output's own numbers (the fine-tuned pruned weights got theirs above, before their file was written)
        current.Meta.Metrics["val_dice"] = Math.Round(finalDice, 6);
        current.Meta.Metrics["compression"] = Math.Round(denseParams / current.Graph.ParameterCount(), 3);
        current.Meta.PruningHistory.Add(new JsonObject
        {
            ["phase"] = "final", ["selected_step"] = chosenRecord.Step, ["epochs"] = finalEpochs, ["val_dice"] = finalDice, ["min_dice"] = o.MinDice,
            ["fine_tune_samples"] = fineTuneSamples, ["output"] = output, ["pruned_weights_val_dice"] = prunedWeightsDice,
            ["pruned_weights_params"] = prunedWeightsParams,
            ["controls"] = controls,
            ["target_reached"] = budget.Fits(current.Graph), ["stopped_early"] = stoppedEarly,
        });
        return (current, records);
    }

    /// <summary>
    /// The candidate with the highest validation Dice above the fine-tuned pruned weights' (the first of equals), or null
    /// when none beats them. The uniform network is sized by parameters, so every candidate must also fit the target's
    /// own measure (MACs, say) or, where the run stopped short of the target, be no larger than the pruned model.
    /// </summary>
    public static (string Output, ModelPackage Model, double ValDice)? ChooseOutput(NetworkGraph prunedGraph, double prunedWeightsDice,
        IEnumerable<(string Output, ModelPackage Model, double ValDice)> candidates, Budget budget)
    {
        var allowed = budget with { Value = Math.Max(budget.Value, budget.Measure(prunedGraph)) };
        (string, ModelPackage, double)? best = null;
        double bestDice = prunedWeightsDice;
        foreach (var c in candidates)
            if (c.ValDice > bestDice && allowed.Fits(c.Model.Graph)) { best = c; bestDice = c.ValDice; }
        return best;
    }

    /// <summary>Marks, in a step's note, a step accepted although every attempt collapsed.</summary>
    public const string ContinuedThroughCollapse = "collapsed: continued for the architecture, which the controls retrain";

    /// <summary>
    /// Whether a step that collapses in every attempt is accepted and pruning goes on to the target. When the output may be
    /// the pruned architecture retrained from scratch, pruning is a search for that architecture, and a collapse of the
    /// pruned weights says little about it: the L1 and BN-scale runs on EchoNet-format data that stopped at 52× and 83×
    /// went on to 1148× this way, and their retrained architectures lost 1.33% and 0.93% (Taylor's on that dense model:
    /// 1.56%; bench/RESULTS.md). Without the retraining the collapsed weights would be the output, so the run stops and
    /// keeps the last good model.
    /// </summary>
    public static bool ContinuesThroughCollapse(PruneOptions o) => o.Control && o.AdoptRetrained;

    /// <summary>The last step before the first one accepted through a collapse (this run's or a resumed one's), if any.</summary>
    private static StepRecord? LastGoodBeforeCollapse(List<StepRecord> records)
    {
        int first = records.FindIndex(r => r.Note.Contains(ContinuedThroughCollapse, StringComparison.Ordinal));
        return first > 0 ? records[first - 1] : null;
    }

    /// <summary>
    /// The two from-scratch controls with the pruned model's whole sample budget (dense training, when the dense model's
    /// meta.json records it, plus every fine-tune); their models and results land in the run folder (controls.json).
    /// </summary>
    /// <returns>The summary (controls.json) and both trained networks as candidates for the output, with their validation Dice.</returns>
    private static (JsonObject Summary, List<(string Output, ModelPackage Model, double ValDice)> Candidates) Controls(ModelPackage dense,
        ModelPackage pruned, long fineTuneSamples, IReadOnlyList<Sample> train, IReadOnlyList<Sample> val, PruneOptions o, string runDir,
        int stepsTaken, Action<PruneProgress>? progress)
    {
        var candidates = new List<(string, ModelPackage, double)>();
        long denseSamples = ScratchControl.DenseTrainingSamples(dense.Meta);
        long budget = (long)Math.Round((denseSamples + fineTuneSamples) * o.ControlBudgetScale);
        var results = new JsonArray();
        foreach (var (kind, output, description, graph) in new[]
        {
            ("scratch", Outputs.Retrained, "the pruned architecture, re-initialised", pruned.Graph),
            ("uniform", Outputs.UniformWidth, "the dense architecture at one uniform width",
                ScratchControl.UniformWidth(dense.Graph, pruned.Graph.ParameterCount(), o.Allocation.MinChannels)),
        })
        {
            var (result, model) = ScratchControl.Train(kind, description, graph, budget, train, val, dense.Meta, o, o.Seed + (kind == "scratch" ? 515 : 919),
                p => progress?.Invoke(new PruneProgress(stepsTaken, stepsTaken, $"control ({kind})", graph.ParameterCount(),
                    (double)dense.Graph.ParameterCount() / graph.ParameterCount(), p.ValDice, p.Eta, p)));
            var path = Path.Combine(runDir, $"control-{kind}.sculpt");
            model.Save(path);
            candidates.Add((output, model, result.ValDice));
            results.Add((result with { Model = path }).ToJson());
        }
        var summary = new JsonObject
        {
            ["budget_samples"] = budget, ["budget_scale"] = o.ControlBudgetScale, ["dense_training_samples"] = denseSamples,
            ["fine_tune_samples"] = fineTuneSamples,
            ["dense_training_known"] = denseSamples > 0, ["results"] = results,
        };
        AtomicFile.WriteAllText(Path.Combine(runDir, "controls.json"), summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return (summary, candidates);
    }

    /// <summary>Equal compute per step: <paramref name="perStep"/> samples at the starting model's MACs, more for a cheaper model.</summary>
    public static int FineTuneSampleCount(int perStep, long startMacs, long candidateMacs, int trainCount)
    {
        if (perStep <= 0) return trainCount;
        double scaled = perStep * ((double)startMacs / Math.Max(1, candidateMacs));
        return (int)Math.Min(trainCount, Math.Ceiling(scaled - 1e-9));
    }

    /// <summary>One scoring + allocation + slicing pass (no fine-tuning).</summary>
    public static (ModelPackage Model, double Measured) PruneOnce(ModelPackage model, IReadOnlyList<Sample> calibration, TaskInfo task, PruneOptions o, Budget budget, int seed)
    {
        var groups = ChannelGroups.Analyze(model.Graph);
        WeightSet? grads = o.Criterion == Criterion.Taylor ? CalibrationGradients(model, calibration, task, o.CalibrationBatches, o.BatchSize, seed) : null;
        var scores = Importance.Score(groups, model.Weights, o.Criterion, grads, seed);
        HeadInput? head = null;
        if (o.Allocation.HeadInput == HeadInputPolicy.Ranked && HeadInput.Find(groups).Count > 0)
        {
            head = HeadInput.Measure(model, groups, CalibrationBatches(calibration, task, o.CalibrationBatches, o.BatchSize, seed + 2));
            if (o.Criterion != Criterion.Random)
                foreach (var id in head.GroupIds) scores[id] = head.InRemovalOrder(id, scores[id]);
        }
        var keep = Allocation.Allocate(groups, scores, budget, o.Allocation);
        var (graph, weights) = Slicer.Slice(groups, keep, model.Weights);
        head?.Refit(keep, model.Weights, weights!);
        if (o.RecalibrateBatchNorm && graph.Nodes.OfType<BatchNorm2dNode>().Any())
        {
            using var module = new GraphModule(graph, weights);
            module.RecalibrateBatchNorm(CalibrationBatches(calibration, task, o.CalibrationBatches, o.BatchSize, seed + 1));
            weights = module.ExportWeights();
        }
        return (new ModelPackage(graph, weights!, model.Meta), budget.Measure(graph));
    }

    /// <summary>Gradients of the task loss summed over calibration batches (eval-mode BN: statistics untouched).</summary>
    public static WeightSet CalibrationGradients(ModelPackage model, IReadOnlyList<Sample> samples, TaskInfo task, int batches, int batchSize, int seed)
    {
        using var module = new GraphModule(model.Graph, model.Weights);
        module.eval();
        foreach (var batch in CalibrationSamples(samples, batches, batchSize, seed))
        {
            using var scope = NewDisposeScope();
            var x = Batches.Images(batch, task.InputChannels, task.InputHeight, task.InputWidth, task.Normalization);
            var y = Batches.Labels(batch, task.InputHeight, task.InputWidth);
            Losses.DiceCe(module.forward(x), y).backward();
        }
        return module.ExportGradients();
    }

    private static IEnumerable<List<Sample>> CalibrationSamples(IReadOnlyList<Sample> samples, int batches, int batchSize, int seed)
    {
        var order = Enumerable.Range(0, samples.Count).ToArray();
        new Random(seed).Shuffle(order);
        int n = Math.Min(batches, (samples.Count + batchSize - 1) / batchSize);
        for (int b = 0; b < n; b++) yield return order.Skip(b * batchSize).Take(batchSize).Select(i => samples[i]).ToList();
    }

    private static IEnumerable<Tensor> CalibrationBatches(IReadOnlyList<Sample> samples, TaskInfo task, int batches, int batchSize, int seed) =>
        CalibrationSamples(samples, batches, batchSize, seed).Select(b => Batches.Images(b, task.InputChannels, task.InputHeight, task.InputWidth, task.Normalization));

    public static Dictionary<string, int> Widths(ChannelGroups groups) =>
        groups.Prunable.ToDictionary(g => g.Name, g => g.Width);

    public static string StepModelPath(string runDir, int step) => Path.Combine(runDir, $"step_{step:D2}.sculpt");

    /// <summary>The fine-tuned pruned weights, kept beside the controls when the output may be the retrained network.</summary>
    public static string PrunedWeightsPath(string runDir) => Path.Combine(runDir, "pruned-weights.sculpt");

    private static readonly JsonSerializerOptions LineJson = new(NetworkGraph.JsonOptions) { WriteIndented = false };

    private static void WriteState(string path, int completed, PruneOptions o, JsonObject identity) =>
        AtomicFile.WriteAllText(path, new JsonObject
        {
            ["completed_step"] = completed, ["steps"] = o.Steps, ["made_with"] = identity.DeepClone(),
        }.ToJsonString());

    /// <summary>
    /// What decides a run's steps: the dense model, the data's train and val frames, the target and every option the
    /// steps read. A resumed run must match it or its steps would be another run's (a resume with another dense model
    /// had output that run's pruned model as this one's); the final fine-tune and the controls may change
    /// (--final-epochs, --control-budget, --min-dice).
    /// </summary>
    private static JsonObject StepsIdentity(string denseHash, IReadOnlyList<Sample> train, IReadOnlyList<Sample> val, PruneOptions o,
        Budget budget)
    {
        var a = o.Allocation;
        return new JsonObject
        {
            ["dense model"] = denseHash, ["train frames"] = SegmentationDataset.Fingerprint(train),
            ["val frames"] = SegmentationDataset.Fingerprint(val),
            ["target"] = FormattableString.Invariant($"{budget.Value:R} {budget.Metric}")
                + (o.Latency is { } l ? FormattableString.Invariant($" (planned for {l.TargetMs} ms at {l.Threads} thread(s))") : ""),
            ["criterion"] = o.Criterion.ToString(),
            ["allocation"] = FormattableString.Invariant($"{a.Mode}, max group ratio {a.MaxGroupRatio}, round to {a.RoundTo}, ")
                + FormattableString.Invariant($"min channels {a.MinChannels}, head input {a.HeadInput}"),
            ["steps"] = o.Steps, ["max step ratio"] = o.MaxStepRatio, ["fine-tune samples"] = o.FineTuneSamples,
            ["fine-tune epochs"] = o.FineTuneEpochs,
            ["distillation"] = o.Distill ? FormattableString.Invariant($"{o.DistillLoss} × {o.DistillWeight}") : "none",
            ["calibration batches"] = o.CalibrationBatches, ["batch-norm recalibration"] = o.RecalibrateBatchNorm,
            ["batch-norm restore"] = o.RestoreBatchNorm, ["batch"] = o.BatchSize, ["learning rate"] = o.LearningRate,
            ["seed"] = o.Seed, ["collapse drop"] = o.CollapseDrop, ["back-offs"] = o.MaxBackoffs,
            ["through collapses"] = ContinuesThroughCollapse(o),
        };
    }

    private static ModelMeta WithHistory(ModelMeta previous, string denseHash, StepRecord rec, StepRecord before, PruneOptions o)
    {
        var meta = JsonSerializer.Deserialize<ModelMeta>(JsonSerializer.Serialize(previous, NetworkGraph.JsonOptions), NetworkGraph.JsonOptions)!;
        meta.ParentHash ??= denseHash;
        meta.CreatedUtc = DateTime.UtcNow;
        meta.PruningHistory.Add(new JsonObject
        {
            ["step"] = rec.Step, ["criterion"] = o.Criterion.ToString().ToLowerInvariant(), ["allocation"] = o.Allocation.Mode.ToString().ToLowerInvariant(),
            ["params_before"] = before.Params, ["params_after"] = rec.Params, ["macs_after"] = rec.Macs, ["compression"] = rec.Compression,
            ["val_dice"] = rec.ValDice,
            ["distill"] = o.Distill ? new JsonObject { ["kind"] = o.DistillLoss, ["weight"] = o.DistillWeight } : null,
            ["note"] = rec.Note,
            ["widths_before"] = JsonSerializer.SerializeToNode(before.Widths), ["widths_after"] = JsonSerializer.SerializeToNode(rec.Widths),
        });
        meta.Metrics["val_dice"] = Math.Round(rec.ValDice, 6);
        return meta;
    }

    private static TimeSpan Eta(Stopwatch clock, int stepsDone, int stepsLeft) =>
        stepsDone <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / stepsDone * stepsLeft);
}

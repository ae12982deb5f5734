using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Graph;
using Sculpt.Data;
using Sculpt.Training;
using Sculpt.Pruning;
using Sculpt.Runtime;
using Sculpt.Common;

namespace Sculpt.Cli.Commands;

public static class PruneCommand
{
    public const string Help = """
        sculpt prune --model M.sculpt --data DIR --out M2.sculpt
                     (--compression X | --max-params N | --max-macs N | --max-latency-ms L [--latency-threads T])
                     [--min-dice D]
                     [--criterion taylor|l1|l2|bn-scale|fpgm|random] [--allocation global|uniform|cost]
                     [--steps S] [--max-step-ratio Q] [--epochs E] [--ft-samples N] [--final-epochs F]
                     [--distill [--distill-loss mse|soft] [--distill-weight W]]
                     [--round-to K] [--max-group-ratio R] [--min-channels C] [--head-input ranked|whole] [--no-bn-recalibration] [--restore-bn]
                     [--collapse-drop D] [--no-control] [--scratch-lr LR] [--control-budget K] [--keep-pruned-weights]
                     [--lr LR] [--batch B] [--seed S] [--threads T] [--run DIR] [--resume] [--lenient] [--json]

        Structured pruning that physically removes channels. Each step shrinks the model geometrically towards
        the target by at most Q× (default 1.5; at least S steps; the last lands on the target), re-estimates
        batch-norm statistics after slicing, scores channels with the criterion (default taylor:
        |w·∂L/∂w| on calibration batches, which keeps the small-norm channels that carry the foreground),
        allocates by cost (default: one threshold across layers on importance per unit of the budget — parameters or
        MACs — each channel frees; at most R of a layer per step, default 0.5), globally (on importance alone: it
        spent a decoder layer's last channels for 40 parameters and stopped an EchoNet run at 26×), or uniformly, slices
        a smaller graph (no layer below C channels, default 2; the channels a 1×1 output layer reads are chosen by
        least-squares reconstruction of the logits on calibration batches and the output layer is refitted,
        since magnitude ranks their foreground channels last — --head-input whole keeps them all), and fine-tunes E epochs (on N random training
        samples per step if given, at the starting model's cost: a model needing k× fewer MACs gets k× more
        samples, up to the whole training split; --distill adds a term pulling the output toward the dense model's,
        as train --teacher does: --distill-loss mse between logits, the default, or soft; --distill-weight W). A collapse of
        validation Dice after a step (a drop of more than D, default 0.2; 1 turns the guard off) triggers a
        back-off to half that step; when two back-offs collapse too, the run goes on to the target for the
        architecture, which the from-scratch retraining trains (the output falls back to the last model before the
        collapse if neither that nor the pruned weights reach its Dice minus D); with --no-control or
        --keep-pruned-weights it stops there instead. The run folder (default
        M2.sculpt.run/) holds steps.jsonl (params, MACs, compression, val Dice, wall time per step), one model
        per step and state.json; --resume continues an interrupted run, if the dense model, the data and every
        option the steps read are the run's (state.json records them; the final stages' options may change).
        --min-dice keeps the smallest step model whose validation Dice is at least D. Finally F epochs of
        fine-tuning.
        --max-latency-ms: a batch-1 ONNX Runtime latency on this machine (T threads, default 1); the architecture
        is timed at uniform widths 1, 1/2, 1/4, 1/8, latency fitted as a fixed cost plus a cost per MAC, and the
        target becomes the MAC budget that model predicts; the pruned model's latency is measured and reported.
        The run folder keeps that plan (latency.json): --resume prunes to the same MACs instead of timing again.
        --restore-bn: for a model imported from an export that folded its batch norms (torch.onnx's default): a
        batch norm goes back after every convolution that lacks one, with statistics measured on calibration
        batches and an affine that makes it the identity, so the model computes exactly what it did and fine-tunes
        as a network with batch norms does.
        Controls (unless --no-control): two networks trained from scratch with the pruned model's whole sample budget
        (the dense model's training as its meta.json records it, plus every fine-tune) answer whether pruning beat
        training a small network directly: the pruned architecture re-initialised, and the dense architecture at one
        uniform width with at most the same parameter count. Their validation Dice is printed beside the pruned model's and
        their models are in the run folder (control-scratch.sculpt, control-uniform.sculpt, controls.json), so
        `sculpt eval` gives their test Dice with confidence intervals. --scratch-lr: their Adam learning rate (default
        1e-2: a network of a few thousand parameters trained at sculpt train's 2e-3 ended below Dice 0.3 in about half
        the runs measured, its few weights too slow to grow into confident logits; bench/RESULTS.md). A start still
        at validation Dice below 0.05 after two epochs is dead and is abandoned for a new seeded initialisation that
        trains the epochs left (at most three times; controls.json records the starts). --control-budget K trains
        both controls with K times that budget (default 1, the fair comparison): more training for the retrained
        output where pruning did not get it (on EchoNet-format data K = 2 cut the loss at 1148× from 1.34% to 0.50%).
        Output: whichever scores the highest validation Dice of the fine-tuned pruned weights, the pruned architecture
        retrained from scratch (pruning as the search for the architecture; on the demo it had the higher test Dice
        in every seed measured) and the uniform-width network where it also fits the target (on the task at hand,
        pruning did not beat training a small network directly). The others stay in the run folder
        (pruned-weights.sculpt, control-scratch.sculpt, control-uniform.sculpt); meta.json's final pruning entry and
        --json's "output" say which one was output. --keep-pruned-weights always outputs the pruned weights.

        --lenient skips bad dataset items with a counted warning, as train and eval do.

        example: sculpt prune --model dense.sculpt --data data/echo --compression 300 --steps 6 --out small.sculpt
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "distill", "resume", "json", "no-bn-recalibration", "restore-bn", "no-control",
            "keep-pruned-weights", "lenient" });
        var modelPath = a.Required("model");
        var data = a.Required("data");
        var outPath = a.Required("out");
        Args.RefuseOverwrite(outPath, modelPath);
        AtomicFile.CheckWritable(outPath);
        var runDir = a.Get("run", outPath + ".run");
        bool json = a.Flag("json"), resume = a.Flag("resume"), lenient = a.Flag("lenient");
        double? maxLatency = a.Has("max-latency-ms") ? a.Double("max-latency-ms", 0, 0, 1e6, aboveMin: true) : null;
        int latencyThreads = a.Int("latency-threads", 1, 1, 1024);
        bool distill = a.Flag("distill");
        var (distillLoss, distillWeight) = a.Distillation(distill, "--distill");
        var o = new PruneOptions
        {
            Compression = a.Has("compression") ? a.Double("compression", 1, 1, 1e12) : null,
            MaxParams = a.Long("max-params", 1, (long)1e15), MaxMacs = a.Long("max-macs", 1, (long)1e18),
            MinDice = a.Has("min-dice") ? a.Double("min-dice", 0, 0, 1) : null,
            Criterion = a.Choice("criterion", "taylor", Importance.Parse),
            Allocation = new AllocationOptions
            {
                Mode = a.Choice("allocation", "cost", AllocationModes.Parse),
                RoundTo = a.Int("round-to", 1, 1, 1024), MaxGroupRatio = a.Double("max-group-ratio", 0.5, 0, 1, aboveMin: true),
                MinChannels = a.Int("min-channels", 2, 1, 4096),
                HeadInput = a.Get("head-input", "ranked") switch { "whole" => HeadInputPolicy.Whole, "ranked" => HeadInputPolicy.Ranked, var h => throw new UsageException($"--head-input must be whole or ranked, got '{h}'") },
            },
            Steps = a.Int("steps", 6, 1, 1000), FineTuneEpochs = a.Int("epochs", 1, 0, 1000),
            FinalEpochs = a.Int("final-epochs", 6, 0, 10_000), MaxStepRatio = a.Double("max-step-ratio", 1.5, 1, 1e6, aboveMin: true),
            FineTuneSamples = a.Int("ft-samples", 0, 0, 100_000_000),
            CollapseDrop = a.Double("collapse-drop", 0.2, 0, 1, aboveMin: true),
            Distill = distill, DistillLoss = distillLoss, DistillWeight = distillWeight,
            RecalibrateBatchNorm = !a.Flag("no-bn-recalibration"), RestoreBatchNorm = a.Flag("restore-bn"),
            Control = !a.Flag("no-control"), AdoptRetrained = !a.Flag("keep-pruned-weights"),
            LearningRate = a.Double("lr", 1e-3, 0, 10, aboveMin: true),
            ScratchLearningRate = a.Double("scratch-lr", new PruneOptions().ScratchLearningRate, 0, 10, aboveMin: true),
            ControlBudgetScale = a.Double("control-budget", 1, 0, 100, aboveMin: true),
            BatchSize = a.Int("batch", 8, 1, 4096), Seed = a.Int("seed", 0),
        };
        a.Threads();
        a.EnsureAllUsed();
        int targets = new[] { "compression", "max-params", "max-macs", "max-latency-ms" }.Count(a.Has);
        if (targets != 1) throw new UsageException("give exactly one target: --compression, --max-params, --max-macs or --max-latency-ms");

        var dense = ModelPackage.Load(modelPath);
        if (maxLatency is { } ms)
        {
            var plan = LatencyBudget.Plan(dense.Graph, ms, latencyThreads, runDir, resume);
            o = o with { Latency = plan };
            if (!json)
                Console.Error.WriteLine($"latency model ({latencyThreads} thread(s)): {plan.FixedMs:0.###} ms + "
                    + $"{plan.MsPerGmac:0.###} ms/GMAC → target {Output.Count(plan.MaxMacs)} MACs for {ms} ms");
        }
        PruneJob.CheckReachable(dense.Graph, o); // fail before loading data or writing anything
        var ds = DataLoading.Load(data, dense.Meta.Task.InputHeight, dense.Meta.Task.InputWidth, lenient);
        if (DataFit.Check(ds, dense.Meta.Task, DataUse.Prune) is { } warning) Console.Error.WriteLine($"sculpt prune: warning: {warning}");
        var (model, steps) = Run(dense, ds, o, runDir, resume);
        model.Save(outPath);
        long parameters = model.Graph.ParameterCount(), macs = model.Graph.MacCount();
        double compression = (double)dense.Graph.ParameterCount() / parameters;
        double dice = model.Meta.Metrics["val_dice"];
        var final = model.Meta.PruningHistory.LastOrDefault();
        var controls = final?["controls"] as JsonObject;
        string output = Outputs.Of(model.Meta);
        double? latency = maxLatency is null ? null : LatencyBudget.Measure(model.Graph, latencyThreads, model.Weights);
        if (latency is { } measured && measured > maxLatency!.Value && !json)
            Console.Error.WriteLine($"sculpt prune: warning: measured latency {measured:0.###} ms is above the target {maxLatency} ms (the latency model predicted it); prune further with a lower target");
        if (json)
        {
            Output.Json(new JsonObject
            {
                ["model"] = outPath, ["run"] = runDir, ["params"] = parameters, ["macs"] = macs, ["compression"] = compression, ["dice"] = dice,
                ["dense_params"] = dense.Graph.ParameterCount(), ["dense_dice"] = steps[0].ValDice,
                ["output"] = output, ["pruned_weights_dice"] = final?["pruned_weights_val_dice"]?.GetValue<double>(),
                // every step's fine-tune and the final one: the budget to compare with another tool's
                ["fine_tune_samples"] = final?["fine_tune_samples"]?.GetValue<long>(),
                ["latency_ms"] = latency, ["latency_target_ms"] = maxLatency,
                // the fit the MAC target came from (the run folder's latency.json)
                ["latency_plan"] = o.Latency is { } plan ? JsonSerializer.SerializeToNode(plan, NetworkGraph.JsonOptions) : null,
                ["steps"] = new JsonArray(steps.Select(s => (JsonNode)new JsonObject
                {
                    ["step"] = s.Step, ["params"] = s.Params, ["macs"] = s.Macs, ["compression"] = s.Compression, ["val_dice"] = s.ValDice, ["note"] = s.Note,
                    ["fine_tune_samples"] = s.FineTuneSamples,
                }).ToArray()),
                ["controls"] = controls?.DeepClone(),
            });
            return 0;
        }
        Console.Write(StepTable(steps));
        Console.WriteLine($"\nfinal: {parameters:N0} params ({compression:0.0}× fewer), {Output.Count(macs)} MACs, val Dice {dice:0.0000} (dense {steps[0].ValDice:0.0000}{(steps[0].ValDice > 0 ? $", relative loss {100 * (steps[0].ValDice - dice) / steps[0].ValDice:0.00}%" : "")})");
        if (controls?["results"] is JsonArray rows)
        {
            bool denseKnown = controls["dense_training_known"]!.GetValue<bool>();
            string budget = ScratchControl.BudgetLabel(controls["budget_scale"]?.GetValue<double>() ?? 1);
            Console.WriteLine($"\nfrom scratch, {budget} ({controls["budget_samples"]:N0} samples"
                + $"{(denseKnown ? "" : "; the dense model's own training is unknown, so fine-tuning's only")}):");
            double prunedWeightsDice = final?["pruned_weights_val_dice"]?.GetValue<double>() ?? dice;
            long prunedWeightsParams = final?["pruned_weights_params"]?.GetValue<long>() ?? parameters;
            Console.WriteLine($"  {"pruned weights, fine-tuned",-46} {prunedWeightsParams,12:N0} params  val Dice {prunedWeightsDice:0.0000}");
            foreach (var r in rows)
            {
                string what = r!["description"]!.GetValue<string>();
                Console.WriteLine($"  {what,-46} {r["params"]!.GetValue<long>(),12:N0} params  val Dice {r["val_dice"]!.GetValue<double>():0.0000}");
            }
            Console.WriteLine($"output: {output}");
        }
        if (latency is { } l) Console.WriteLine($"ONNX Runtime batch-1 latency {l:0.###} ms ({latencyThreads} thread(s); target {maxLatency} ms)");
        Console.WriteLine($"model {outPath}; per-step log {Path.Combine(runDir, "steps.jsonl")}");
        return 0;
    }

    /// <summary>Runs a pruning job with a progress line (step, phase, size, Dice, ETA) on stderr.</summary>
    public static (ModelPackage Model, List<StepRecord> Steps) Run(ModelPackage dense, SegmentationDataset ds, PruneOptions o, string runDir, bool resume)
    {
        var line = new ProgressLine();
        var result = PruneJob.Run(dense, ds, o, runDir, resume, p =>
        {
            string train = p.Training is { } t ? $" epoch {t.Epoch}/{t.Epochs} {ProgressLine.Bar((double)t.Step / t.Steps, 12)} loss {t.Loss:0.000}" : "";
            line.Update($"prune step {p.Step}/{p.Steps} {p.Phase}: {Output.Count(p.Params)} params ({p.Compression:0.#}×) val Dice {(p.ValDice is { } d ? d.ToString("0.0000", Output.Inv) : "-")}{train} ETA {Output.Duration(p.Eta)}", p.Phase == "done");
        });
        line.Done();
        if (result.Model.Meta.PruningHistory.LastOrDefault()?["stopped_early"]?.GetValue<string>() is { } stop)
            Console.Error.WriteLine($"sculpt prune: warning: target not reached, {stop}; kept the last model that did not collapse");
        return result;
    }

    public static string StepTable(IEnumerable<StepRecord> steps) =>
        Output.Table(new[] { "step", "params", "MACs", "compression", "val Dice", "seconds", "note" },
            steps.Select(s => new[] { s.Step.ToString(), Output.Count(s.Params), Output.Count(s.Macs), $"{s.Compression:0.0}×", Output.F(s.ValDice), Output.F(s.WallSeconds, "0"), s.Note }));
}

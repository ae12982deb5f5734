using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Sculpt.Common;

namespace Sculpt.Training;

public sealed record TrainOptions
{
    public int Epochs { get; init; } = 20;
    public int BatchSize { get; init; } = 8;
    public double LearningRate { get; init; } = 2e-3;
    public double MinLearningRate { get; init; } = 1e-5;
    public string Optimizer { get; init; } = "adam";
    public double WeightDecay { get; init; } = 1e-5;
    public bool Augment { get; init; } = true;
    public int Seed { get; init; }
    /// <summary>Folder for resumable checkpoints (last weights, optimizer state, history); null disables them.</summary>
    public string? CheckpointDir { get; init; }
    public bool Resume { get; init; }
    /// <summary>Optional extra loss term on the logits (distillation during fine-tuning).</summary>
    public Func<Tensor, Tensor, Tensor>? ExtraLoss { get; init; }
    /// <summary>
    /// Abandon the run when every validation Dice of its first this many epochs is below <see cref="Trainer.DeadDice"/>
    /// (0: never); the result says so (<see cref="TrainResult.Abandoned"/>). Used by <see cref="Trainer.TrainFresh"/>.
    /// </summary>
    public int DeadAfterEpochs { get; init; }
    /// <summary>A teacher to distil from (<see cref="TrainJob"/> turns it into <see cref="ExtraLoss"/>).</summary>
    public DistillFrom? Distill { get; init; }
    /// <summary>
    /// Decay of a moving average of the weights (<see cref="WeightAverage"/>), 0 for none: when set, each epoch is
    /// validated, and the best kept, with the averaged weights instead of the last step's.
    /// </summary>
    public double AverageDecay { get; init; }
    /// <summary>
    /// Epochs over which the learning rate rises linearly from near 0 to <see cref="LearningRate"/> before the cosine
    /// decay takes the steps that remain (0: cosine from the first step).
    /// </summary>
    public double WarmupEpochs { get; init; }
}

/// <summary>Distillation from <paramref name="Teacher"/> with <see cref="Distillation.Loss"/>'s kind and weight.</summary>
public sealed record DistillFrom([property: System.Text.Json.Serialization.JsonIgnore] ModelPackage Teacher, string Kind = "mse",
    double Weight = 1.0)
{
    public long TeacherParams => Teacher.Graph.ParameterCount();
}

public sealed record EpochRecord(int Epoch, double TrainLoss, double ValDice, double LearningRate, double Seconds);

public sealed record Progress(int Epoch, int Epochs, int Step, int Steps, double Loss, double? ValDice, TimeSpan Eta, bool EpochDone = false);

/// <summary>
/// The best weights and their epoch; <paramref name="Abandoned"/>: stopped as a dead start; <paramref name="Starts"/>: fresh
/// initialisations tried (see <see cref="Trainer.TrainFresh"/>).
/// </summary>
public sealed record TrainResult(double BestValDice, int BestEpoch, List<EpochRecord> History, WeightSet BestWeights,
    bool Abandoned = false, int Starts = 1);

/// <summary>Supervised training with validation every epoch; keeps the best weights; resumable.</summary>
public static class Trainer
{
    public static TrainResult Train(GraphModule model, IReadOnlyList<Sample> train, IReadOnlyList<Sample> val, TaskInfo task, TrainOptions o,
        Action<Progress>? progress = null)
    {
        if (train.Count == 0) throw new DatasetException("no training samples (split 'train' is empty)");
        if (val.Count == 0) throw new DatasetException("no validation samples (split 'val' is empty)");
        torch.manual_seed(o.Seed);
        using var opt = Optimizer.Create(o.Optimizer, model.parameters(), o.LearningRate, o.WeightDecay);
        int stepsPerEpoch = (train.Count + o.BatchSize - 1) / o.BatchSize;
        long totalSteps = (long)stepsPerEpoch * o.Epochs;
        var history = new List<EpochRecord>();
        double best = -1; int bestEpoch = -1; WeightSet? bestWeights = null; int startEpoch = 0; long optimizerSteps = 0;

        var identity = o.CheckpointDir is null ? null : RunIdentity(model.Graph, train, val, o);
        if (o.Resume && o.CheckpointDir != null && File.Exists(Path.Combine(o.CheckpointDir, "state.json")))
        {
            var statePath = Path.Combine(o.CheckpointDir, "state.json");
            JsonObject? madeWith = null;
            ResumeState.Read(statePath, () =>
            {
                var state = JsonNode.Parse(Common.InputFile.ReadText(statePath, "resume state")) as JsonObject ?? throw new JsonException("not an object");
                madeWith = ResumeState.MadeWith(state);
                int epoch = ResumeState.Int(state, "epoch");
                bestEpoch = ResumeState.Int(state, "best_epoch");
                best = state["best_val_dice"]?.GetValue<double>() ?? throw new JsonException("best_val_dice missing");
                // epoch counts from 0, bestEpoch from 1 (as the history does): the last finished epoch may be the best
                if (epoch < 0 || epoch >= o.Epochs || bestEpoch < 1 || bestEpoch > epoch + 1 || !(best >= 0 && best <= 1))
                    throw new JsonException($"epoch {epoch}, best epoch {bestEpoch} or best Dice {best} out of range for {o.Epochs} epochs");
                startEpoch = epoch + 1;
                optimizerSteps = state["optimizer_steps"] is JsonValue s && s.TryGetValue<long>(out var n) && n >= 0
                    ? n : throw new JsonException("optimizer_steps missing or negative");
                history = JsonSerializer.Deserialize<List<EpochRecord>>(state["history"]?.ToJsonString() ?? "null")
                    ?? throw new JsonException("history missing");
            });
            ResumeState.CheckMadeWith(statePath, madeWith, identity!, "model, data and options");
            string last = Path.Combine(o.CheckpointDir, "last.safetensors"), bestPath = Path.Combine(o.CheckpointDir, "best.safetensors");
            model.LoadWeights(ReadCheckpoint(last, "checkpoint"), last);
            bestWeights = ReadCheckpoint(bestPath, "checkpoint");
            WeightLayout.Check(model.Graph, bestWeights, bestPath);
            var optimizerPath = Path.Combine(o.CheckpointDir, OptimizerFile);
            ResumeState.Read(optimizerPath, () =>
                opt.LoadState(ReadCheckpoint(optimizerPath, "optimizer state"), optimizerSteps, optimizerPath));
        }
        // one update per optimizer step, so a resumed run continues the average's warm-up where it stopped
        using var average = o.AverageDecay > 0 ? new WeightAverage(model, o.AverageDecay, optimizerSteps) : null;
        if (average != null && startEpoch > 0)
        {
            var averagePath = Path.Combine(o.CheckpointDir!, AverageFile);
            average.Load(model, ReadCheckpoint(averagePath, "checkpoint"), averagePath);
        }

        var clock = Stopwatch.StartNew();
        long doneSteps = 0;
        for (int epoch = startEpoch; epoch < o.Epochs; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            // every epoch draws from its own seeded streams, so a resumed run repeats an uninterrupted one exactly
            torch.manual_seed(o.Seed + 1000L * epoch);
            var aug = new Augmenter(o.Seed * 7919 + epoch);
            var order = Enumerable.Range(0, train.Count).ToArray();
            new Random(o.Seed * 31 + epoch).Shuffle(order);
            model.train();
            double lossSum = 0; double lr = o.LearningRate;
            for (int s = 0; s < stepsPerEpoch; s++)
            {
                using var scope = NewDisposeScope();
                long global = (long)epoch * stepsPerEpoch + s;
                lr = LearningRateAt(o, global, totalSteps, stepsPerEpoch);
                opt.LearningRate = lr;
                var batch = order.Skip(s * o.BatchSize).Take(o.BatchSize).Select(i => train[i]).ToList();
                var raw = Batches.Images(batch, task.InputChannels, task.InputHeight, task.InputWidth, new Normalization { Mean = new[] { 0.0 }, Std = new[] { 1.0 } });
                var labels = Batches.Labels(batch, task.InputHeight, task.InputWidth);
                if (o.Augment) (raw, labels) = aug.Apply(raw, labels);
                var x = Batches.Normalize(raw, task.Normalization);
                opt.ZeroGrad();
                var logits = model.forward(x);
                var loss = Losses.DiceCe(logits, labels);
                if (o.ExtraLoss != null) loss = loss.add(o.ExtraLoss(x, logits), HeldScalars.One);
                loss.backward();
                opt.Step();
                average?.Update(model);
                double l = loss.item<float>();
                lossSum += l;
                doneSteps++;
                var eta = TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / doneSteps * (totalSteps - global - 1));
                progress?.Invoke(new Progress(epoch + 1, o.Epochs, s + 1, stepsPerEpoch, lossSum / (s + 1), history.LastOrDefault()?.ValDice, eta));
            }
            average?.Swap(model); // validated and kept: the averaged weights, when there is an average
            double dice = Evaluator.MeanDice(model, val, task);
            history.Add(new EpochRecord(epoch + 1, lossSum / stepsPerEpoch, dice, lr, epochClock.Elapsed.TotalSeconds));
            if (dice > best || bestWeights == null) { best = dice; bestEpoch = epoch + 1; bestWeights = model.ExportWeights(); }
            average?.Swap(model);
            progress?.Invoke(new Progress(epoch + 1, o.Epochs, stepsPerEpoch, stepsPerEpoch, lossSum / stepsPerEpoch, dice,
                TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / Math.Max(1, doneSteps) * (totalSteps - (long)(epoch + 1) * stepsPerEpoch)), EpochDone: true));
            if (o.CheckpointDir != null)
                SaveCheckpoint(o.CheckpointDir, model, opt, average, bestWeights!, epoch, best, bestEpoch, history, identity!);
            if (o.DeadAfterEpochs > 0 && epoch + 1 == o.DeadAfterEpochs && history.All(h => h.ValDice < DeadDice))
                return new TrainResult(best, bestEpoch, history, bestWeights!, Abandoned: true);
        }
        if (bestWeights == null) { bestWeights = model.ExportWeights(); best = Evaluator.MeanDice(model, val, task); bestEpoch = o.Epochs; }
        model.LoadWeights(bestWeights, "best weights");
        return new TrainResult(best, bestEpoch, history, bestWeights);
    }

    /// <summary>The learning rate of optimizer step <paramref name="step"/> (from 0) of <paramref name="totalSteps"/>.</summary>
    public static double LearningRateAt(TrainOptions o, long step, long totalSteps, int stepsPerEpoch)
    {
        long warmup = Math.Min(totalSteps - 1, (long)Math.Round(o.WarmupEpochs * stepsPerEpoch));
        if (step < warmup) return o.LearningRate * (step + 1) / (warmup + 1);
        // written as before warm-up existed, so that runs without it repeat earlier ones bit for bit
        double range = o.LearningRate - o.MinLearningRate;
        return o.MinLearningRate + 0.5 * range * (1 + Math.Cos(Math.PI * (step - warmup) / (totalSteps - warmup)));
    }

    private const string OptimizerFile = "optimizer.safetensors", AverageFile = "average.safetensors";

    /// <summary>A safetensors file of a checkpoint, read within the input limits; <paramref name="what"/> names it in errors.</summary>
    private static WeightSet ReadCheckpoint(string path, string what) => Safetensors.Read(Data.InputLimits.ReadFile(path, what), path);

    /// <summary>Validation Dice below which a start counts as dead (all background).</summary>
    public const double DeadDice = 0.05;
    /// <summary>Epochs after which a fresh start that is still dead is abandoned, and how many times to start again.</summary>
    private const int DeadAfterEpochs = 2, MaxRestarts = 3;

    /// <summary>
    /// Trains <paramref name="graph"/> from a seeded fresh initialisation for <c>o.Epochs</c> epochs in all. A network
    /// of a few thousand parameters (a pruned architecture) often starts dead: on EchoNet-format data 12 of 18 starts
    /// of 1,673- and 1,684-parameter U-Nets stayed all background for their first two epochs; four never recovered,
    /// one only after eleven epochs (test Dice 0.878), and with restarts none of the 18 ended below 0.923
    /// (bench/RESULTS.md). A start whose first two epochs stay below <see cref="DeadDice"/> is abandoned and the next seeded
    /// initialisation trains for the epochs that remain (at most three times); a live first start runs exactly as
    /// without this. The history holds every epoch spent, abandoned ones included, so sample budgets stay honest.
    /// </summary>
    public static TrainResult TrainFresh(NetworkGraph graph, IReadOnlyList<Sample> train, IReadOnlyList<Sample> val, TaskInfo task,
        TrainOptions o, Action<Progress>? progress = null)
    {
        var spent = new List<EpochRecord>();
        for (int start = 0; ; start++)
        {
            int remaining = o.Epochs - spent.Count;
            bool last = start == MaxRestarts || remaining <= 2 * DeadAfterEpochs;
            // the first start keeps the caller's seed; restarts step far from it, clear of a sweep's neighbouring seeds
            // restarts keep no checkpoints: a resumed run repeats the (seeded) dead start and restarts again
            var options = o with
            {
                Epochs = remaining, Seed = o.Seed + 1_000_003 * start, DeadAfterEpochs = last ? 0 : DeadAfterEpochs,
                CheckpointDir = start == 0 ? o.CheckpointDir : null,
            };
            torch.manual_seed(options.Seed);
            using var module = new GraphModule(graph);
            var r = Train(module, train, val, task, options, progress);
            int offset = spent.Count;
            spent.AddRange(r.History.Select(h => h with { Epoch = h.Epoch + offset }));
            if (!r.Abandoned) return r with { BestEpoch = r.BestEpoch + offset, History = spent, Starts = start + 1 };
            if (options.CheckpointDir != null && Directory.Exists(options.CheckpointDir)) Directory.Delete(options.CheckpointDir, true);
        }
    }

    /// <summary>
    /// What a checkpoint's epochs depend on: the architecture, the frames and every option of the schedule, so a
    /// resumed run repeats an uninterrupted one or is refused (a resume on another data folder had gone on silently).
    /// </summary>
    private static JsonObject RunIdentity(NetworkGraph graph, IReadOnlyList<Sample> train, IReadOnlyList<Sample> val, TrainOptions o)
    {
        string architecture = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(graph.ToJson())))[..16];
        string distillation = o.Distill is { } d ? FormattableString.Invariant($"{d.Kind} × {d.Weight} from {d.Teacher.ContentHash()}")
            : o.ExtraLoss is null ? "none" : "an extra loss";
        return new JsonObject
        {
            ["architecture"] = architecture, ["train frames"] = SegmentationDataset.Fingerprint(train),
            ["val frames"] = SegmentationDataset.Fingerprint(val), ["epochs"] = o.Epochs, ["batch"] = o.BatchSize,
            ["learning rate"] = o.LearningRate, ["minimum learning rate"] = o.MinLearningRate, ["warm-up epochs"] = o.WarmupEpochs,
            ["optimizer"] = o.Optimizer, ["weight decay"] = o.WeightDecay, ["augmentation"] = o.Augment, ["seed"] = o.Seed,
            ["weight average"] = o.AverageDecay, ["distillation"] = distillation,
        };
    }

    private static void SaveCheckpoint(string dir, GraphModule model, Optimizer opt, WeightAverage? average, WeightSet best, int epoch,
        double bestDice, int bestEpoch, List<EpochRecord> history, JsonObject identity)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllBytes(Path.Combine(dir, "last.safetensors"), Safetensors.Write(model.ExportWeights()));
        if (average != null) AtomicFile.WriteAllBytes(Path.Combine(dir, AverageFile), Safetensors.Write(average.Export()));
        AtomicFile.WriteAllBytes(Path.Combine(dir, "best.safetensors"), Safetensors.Write(best));
        AtomicFile.WriteAllBytes(Path.Combine(dir, OptimizerFile), Safetensors.Write(opt.ExportState()));
        var state = new JsonObject
        {
            ["epoch"] = epoch, ["best_val_dice"] = bestDice, ["best_epoch"] = bestEpoch, ["optimizer_steps"] = opt.Steps,
            ["history"] = JsonNode.Parse(JsonSerializer.Serialize(history)), ["made_with"] = identity.DeepClone(),
        };
        // state.json last: it is what marks the checkpoint complete
        AtomicFile.WriteAllText(Path.Combine(dir, "state.json"), state.ToJsonString());
    }
}

using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Models;
using Sculpt.Training;
using Sculpt.Common;

namespace Sculpt.Cli.Commands;

public static class TrainCommand
{
    public const string Help = """
        sculpt train --data DIR --out MODEL.sculpt [--arch unet|unet-classic|unet-small|deeplabv3_resnet50] [--width W] [--depth D]
                     [--bilinear] [--no-bn] [--init START.sculpt [--reinit]] [--epochs E] [--batch B] [--lr LR] [--optimizer adam|sgd]
                     [--no-augment] [--teacher DENSE.sculpt [--distill-loss mse|soft] [--distill-weight W]] [--ema D] [--warmup E]
                     [--seed S] [--threads T] [--resume] [--lenient] [--json]

        Trains on split 'train', validates on 'val' after every epoch and keeps the best weights (by mean Dice).
        Loss: Dice + BCE (binary) or Dice + cross-entropy (multi-class); cosine learning-rate schedule;
        augmentation: affine, gamma/contrast, noise. A checkpoint folder MODEL.sculpt.ckpt/ is updated every
        epoch; --resume continues an interrupted run from it, with the same architecture, frames and options, or
        refuses naming the first difference. It is removed when training completes.
        Architectures: unet (base width 16, depth 4), unet-classic (64, depth 4: ~31M parameters), unet-small (8, depth 3),
        deeplabv3_resnet50 (torchvision's, no pretrained weights; --width/--depth/--bilinear/--no-bn are U-Net options).
        --init trains a model that exists (e.g. one from sculpt import --onnx) from its weights instead; grey frames
        feed a three-channel model in every channel, as EchoNet feeds its grey videos. --reinit trains START's
        architecture from a fresh seeded initialisation instead (e.g. a pruned architecture trained from scratch); a
        start still below validation Dice 0.05 after two epochs is abandoned for the next seeded one, which trains
        the epochs left (at most three restarts; meta.json records the starts).
        --teacher adds a distillation term (weight W, default 1) pulling the output toward TEACHER's on the same
        augmented batch: mse between logits (the default, as prune --distill) or soft (cross-entropy against its
        probabilities). On EchoNet-format data neither improved a 1.7 K-parameter network (bench/RESULTS.md).
        --ema D validates, and keeps, an exponential moving average of the weights and batch-norm statistics (decay D
        per optimizer step, e.g. 0.99; warmed up over the first steps) instead of the last step's weights.
        --warmup E raises the learning rate linearly over the first E epochs (fractions allowed) before the cosine decay.

        example: sculpt train --data data/echo --arch unet --epochs 12 --out models/unet16.sculpt
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "bilinear", "no-bn", "no-augment", "resume", "json", "lenient", "reinit" });
        var data = a.Required("data");
        var outPath = a.Required("out");
        var arch = a.Get("arch", "unet");
        var init = a.Get("init");
        Args.RefuseOverwrite(outPath, init);
        AtomicFile.CheckWritable(outPath);
        int? width = a.Has("width") ? a.Int("width", 16, 1, 1024) : null;
        int? depth = a.Has("depth") ? a.Int("depth", 4, 1, 8) : null;
        bool bilinear = a.Flag("bilinear"), noBn = a.Flag("no-bn"), json = a.Flag("json");
        var options = new TrainOptions
        {
            Epochs = a.Int("epochs", 12, 1, 100_000), BatchSize = a.Int("batch", 8, 1, 4096),
            LearningRate = a.Double("lr", 2e-3, 0, 10, aboveMin: true),
            Optimizer = a.Get("optimizer", "adam"), Augment = !a.Flag("no-augment"), Seed = a.Int("seed", 0),
            Resume = a.Flag("resume"), CheckpointDir = outPath + ".ckpt", AverageDecay = a.Double("ema", 0, 0, 1, belowMax: true),
            WarmupEpochs = a.Double("warmup", 0),
        };
        var teacherPath = a.Get("teacher");
        var (distillLoss, distillWeight) = a.Distillation(teacherPath is not null, "--teacher");
        a.Threads();
        bool lenient = a.Flag("lenient"), reinit = a.Flag("reinit");
        a.EnsureAllUsed();
        if (reinit && init is null) throw new UsageException("--reinit needs --init: it trains that model's architecture afresh");
        if (!(options.WarmupEpochs >= 0 && options.WarmupEpochs < options.Epochs))
            throw new UsageException("--warmup must be ≥ 0 and below --epochs");

        if (teacherPath is not null)
            options = options with { Distill = new DistillFrom(Sculpt.Runtime.ModelPackage.Load(teacherPath), distillLoss, distillWeight) };
        var ds = DataLoading.Load(data, lenient: lenient);
        if (!options.Resume && Directory.Exists(options.CheckpointDir)) Directory.Delete(options.CheckpointDir, true);
        int classes = ds.IsBinary ? 1 : ds.Labels.Count;
        Sculpt.Runtime.ModelPackage pkg;
        TrainResult result;
        if (init is not null)
        {
            if (a.Has("arch") || width.HasValue || depth.HasValue || bilinear || noBn)
                throw new UsageException("--init trains the model it names: give no --arch or U-Net options");
            var start = Sculpt.Runtime.ModelPackage.Load(init);
            if (DataFit.Check(ds, start.Meta.Task, DataUse.Retrain) is { } warning)
                Console.Error.WriteLine($"sculpt train: warning: {warning}");
            (pkg, result) = Run(progress => TrainJob.Continue(ds, start, options, progress, reinit));
        }
        else if (arch is "deeplabv3_resnet50" or "deeplabv3-resnet50")
        {
            if (width.HasValue || depth.HasValue || bilinear || noBn)
                throw new UsageException("--width, --depth, --bilinear and --no-bn apply to the U-Net architectures only");
            var graph = Architectures.Build(arch, ds.Channels, classes, ds.Height);
            (pkg, result) = Run(progress => TrainJob.Run(ds, "deeplabv3_resnet50", graph, null, options, progress));
        }
        else
        {
            if (!Architectures.Names.Contains(arch))
                throw new UsageException($"unknown --arch '{arch}' ({string.Join(", ", Architectures.Names)})");
            var config = UNet.Preset(arch, ds.Channels, classes, ds.Height);
            if (width.HasValue) config = config with { BaseWidth = width.Value };
            if (depth.HasValue) config = config with { Depth = depth.Value };
            if (bilinear) config = config with { Bilinear = true };
            if (noBn) config = config with { BatchNorm = false };
            (pkg, result) = Run(ds, arch, config, options);
        }
        pkg.Save(outPath);
        if (Directory.Exists(options.CheckpointDir)) Directory.Delete(options.CheckpointDir, true);
        if (json)
            Output.Json(new JsonObject
            {
                ["model"] = outPath, ["val_dice"] = result.BestValDice, ["best_epoch"] = result.BestEpoch,
                ["params"] = pkg.Graph.ParameterCount(), ["macs"] = pkg.Graph.MacCount(), ["epochs"] = options.Epochs,
            });
        else
        {
            Console.Write(Output.Table(new[] { "epoch", "train loss", "val Dice", "lr", "seconds" },
                result.History.Select(h => new[] { h.Epoch.ToString(), Output.F(h.TrainLoss), Output.F(h.ValDice), h.LearningRate.ToString("0.0e+0", Output.Inv), Output.F(h.Seconds, "0.0") })));
            Console.WriteLine($"best val Dice {Output.F(result.BestValDice)} at epoch {result.BestEpoch}; model ({Output.Count(pkg.Graph.ParameterCount())} params) saved to {outPath}");
        }
        return 0;
    }

    public static (Sculpt.Runtime.ModelPackage, TrainResult) Run(SegmentationDataset ds, string arch, UNetConfig config, TrainOptions options) =>
        Run(progress => TrainJob.Run(ds, arch, config, options, progress));

    /// <summary>Runs a training job with an epoch/step progress line (step, loss, val Dice, ETA).</summary>
    private static (Sculpt.Runtime.ModelPackage, TrainResult) Run(Func<Action<Progress>, (Sculpt.Runtime.ModelPackage, TrainResult)> job)
    {
        var progress = new ProgressLine();
        var result = job(p =>
        {
            string dice = p.ValDice is { } d ? $" val Dice {d:0.0000}" : "";
            bool epochEnd = p.EpochDone;
            progress.Update($"train epoch {p.Epoch}/{p.Epochs} {ProgressLine.Bar((double)p.Step / p.Steps)} loss {p.Loss:0.0000}{dice} ETA {Output.Duration(p.Eta)}", epochEnd);
        });
        progress.Done();
        return result;
    }
}

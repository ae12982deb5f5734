using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Training;
using Xunit;

namespace Sculpt.Tests;

[Collection("serial")]
public class TrainingTests
{
    /// <summary>24 synthetic 32×32 frames: training tests' data (also <see cref="WeightAverageTests"/>').</summary>
    internal static SegmentationDataset TinySet()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "d");
        SynthDataset.Write(dir, new SynthOptions { Count = 24, Size = 32, Seed = 11 });
        return SegmentationDataset.Load(dir);
    }

    internal static readonly UNetConfig Tiny = new() { Depth = 2, BaseWidth = 4, InputSize = 32 };

    [Fact]
    public void TrainingReducesLossAndKeepsTheBestEpoch()
    {
        var ds = TinySet();
        var (pkg, result) = TrainJob.Run(ds, "unet", Tiny, new TrainOptions { Epochs = 3, BatchSize = 4, Seed = 1, LearningRate = 5e-3 });
        Assert.Equal(3, result.History.Count);
        Assert.True(result.History[^1].TrainLoss < result.History[0].TrainLoss);
        Assert.Equal(result.History.Max(h => h.ValDice), result.BestValDice, 12);
        // the returned weights are the best epoch's: re-evaluating them gives the recorded Dice
        using var model = new GraphModule(pkg.Graph, pkg.Weights);
        Assert.Equal(result.BestValDice, Evaluator.MeanDice(model, ds.Split("val"), pkg.Meta.Task), 9);
        Assert.Equal("binary", pkg.Meta.Task.Mode);
        Assert.True(pkg.Meta.Task.Normalization.Std[0] > 0);
    }

    [Fact]
    public void SameSeedGivesSameWeights()
    {
        var ds = TinySet();
        var o = new TrainOptions { Epochs = 1, BatchSize = 4, Seed = 9 };
        var a = TrainJob.Run(ds, "unet", Tiny, o).Model.Weights;
        var b = TrainJob.Run(ds, "unet", Tiny, o).Model.Weights;
        foreach (var k in a.Keys) Assert.Equal(a[k].Data, b[k].Data);
    }

    [Fact]
    public void ReinitialisedContinueTrainsTheArchitectureFromScratch()
    {
        var ds = TinySet();
        var o = new TrainOptions { Epochs = 1, BatchSize = 4, Seed = 5 };
        var start = TrainJob.Run(ds, "unet", Tiny, o with { Seed = 3 }).Model;
        var scratch = TrainJob.Run(ds, "unet", Tiny, o).Model.Weights;
        var reinitialised = TrainJob.Continue(ds, start, o, reinitialise: true).Model.Weights;
        var continued = TrainJob.Continue(ds, start, o).Model.Weights;
        // the same seed from a fresh start gives what training the bare architecture gives; continuing does not
        foreach (var k in scratch.Keys) Assert.Equal(scratch[k].Data, reinitialised[k].Data);
        Assert.Contains(scratch.Keys, k => !scratch[k].Data.SequenceEqual(continued[k].Data));
    }

    [Fact]
    public void ALiveFreshStartTrainsExactlyAsPlainTraining()
    {
        // six epochs: long enough that the dead-start check runs after the second (it abandons nothing that is live)
        var ds = TinySet();
        var o = new TrainOptions { Epochs = 6, BatchSize = 4, Seed = 5, LearningRate = 5e-3 };
        var start = TrainJob.Run(ds, "unet", Tiny, o with { Epochs = 1, Seed = 3 }).Model;
        var (plain, plainResult) = TrainJob.Run(ds, "unet", Tiny, o);
        var (fresh, freshResult) = TrainJob.Continue(ds, start, o, reinitialise: true);
        Assert.Contains(plainResult.History.Take(2), h => h.ValDice >= Trainer.DeadDice);
        Assert.Equal(1, freshResult.Starts);
        Assert.Equal(plainResult.History.Select(h => h.ValDice), freshResult.History.Select(h => h.ValDice));
        foreach (var k in plain.Weights.Keys) Assert.Equal(plain.Weights[k].Data, fresh.Weights[k].Data);
    }

    [Fact]
    public void DeadFreshStartsAreAbandonedWithinTheSameEpochBudget()
    {
        // logits −10 − relu(·) < 0 everywhere: no start can ever predict foreground, so every start is dead and the
        // last one (the fourth) trains the epochs that remain; the history holds all twelve epochs spent
        Node[] nodes =
        [
            new InputNode { Name = "x", Channels = 1, Height = 32, Width = 32 },
            new Conv2dNode { Name = "c", Inputs = { "x" }, InChannels = 1, OutChannels = 1, Kernel = [3, 3], Padding = [1, 1] },
            new ReluNode { Name = "r", Inputs = { "c" } },
            new ElementwiseNode { Name = "negated", Inputs = { "r" }, Kind = "sub", Scalar = -10, ConstantFirst = true },
            new OutputNode { Name = "y", Inputs = { "negated" } },
        ];
        var g = new NetworkGraph(nodes);
        var start = new ModelPackage(g, TestFiles.WithBnStatistics(g, 1), new ModelMeta());
        var ds = TinySet();
        var (pkg, result) = TrainJob.Continue(ds, start, new TrainOptions { Epochs = 12, BatchSize = 4, Seed = 2 }, reinitialise: true);
        Assert.Equal(4, result.Starts);
        Assert.Equal(Enumerable.Range(1, 12), result.History.Select(h => h.Epoch));
        Assert.True(result.BestValDice < Trainer.DeadDice);
        Assert.Equal(4, pkg.Meta.Training!["starts"]!.GetValue<int>());
        // the sample budget a control would read from this model counts every epoch spent
        Assert.Equal(12L * ds.Split("train").Count, Sculpt.Pruning.ScratchControl.DenseTrainingSamples(pkg.Meta));
    }

    [Fact]
    public void InterruptedAndResumedRunEqualsUninterruptedRun()
    {
        var ds = TinySet();
        var ckpt = Path.Combine(TestFiles.TempDir(), "ckpt");
        var full = TrainJob.Run(ds, "unet", Tiny, new TrainOptions { Epochs = 3, BatchSize = 4, Seed = 2 });
        // "interrupt" after epoch 2 of 3: a 3-epoch schedule stopped early leaves the checkpoint of epoch 2
        var partial = new TrainOptions { Epochs = 3, BatchSize = 4, Seed = 2, CheckpointDir = ckpt };
        Assert.Throws<OperationCanceledException>(() => TrainJob.Run(ds, "unet", Tiny, partial, p =>
        {
            if (p.Epoch == 3) throw new OperationCanceledException();
        }));
        Assert.True(File.Exists(Path.Combine(ckpt, "state.json")));
        var resumed = TrainJob.Run(ds, "unet", Tiny, partial with { Resume = true });
        Assert.Equal(3, resumed.Result.History.Count);
        Assert.Equal(full.Result.History.Select(h => h.ValDice), resumed.Result.History.Select(h => h.ValDice));
        foreach (var k in full.Model.Weights.Keys) Assert.Equal(full.Model.Weights[k].Data, resumed.Model.Weights[k].Data);
    }

    /// <summary>A checkpoint resumed with other frames or another schedule would not repeat the uninterrupted run: refused.</summary>
    [Fact]
    public void AResumeWithOtherFramesOrOptionsIsRefusedNamingTheDifference()
    {
        var ds = TinySet();
        var ckpt = Path.Combine(TestFiles.TempDir(), "ckpt");
        var partial = new TrainOptions { Epochs = 3, BatchSize = 4, Seed = 2, CheckpointDir = ckpt };
        Assert.Throws<OperationCanceledException>(() => TrainJob.Run(ds, "unet", Tiny, partial, p =>
        {
            if (p.Epoch == 2) throw new OperationCanceledException();
        }));
        var otherDir = Path.Combine(TestFiles.TempDir(), "d");
        SynthDataset.Write(otherDir, new SynthOptions { Count = 24, Size = 32, Seed = 12 });
        var statePath = Path.Combine(ckpt, "state.json");
        foreach (var (data, options, mentions) in new[]
        {
            (ds, partial with { Seed = 3 }, "the run was made with seed 2, this command gives 3"),
            (ds, partial with { LearningRate = 1e-2 }, "the run was made with learning rate 0.002, this command gives 0.01"),
            (SegmentationDataset.Load(otherDir), partial, "the run was made with train frames"),
            (ds, partial with { Augment = false }, "the run was made with augmentation true, this command gives false"),
        })
        {
            var e = Assert.Throws<InvalidDataException>(() => TrainJob.Run(data, "unet", Tiny, options with { Resume = true }));
            Assert.StartsWith($"{statePath}: ", e.Message);
            Assert.Contains(mentions, e.Message);
        }
        var resumed = TrainJob.Run(ds, "unet", Tiny, partial with { Resume = true });
        Assert.Equal(3, resumed.Result.History.Count);
    }

    [Fact]
    public void WarmupRisesLinearlyThenTheCosineDecaysOverTheStepsLeft()
    {
        const int stepsPerEpoch = 10, epochs = 5;
        const long total = stepsPerEpoch * epochs;
        var o = new TrainOptions { LearningRate = 1e-2, MinLearningRate = 1e-5, WarmupEpochs = 2, Epochs = epochs };
        // 20 warm-up steps: step k (from 0) runs at lr·(k+1)/21, then cosine from lr at step 20 to near the minimum
        for (int k = 0; k < 20; k++) Assert.Equal(1e-2 * (k + 1) / 21, Trainer.LearningRateAt(o, k, total, stepsPerEpoch), 15);
        Assert.Equal(1e-2, Trainer.LearningRateAt(o, 20, total, stepsPerEpoch), 15);
        Assert.Equal(1e-5 + 0.5 * (1e-2 - 1e-5), Trainer.LearningRateAt(o, 35, total, stepsPerEpoch), 15);
        double last = 1e-5 + 0.5 * (1e-2 - 1e-5) * (1 + Math.Cos(Math.PI * 29 / 30));
        Assert.Equal(last, Trainer.LearningRateAt(o, 49, total, stepsPerEpoch), 15);
        // no warm-up: the plain cosine over every step, as before the option existed
        var plain = o with { WarmupEpochs = 0 };
        for (long k = 0; k < total; k++)
        {
            double cosine = 1e-5 + 0.5 * (1e-2 - 1e-5) * (1 + Math.Cos(Math.PI * k / total));
            Assert.Equal(cosine, Trainer.LearningRateAt(plain, k, total, stepsPerEpoch));
        }
    }

    [Fact]
    public void MultiClassTrainingRuns()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "d");
        SynthDataset.Write(dir, new SynthOptions { Count = 12, Size = 32, Seed = 3, ExtraClasses = true });
        var ds = SegmentationDataset.Load(dir);
        var (pkg, result) = TrainJob.Run(ds, "unet", Tiny with { Classes = 4 }, new TrainOptions { Epochs = 1, BatchSize = 4 });
        Assert.Equal("multiclass", pkg.Meta.Task.Mode);
        Assert.Equal(4, pkg.Graph.OutputNodes.Count() == 1 ? pkg.Meta.Task.OutputChannels : -1);
        Assert.InRange(result.BestValDice, 0, 1);
    }

    [Fact]
    public void DarkRegionBaselineFindsTheLvOnACleanFrame()
    {
        var ds = TinySet();
        var b = new DarkRegionBaseline(ds.Split("train"), 32, 32);
        var scores = ds.Samples.Select(s => Metrics.Compute(b.Segment(s.Image, 32, 32), s.Mask, 32, 32).Dice).ToList();
        Assert.InRange(scores.Average(), 0.05, 0.99);
    }
}

using Sculpt.Data;
using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Training;
using Xunit;

namespace Sculpt.Tests;

[Collection("serial")]
public class TrainingTests
{
    private static SegmentationDataset TinySet()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "d");
        SynthDataset.Write(dir, new SynthOptions { Count = 24, Size = 32, Seed = 11 });
        return SegmentationDataset.Load(dir);
    }

    private static readonly UNetConfig Tiny = new() { Depth = 2, BaseWidth = 4, InputSize = 32 };

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

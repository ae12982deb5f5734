using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Training;
using Xunit;

namespace Sculpt.Tests;

[Collection("serial")]
public class WeightAverageTests
{
    private static readonly UNetConfig Tiny = TrainingTests.Tiny;

    [Fact]
    public void TheAverageIsTheWarmedUpExponentialMeanOfEveryWeightAndStatistic()
    {
        var graph = UNet.Build(Tiny);
        using var model = new GraphModule(graph);
        var w0 = model.ExportWeights();
        var w1 = TestFiles.WithBnStatistics(graph, 1);
        var w2 = TestFiles.WithBnStatistics(graph, 2);
        using var average = new WeightAverage(model, 0.9);
        model.LoadWeights(w1, "w1");
        average.Update(model);
        model.LoadWeights(w2, "w2");
        average.Update(model);
        // the decay warms up: min(0.9, 1/10) for the first update, min(0.9, 2/11) for the second
        Assert.Equal(0.1, WeightAverage.DecayAt(0.9, 0), 12);
        Assert.Equal(2.0 / 11, WeightAverage.DecayAt(0.9, 1), 12);
        Assert.Equal(0.9, WeightAverage.DecayAt(0.9, 1000), 12);
        double d0 = 0.1, d1 = 2.0 / 11;
        var exported = average.Export();
        Assert.Contains(exported.Keys, k => k.EndsWith(".running_var", StringComparison.Ordinal)); // batch-norm statistics too
        foreach (var k in w0.Keys)
            for (int i = 0; i < w0[k].Data.Length; i++)
            {
                double expected = (w0[k].Data[i] * d0 + w1[k].Data[i] * (1 - d0)) * d1 + w2[k].Data[i] * (1 - d1);
                Assert.True(Math.Abs(expected - exported[k].Data[i]) < 1e-6, $"{k}[{i}]: {exported[k].Data[i]} vs {expected}");
            }
        // swapping puts the average into the model and the model's values into the average; swapping again undoes it
        average.Swap(model);
        var swapped = model.ExportWeights();
        foreach (var k in w0.Keys) Assert.Equal(exported[k].Data, swapped[k].Data);
        Assert.Equal(w2[w2.Keys.First()].Data, average.Export()[w2.Keys.First()].Data);
        average.Swap(model);
        foreach (var k in w0.Keys) Assert.Equal(w2[k].Data, model.ExportWeights()[k].Data);
    }

    [Fact]
    public void AveragedTrainingKeepsTheAverageAndResumesExactly()
    {
        var ds = TrainingTests.TinySet();
        var o = new TrainOptions { Epochs = 3, BatchSize = 4, Seed = 2, LearningRate = 5e-3, AverageDecay = 0.9 };
        var plain = TrainJob.Run(ds, "unet", Tiny, o with { AverageDecay = 0 });
        var averaged = TrainJob.Run(ds, "unet", Tiny, o);
        // the kept weights are the average's at its best epoch: they score the Dice recorded for it, and differ from plain training's
        using (var model = new GraphModule(averaged.Model.Graph, averaged.Model.Weights))
            Assert.Equal(averaged.Result.BestValDice, Evaluator.MeanDice(model, ds.Split("val"), averaged.Model.Meta.Task), 9);
        Assert.Contains(plain.Model.Weights.Keys, k => !plain.Model.Weights[k].Data.SequenceEqual(averaged.Model.Weights[k].Data));
        Assert.Equal(0.9, averaged.Model.Meta.Training!["options"]!["average_decay"]!.GetValue<double>());

        // interrupted after epoch 2 and resumed: the average continues from its checkpoint, as if never stopped
        var ckpt = Path.Combine(TestFiles.TempDir(), "ckpt");
        var partial = o with { CheckpointDir = ckpt };
        Assert.Throws<OperationCanceledException>(() => TrainJob.Run(ds, "unet", Tiny, partial, p =>
        {
            if (p.Epoch == 3) throw new OperationCanceledException();
        }));
        Assert.True(File.Exists(Path.Combine(ckpt, "average.safetensors")));
        var resumed = TrainJob.Run(ds, "unet", Tiny, partial with { Resume = true });
        Assert.Equal(averaged.Result.History.Select(h => h.ValDice), resumed.Result.History.Select(h => h.ValDice));
        foreach (var k in averaged.Model.Weights.Keys) Assert.Equal(averaged.Model.Weights[k].Data, resumed.Model.Weights[k].Data);
    }
}

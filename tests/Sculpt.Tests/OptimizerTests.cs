using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Training;
using TorchSharp;
using static TorchSharp.torch;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// Sculpt's optimizers against TorchSharp's own (the independent reference): the same weights after every step, bit for bit.
/// </summary>
public class OptimizerTests
{
    private static readonly UNetConfig Tiny = new() { Depth = 2, BaseWidth = 4, InputSize = 16 };

    /// <summary>Two copies of one network trained on the same batches, one per optimizer: the largest weight difference per step.</summary>
    private static List<double> Compare(Func<GraphModule, Sculpt.Training.Optimizer> ours, Func<GraphModule,
        torch.optim.Optimizer> theirs, int steps)
    {
        var graph = UNet.Build(Tiny);
        torch.manual_seed(11);
        using var a = new GraphModule(graph);
        using var b = new GraphModule(graph, a.ExportWeights());
        using var mine = ours(a);
        var reference = theirs(b);
        var differences = new List<double>();
        var generator = new Random(3);
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            var x = tensor(Enumerable.Range(0, 2 * 16 * 16).Select(_ => (float)generator.NextDouble()).ToArray(),
                new long[] { 2, 1, 16, 16 });
            var y = tensor(Enumerable.Range(0, 2 * 16 * 16).Select(i => (long)(i % 16 > 7 ? 1 : 0)).ToArray(), new long[] { 2, 16, 16 });
            mine.ZeroGrad();
            Losses.DiceCe(a.forward(x), y).backward();
            mine.Step();
            reference.zero_grad();
            Losses.DiceCe(b.forward(x), y).backward();
            reference.step();
            var wa = a.ExportWeights(); var wb = b.ExportWeights();
            differences.Add(wa.Keys.Max(k => wa[k].Data.Zip(wb[k].Data, (p, q) => (double)Math.Abs(p - q)).Max()));
        }
        return differences;
    }

    [Fact]
    public void AdamEqualsTorchOptimAdamBitForBit()
    {
        var d = Compare(m => new Sculpt.Training.Adam(m.parameters(), 2e-3, 1e-5),
            m => torch.optim.Adam(m.parameters(), 2e-3, weight_decay: 1e-5), 6);
        Assert.All(d, x => Assert.Equal(0.0, x));
    }

    [Fact]
    public void NesterovSgdEqualsTorchOptimSgdBitForBit()
    {
        var d = Compare(m => new NesterovSgd(m.parameters(), 1e-2, 1e-5),
            m => torch.optim.SGD(m.parameters(), 1e-2, momentum: 0.9, weight_decay: 1e-5, nesterov: true), 6);
        Assert.All(d, x => Assert.Equal(0.0, x));
    }

    [Fact]
    public void ResumedAdamContinuesExactlyWhereItStopped()
    {
        var graph = UNet.Build(Tiny);
        torch.manual_seed(4);
        using var a = new GraphModule(graph);
        var start = a.ExportWeights();
        using var b = new GraphModule(graph, start);
        using var straight = new Sculpt.Training.Adam(a.parameters(), 2e-3, 0);
        using var first = new Sculpt.Training.Adam(b.parameters(), 2e-3, 0);
        var x = torch.rand(2, 1, 16, 16);
        var y = (torch.rand(2, 16, 16) > 0.5).to_type(ScalarType.Int64);
        void Step(GraphModule m, Sculpt.Training.Optimizer o) { o.ZeroGrad(); Losses.DiceCe(m.forward(x), y).backward(); o.Step(); }
        for (int s = 0; s < 3; s++) { Step(a, straight); Step(b, first); }
        // a checkpoint: weights and optimizer state through their files, into a fresh module and optimizer
        var state = Safetensors.Read(Safetensors.Write(first.ExportState()), "optimizer state");
        using var c = new GraphModule(graph, Safetensors.Read(Safetensors.Write(b.ExportWeights()), "weights"));
        using var resumed = new Sculpt.Training.Adam(c.parameters(), 2e-3, 0);
        resumed.LoadState(state, first.Steps, "optimizer state");
        for (int s = 0; s < 3; s++) { Step(a, straight); Step(c, resumed); }
        var wa = a.ExportWeights(); var wc = c.ExportWeights();
        foreach (var k in wa.Keys) Assert.Equal(wa[k].Data, wc[k].Data);
        Assert.Equal(6, resumed.Steps);

        // a state that does not belong to these parameters is refused, naming its source
        using var other = new Sculpt.Training.Adam(c.parameters(), 2e-3, 0);
        var missing = new WeightSet(); foreach (var k in state.Keys.Skip(1)) missing[k] = state[k];
        Assert.Contains("exp_avg.0 missing", Assert.Throws<InvalidDataException>(() => other.LoadState(missing, 3, "opt.st")).Message);
        var extra = new WeightSet(); foreach (var k in state.Keys) extra[k] = state[k];
        extra["exp_avg.999"] = state["exp_avg.0"];
        Assert.StartsWith("opt.st: unexpected optimizer state exp_avg.999",
            Assert.Throws<InvalidDataException>(() => other.LoadState(extra, 3, "opt.st")).Message);
    }
}

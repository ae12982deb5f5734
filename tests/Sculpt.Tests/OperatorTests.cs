using Sculpt.Graph;
using Sculpt.Pruning;
using Sculpt.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace Sculpt.Tests;

/// <summary>The operators real exports brought in, on one hand-built graph: JSON, ONNX, dependency rules, slicing.</summary>
public class OperatorTests
{
    /// <summary>
    /// conv → instance norm → per-channel PReLU → conv → group norm → hardswish → per-channel scale → + scalar → ReLU6
    /// → pad → tanh → depthwise → hardsigmoid ⊗ squeeze-excitation gate (pool → fc → relu → fc → sigmoid) ⊗ one-channel
    /// spatial gate → conv head → softmax.
    /// </summary>
    internal static NetworkGraph NewOps()
    {
        Node[] nodes =
        [
            new InputNode { Name = "x", Channels = 2, Height = 12, Width = 12 },
            new Conv2dNode { Name = "c1", Inputs = { "x" }, InChannels = 2, OutChannels = 8, Kernel = [3, 3], Padding = [1, 1] },
            new InstanceNorm2dNode { Name = "in1", Inputs = { "c1" }, Channels = 8 },
            new PReluNode { Name = "pr", Inputs = { "in1" }, Channels = 8, Shared = false },
            new Conv2dNode { Name = "c2", Inputs = { "pr" }, InChannels = 8, OutChannels = 8, Kernel = [3, 3], Padding = [1, 1], Bias = false },
            new GroupNormNode { Name = "gn", Inputs = { "c2" }, Channels = 8, Groups = 4 },
            new HardSwishNode { Name = "hs", Inputs = { "gn" } },
            new ElementwiseNode { Name = "scale", Inputs = { "hs" }, Kind = "mul", ConstantChannels = 8 },
            new ElementwiseNode { Name = "shift", Inputs = { "scale" }, Kind = "add", Scalar = 0.25 },
            new ClipNode { Name = "relu6", Inputs = { "shift" }, Min = 0, Max = 6 },
            new PadNode { Name = "pad", Inputs = { "relu6" }, Pads = [1, 0, 0, 1] },
            new TanhNode { Name = "th", Inputs = { "pad" } },
            new Conv2dNode { Name = "dw", Inputs = { "th" }, InChannels = 8, OutChannels = 8, Kernel = [3, 3], Padding = [1, 1], Groups = 8 },
            new HardSigmoidNode { Name = "hsig", Inputs = { "dw" }, Alpha = 1.0 / 6 },
            new AdaptiveAvgPool2dNode { Name = "pool", Inputs = { "hsig" } },
            new Conv2dNode { Name = "fc1", Inputs = { "pool" }, InChannels = 8, OutChannels = 4, Kernel = [1, 1] },
            new ReluNode { Name = "fc1.relu", Inputs = { "fc1" } },
            new Conv2dNode { Name = "fc2", Inputs = { "fc1.relu" }, InChannels = 4, OutChannels = 8, Kernel = [1, 1] },
            new SigmoidNode { Name = "gate", Inputs = { "fc2" } },
            new ElementwiseNode { Name = "se", Inputs = { "hsig", "gate" }, Kind = "mul" },
            new Conv2dNode { Name = "att", Inputs = { "se" }, InChannels = 8, OutChannels = 1, Kernel = [1, 1] },
            new SigmoidNode { Name = "att.sig", Inputs = { "att" } },
            new ElementwiseNode { Name = "gated", Inputs = { "se", "att.sig" }, Kind = "mul" },
            new ElementwiseNode { Name = "centre", Inputs = { "gated" }, Kind = "sub", Scalar = 1, ConstantFirst = true },
            new Conv2dNode { Name = "head", Inputs = { "centre" }, InChannels = 8, OutChannels = 3, Kernel = [1, 1] },
            new SoftmaxNode { Name = "softmax", Inputs = { "head" } },
            new OutputNode { Name = "y", Inputs = { "softmax" } },
        ];
        var g = new NetworkGraph(nodes);
        g.Validate();
        return g;
    }

    private static WeightSet Randomised(NetworkGraph g, int seed)
    {
        var w = TestFiles.WithBnStatistics(g, seed);
        var r = new Random(seed);
        // non-trivial norms, slopes and constants, so that slicing them wrongly shows
        foreach (var k in w.Keys.Where(k => k.StartsWith("in1.") || k.StartsWith("gn.") || k.StartsWith("pr.") || k.StartsWith("scale.")).ToList())
            w[k] = new TensorData(w[k].Shape, w[k].Data.Select(_ => (float)(0.5 + r.NextDouble())).ToArray());
        return w;
    }

    private static float[] Run(NetworkGraph g, WeightSet w, Tensor x)
    {
        using var m = new GraphModule(g, w);
        m.eval();
        using var _ = no_grad();
        return m.forward(x).data<float>().ToArray();
    }

    [Fact]
    public void JsonRoundTripAndCounts()
    {
        var g = NewOps();
        var back = NetworkGraph.FromJson(g.ToJson());
        Assert.Equal(g.ToJson(), back.ToJson());
        var infos = g.Validate().ToDictionary(i => i.Node.Name);
        Assert.Equal(16, infos["in1"].Params);
        Assert.Equal(8, infos["pr"].Params);
        Assert.Equal(16, infos["gn"].Params);
        Assert.Equal(8, infos["scale"].Params);
        Assert.Equal(0, infos["shift"].Params);
        Assert.Equal(new Shape(8, 13, 13), infos["pad"].Output);
        Assert.Equal(8 * 9 + 8, infos["dw"].Params);
        Assert.Equal(8L * 13 * 13 * 9, infos["dw"].Macs);
    }

    [Fact]
    public void OnnxRuntimeComputesWhatTorchSharpComputes()
    {
        var g = NewOps();
        Assert.True(OnnxTests.MaxDiffOrtVsTorch(new ModelPackage(g, Randomised(g, 1), new ModelMeta()), 3, 12, 12) <= 1e-5);
    }

    [Fact]
    public void DependencyRulesGroupWhatMustGoTogether()
    {
        var groups = ChannelGroups.Analyze(NewOps());
        // c2's space: group norm in blocks of 2, the per-channel scale tied, the depthwise conv tied, and the
        // squeeze-excitation gate's fc2 merged in through the Mul; the one-channel spatial gate merges nothing
        var main = groups.Groups.Single(gr => gr.Producers.Any(p => p.Node == "c2"));
        Assert.Equal(["c2", "fc2"], main.Producers.Select(p => p.Node).Order().ToArray());
        Assert.Equal(2, main.Block);
        Assert.Contains(main.Members, m => m.Node == "scale" && m.Role == Role.Tied);
        Assert.Contains(main.Members, m => m.Node == "dw" && m.Role == Role.Tied);
        Assert.Contains(main.Members, m => m.Node == "gn" && m.Role == Role.Norm);
        Assert.Equal(["att", "fc1", "head"], main.Consumers.Select(p => p.Node).Order().ToArray());
        var att = groups.Groups.Single(gr => gr.Producers.Any(p => p.Node == "att"));
        Assert.Equal(1, att.Width);
        // the PReLU slopes and instance norm follow c1's channels
        var first = groups.Groups.Single(gr => gr.Producers.Any(p => p.Node == "c1"));
        Assert.Contains(first.Members, m => m.Node == "pr" && m.Role == Role.Tied);
        Assert.Contains(first.Members, m => m.Node == "in1" && m.Role == Role.Norm);
        // softmax fixes the head's channels
        Assert.False(groups.Groups.Single(gr => gr.Producers.Any(p => p.Node == "head")).Prunable);
        // a group norm's groups go whole: half a group is refused
        var e = Assert.Throws<InvalidOperationException>(() => Slicer.Slice(groups, new Dictionary<int, int[]> { [main.Id] = [0, 1, 2, 4, 5] }, null));
        Assert.Contains("whole blocks of 2", e.Message);
    }

    [Fact]
    public void ZeroContributionChannelsSliceAwayExactly()
    {
        var g = NewOps();
        var w = Randomised(g, 2);
        var groups = ChannelGroups.Analyze(g);
        var keep = PruningTests.ZeroEveryKthChannel(groups, w, 2);
        var x = randn(2, 2, 12, 12);
        var before = Run(g, w, x);
        var (pg, pw) = Slicer.Slice(groups, keep, w);
        var after = Run(pg, pw!, x);
        Assert.True(before.Zip(after, (a, b) => Math.Abs(a - b)).Max() <= 1e-5);
        var gn = (GroupNormNode)pg["gn"];
        Assert.Equal((4, 2), (gn.Channels, gn.Groups));
        Assert.Equal(4, ((PReluNode)pg["pr"]).Channels);
        Assert.Equal(4, ((ElementwiseNode)pg["scale"]).ConstantChannels);
        Assert.Equal((4, 4, 4), (((Conv2dNode)pg["dw"]).InChannels, ((Conv2dNode)pg["dw"]).OutChannels, ((Conv2dNode)pg["dw"]).Groups));
        // and the sliced graph still exports and runs in ONNX Runtime as in TorchSharp
        Assert.True(OnnxTests.MaxDiffOrtVsTorch(new ModelPackage(pg, pw!, new ModelMeta()), 2, 12, 12) <= 1e-5);
    }
}

public class BatchNormRestoreTests
{
    [Fact]
    public void RestoredBatchNormsLeaveAFoldedImportComputingExactlyWhatItDid()
    {
        var (model, x, shape, _) = RealExportTests.Load("deeplabv3_resnet");
        Assert.DoesNotContain(model.Graph.Nodes, n => n is BatchNorm2dNode);
        int candidates = BatchNormRestore.Candidates(model.Graph).Count;
        Assert.True(candidates > 10);
        var calibration = new[] { tensor(x, shape) };
        var restored = BatchNormRestore.Apply(model, calibration);
        Assert.Equal(candidates, restored.Graph.Nodes.OfType<BatchNorm2dNode>().Count());
        // the head and the ASPP projection's output layer get none: the output layer stays as it is
        Assert.DoesNotContain(restored.Graph.Nodes, n => n.Name.StartsWith("classifier.4"));
        var before = RealExportTests.RunTorch(model.Graph, model.Weights, x, shape);
        var after = RealExportTests.RunTorch(restored.Graph, restored.Weights, x, shape);
        double scale = before.Max(v => Math.Abs(v));
        Assert.True(before.Zip(after, (a, b) => Math.Abs(a - b)).Max() <= 1e-4 * Math.Max(1, scale));
        // in training mode each restored norm normalises its batch: on the calibration batch itself that is again the identity
        using var m = new GraphModule(restored.Graph, restored.Weights);
        m.train();
        using var _ = no_grad();
        var bn = restored.Graph.Nodes.OfType<BatchNorm2dNode>().First();
        float[]? fromTrain = null, fromEval = null;
        m.Forward(tensor(x, shape), (name, y) => { if (name == bn.Name) fromTrain = y.data<float>().ToArray(); });
        m.eval();
        m.Forward(tensor(x, shape), (name, y) => { if (name == bn.Name) fromEval = y.data<float>().ToArray(); });
        Assert.True(fromTrain!.Zip(fromEval!, (a, b) => Math.Abs(a - b)).Max() <= 1e-3 * Math.Max(1, fromEval!.Max(v => Math.Abs(v))));
    }
}

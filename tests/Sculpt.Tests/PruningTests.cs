using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Models;
using Sculpt.Pruning;
using Sculpt.Runtime;
using Sculpt.Training;
using Xunit;
using TorchSharp;
using static TorchSharp.torch;

namespace Sculpt.Tests;

[Collection("serial")]
public class PruningTests
{
    static PruningTests() => TorchRuntime.Initialize();

    /// <summary>stem conv → BN → ReLU → residual block (conv-BN-ReLU-conv-BN + identity) → ReLU → depthwise → pointwise head.</summary>
    internal static NetworkGraph Residual()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", 2, 12, 12);
        var s = b.Relu("stem.relu", b.BatchNorm("stem.bn", b.Conv("stem.conv", x, 6, 3, padding: 1, bias: false)));
        var h = b.Relu("block.relu1", b.BatchNorm("block.bn1", b.Conv("block.conv1", s, 5, 3, padding: 1, bias: false)));
        h = b.BatchNorm("block.bn2", b.Conv("block.conv2", h, 6, 3, padding: 1, bias: false));
        var r = b.Relu("block.relu", b.AddNodes("block.add", s, h));
        var dw = b.Conv("dw", r, 6, 3, padding: 1, groups: 6);
        var pw = b.Relu("pw.relu", b.Conv("pw", dw, 4, 1));
        var grouped = b.Conv("grouped", pw, 4, 3, padding: 1, groups: 2);
        b.Output("y", b.Conv("head", grouped, 3, 1));
        return b.Build();
    }

    /// <summary>
    /// Zeroes every consumer's view of the dropped channels (the input-channel axis of each consumer weight, as its
    /// spec declares it), so that their outgoing contribution is exactly zero whatever computes them.
    /// </summary>
    internal static void ZeroOutgoing(ChannelGroups groups, WeightSet w, int groupId, int[] dropped)
    {
        var nodes = groups.Graph.Nodes.ToDictionary(n => n.Name);
        foreach (var m in groups.Groups[groupId].Consumers)
            foreach (var spec in nodes[m.Node].Weights().Where(s => s.InAxis >= 0 && s.InAxis != s.OutAxis))
            {
                var t = w[$"{m.Node}.{spec.Name}"];
                long outer = t.Shape[..spec.InAxis].Aggregate(1L, (p, q) => p * q), n = t.Shape[spec.InAxis];
                long inner = t.Shape[(spec.InAxis + 1)..].Aggregate(1L, (p, q) => p * q);
                for (long a = 0; a < outer; a++)
                    for (long c = 0; c < n; c++)
                        if (dropped.Contains((int)(c - m.Offset))) Array.Clear(t.Data, (int)((a * n + c) * inner), (int)inner);
            }
    }

    /// <summary>
    /// In every prunable group, zeroes the outgoing contribution of channels c with c % k == 1 (of whole blocks b with
    /// b % k == 1 where the group prunes in blocks, keeping at least one); returns the channels to keep.
    /// </summary>
    internal static Dictionary<int, int[]> ZeroEveryKthChannel(ChannelGroups groups, WeightSet w, int k)
    {
        var keep = new Dictionary<int, int[]>();
        foreach (var grp in groups.Prunable)
        {
            var dropped = Enumerable.Range(0, grp.Width).Where(c => c / grp.Block % k == 1).ToArray();
            if (dropped.Length == grp.Width) continue;
            ZeroOutgoing(groups, w, grp.Id, dropped);
            keep[grp.Id] = Enumerable.Range(0, grp.Width).Except(dropped).ToArray();
        }
        return keep;
    }

    private static Tensor Run(NetworkGraph g, WeightSet w, Tensor x)
    {
        using var m = new GraphModule(g, w);
        m.eval();
        using var _ = no_grad();
        return m.forward(x).detach().clone();
    }

    [Fact]
    public void PruningZeroContributionChannelsOfAUNetLeavesOutputsUnchanged()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 16, Classes = 2 });
        var w = TestFiles.WithBnStatistics(g, 1);
        var groups = ChannelGroups.Analyze(g);
        // drop every other channel of every group, including those feeding concat skips at an offset
        var keep = ZeroEveryKthChannel(groups, w, 2);
        var x = randn(2, 1, 16, 16);
        var before = Run(g, w, x);
        var (pg, pw) = Slicer.Slice(groups, keep, w);
        var after = Run(pg, pw!, x);
        Assert.True((before - after).abs().max().item<float>() <= 1e-5);
        Assert.True(pg.ParameterCount() < g.ParameterCount() / 3);
    }

    [Fact]
    public void PruningZeroContributionChannelsOfAResidualNetLeavesOutputsUnchanged()
    {
        var g = Residual();
        var w = TestFiles.WithBnStatistics(g, 2);
        var groups = ChannelGroups.Analyze(g);
        // stem and block.conv2 are merged by the Add; the depthwise conv is tied to the same group
        var merged = groups.Groups.Single(gr => gr.Producers.Select(p => p.Node).OrderBy(n => n).SequenceEqual(new[] { "block.conv2", "stem.conv" }));
        Assert.Contains(merged.Members, m => m.Node == "dw" && m.Role == Role.Tied);
        Assert.Equal(6, merged.Width);
        // the grouped convolution's spaces are protected
        Assert.False(groups.Groups.Single(gr => gr.Producers.Any(p => p.Node == "grouped")).Prunable);
        Assert.False(groups.Groups.Single(gr => gr.Producers.Any(p => p.Node == "pw")).Prunable);
        // channels 1 and 4 of the merged group: zero their slices in every consumer (block.conv1 and, through
        // the depthwise conv that shares the group, pw); the depthwise filters of those channels then feed nothing
        ZeroOutgoing(groups, w, merged.Id, new[] { 1, 4 });
        var x = randn(3, 2, 12, 12);
        var keep = new Dictionary<int, int[]> { [merged.Id] = new[] { 0, 2, 3, 5 } };
        var inner = groups.Groups.Single(gr => gr.Producers.Any(p => p.Node == "block.conv1"));
        ZeroOutgoing(groups, w, inner.Id, new[] { 0, 3 });
        var before = Run(g, w, x);
        keep[inner.Id] = new[] { 1, 2, 4 };
        var (pg, pw) = Slicer.Slice(groups, keep, w);
        Assert.True((before - Run(pg, pw!, x)).abs().max().item<float>() <= 1e-5);
        var dw = (Conv2dNode)pg["dw"];
        Assert.Equal((4, 4, 4), (dw.InChannels, dw.OutChannels, dw.Groups));
        Assert.Equal(4, ((BatchNorm2dNode)pg["stem.bn"]).Channels);
        Assert.Equal(3, ((Conv2dNode)pg["block.conv1"]).OutChannels);
    }

    [Fact]
    public void PruningZeroContributionChannelsOfADeepLabV3LeavesOutputsUnchanged()
    {
        // the torchvision structure at a small width: bottlenecks with downsample, dilation, ASPP with image pooling
        var g = DeepLabV3.Build(new DeepLabConfig { InChannels = 3, Classes = 2, InputSize = 32, Width = 4, Blocks = new[] { 2, 1, 2, 1 }, AsppChannels = 6, AsppRates = new[] { 2, 3, 4 } });
        var w = TestFiles.WithBnStatistics(g, 4);
        var groups = ChannelGroups.Analyze(g);
        // every layer's residual stream is one group: layer1.0.downsample, layer1.0.conv3 and layer1.1.conv3 are merged
        var stream = groups.Groups.Single(gr => gr.Producers.Any(p => p.Node == "backbone.layer1.0.conv3"));
        Assert.Equal(new[] { "backbone.layer1.0.conv3", "backbone.layer1.0.downsample.0", "backbone.layer1.1.conv3" }, stream.Producers.Select(p => p.Node).Order().ToArray());
        Assert.True(stream.Prunable);
        // the ASPP concat maps back to its five branches at offsets 0, 6, 12, 18, 24
        var project = groups.Groups.Where(gr => gr.Consumers.Any(m => m.Node == "classifier.0.project.0")).ToList();
        Assert.Equal(5, project.Count);
        Assert.Equal(new[] { 0, 6, 12, 18, 24 }, project.Select(gr => gr.Consumers.Single(m => m.Node == "classifier.0.project.0").Offset).Order().ToArray());
        var keep = ZeroEveryKthChannel(groups, w, 3);
        var x = randn(2, 3, 32, 32);
        var before = Run(g, w, x);
        var (pg, pw) = Slicer.Slice(groups, keep, w);
        Assert.True((before - Run(pg, pw!, x)).abs().max().item<float>() <= 1e-5);
        Assert.True(pg.ParameterCount() < g.ParameterCount() * 0.6);
    }

    [Fact]
    public void HeadInputChannelsThatAreDuplicateOrConstantGoFirstAndTheRefittedHeadKeepsTheLogits()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 16, Classes = 2 });
        var w = TestFiles.WithBnStatistics(g, 5);
        var groups = ChannelGroups.Analyze(g);
        var group = groups.Groups[Assert.Single(HeadInput.Find(groups).Keys)];
        Assert.Equal("dec0.conv2", group.Name);
        // channel 1 repeats channel 0 (same filter, same batch norm); channel 3 is a positive constant (zero filter, β = 1)
        var filter = w["dec0.conv2.weight"];
        long per = filter.Count / filter.Shape[0];
        Array.Copy(filter.Data, 0, filter.Data, per, per);
        Array.Clear(filter.Data, (int)(3 * per), (int)per);
        foreach (var p in new[] { "weight", "bias", "running_mean", "running_var" }) w[$"dec0.bn2.{p}"].Data[1] = w[$"dec0.bn2.{p}"].Data[0];
        w["dec0.bn2.running_mean"].Data[3] = 0;
        w["dec0.bn2.bias"].Data[3] = 1;
        var model = new ModelPackage(g, w, new ModelMeta());
        var x = randn(4, 1, 16, 16);
        var head = HeadInput.Measure(model, groups, new[] { x });
        var scores = head.Scores(group.Id);
        var lowest = Enumerable.Range(0, 4).OrderBy(c => scores[c]).Take(2).ToHashSet();
        Assert.Contains(3, lowest);
        Assert.True(lowest.Contains(0) ^ lowest.Contains(1));
        // in a global ranking the group competes with the criterion's own values, handed out in removal order
        double[] criterion = { 0.4, 1.9, 0.7, 1.0 };
        var reordered = head.InRemovalOrder(group.Id, criterion);
        Assert.Equal(criterion.Order(), reordered.Order());
        Assert.Equal(Enumerable.Range(0, 4).OrderBy(c => scores[c]), Enumerable.Range(0, 4).OrderBy(c => reordered[c]));
        var keep = new Dictionary<int, int[]> { [group.Id] = Enumerable.Range(0, 4).Except(lowest).ToArray() };
        var (pg, pw) = Slicer.Slice(groups, keep, w);
        head.Refit(keep, w, pw!);
        Assert.Equal(2, ((Conv2dNode)pg["head"]).InChannels);
        Assert.True((Run(g, w, x) - Run(pg, pw!, x)).abs().max().item<float>() <= 1e-4);
    }

    [Fact]
    public void RefittedHeadIsTheLeastSquaresFitOfTheDenseLogits()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 16, Classes = 2 });
        var w = TestFiles.WithBnStatistics(g, 6);
        // a plain batch norm before the head's ReLU, so no head-input channel is dead or constant (the fit is then unique)
        foreach (var (p, v) in new[] { ("weight", 1f), ("bias", 0f), ("running_mean", 0f), ("running_var", 1f) }) Array.Fill(w[$"dec0.bn2.{p}"].Data, v);
        var groups = ChannelGroups.Analyze(g);
        int id = Assert.Single(HeadInput.Find(groups).Keys);
        var x = randn(4, 1, 16, 16);
        var head = HeadInput.Measure(new ModelPackage(g, w, new ModelMeta()), groups, new[] { x });
        int[] kept = { 0, 2 };
        var (pg, pw) = Slicer.Slice(groups, new Dictionary<int, int[]> { [id] = kept }, w);
        head.Refit(new Dictionary<int, int[]> { [id] = kept }, w, pw!);
        // independently: regress the dense logits on the kept activations and a constant with torch's lstsq
        Tensor activations;
        using (var m = new GraphModule(g, w))
        {
            m.eval();
            using var _ = no_grad();
            Tensor? captured = null;
            m.Forward(x, (name, y) => { if (name == g["head"].Inputs[0]) captured = y.detach().clone(); });
            activations = captured!;
        }
        var a = activations.index_select(1, tensor(new long[] { 0, 2 })).permute(0, 2, 3, 1).reshape(-1, 2).to_type(ScalarType.Float64);
        var design = cat(new[] { a, ones(a.shape[0], 1, dtype: ScalarType.Float64) }, 1);
        var target = Run(g, w, x).permute(0, 2, 3, 1).reshape(-1, 2).to_type(ScalarType.Float64);
        var solution = linalg.lstsq(design, target).Solution; // rows: kept channel 0, kept channel 2, bias; columns: classes
        var refitW = tensor(pw!["head.weight"].Data).reshape(2, 2).to_type(ScalarType.Float64);
        var refitB = tensor(pw!["head.bias"].Data).to_type(ScalarType.Float64);
        Assert.True((refitW - solution[..2].t()).abs().max().item<double>() <= 1e-4);
        Assert.True((refitB - solution[2]).abs().max().item<double>() <= 1e-4);
    }

    [Fact]
    public void DeepLabV3ResNet50HasTorchvisionsParameterCount()
    {
        // torchvision documents 42,004,074 parameters for deeplabv3_resnet50 with 21 classes and its auxiliary
        // FCN head (3×3 conv 1024→256, BN, 1×1 conv 256→21: 2,365,205); without it and with EchoNet's
        // 1-channel classifier (20 × 257 fewer):
        Assert.Equal(42_004_074 - 2_365_205, DeepLabV3.Build(new DeepLabConfig { Classes = 21 }).ParameterCount());
        Assert.Equal(42_004_074 - 2_365_205 - 20 * 257, DeepLabV3.Build(new DeepLabConfig { Classes = 1 }).ParameterCount());
    }

    [Fact]
    public void HalvingEveryGroupOfAUNetGivesExactlyTheHalfWidthUNet()
    {
        var g8 = UNet.Build(new UNetConfig { Depth = 3, BaseWidth = 8, InputSize = 32 });
        var g4 = UNet.Build(new UNetConfig { Depth = 3, BaseWidth = 4, InputSize = 32 });
        var groups = ChannelGroups.Analyze(g8);
        var pruned = Slicer.ApplyWidths(groups, groups.Prunable.ToDictionary(g => g.Id, g => g.Width / 2));
        Assert.Equal(g4.ParameterCount(), pruned.ParameterCount());
        Assert.Equal(g4.MacCount(), pruned.MacCount());
        Assert.Equal(g4.ToJson(), pruned.ToJson());
    }

    [Theory]
    [InlineData(AllocationMode.Global)]
    [InlineData(AllocationMode.Uniform)]
    [InlineData(AllocationMode.CostAware)]
    public void AllocationHitsTheBudgetAndNeverEmptiesAGroup(AllocationMode mode)
    {
        var g = UNet.Build(new UNetConfig { Depth = 3, BaseWidth = 16, InputSize = 32 });
        var groups = ChannelGroups.Analyze(g);
        var w = TestFiles.WithBnStatistics(g, 3);
        var scores = Importance.Score(groups, w, Criterion.L2);
        var o = new AllocationOptions { Mode = mode, MaxGroupRatio = 1.0, HeadInput = HeadInputPolicy.Whole };
        foreach (double target in new[] { g.ParameterCount() / 3.0, g.ParameterCount() / 40.0, 10.0 })
        {
            var keep = Allocation.Allocate(groups, scores, new Budget("params", target), o);
            Assert.All(keep.Values, k => Assert.NotEmpty(k));
            var (pg, _) = Slicer.Slice(groups, keep, null);
            if (target > 10) Assert.True(pg.ParameterCount() <= target, $"{pg.ParameterCount()} > {target}");
        }
        // a per-group cap keeps at least 10% of every group
        var capped = Allocation.Allocate(groups, scores, new Budget("params", 10), o with { MaxGroupRatio = 0.9 });
        foreach (var grp in groups.Prunable) Assert.True(capped[grp.Id].Length >= Math.Ceiling(grp.Width * 0.1));
        // a width floor holds even for a target below what the floor allows
        var floored = Allocation.Allocate(groups, scores, new Budget("params", 10), o with { MinChannels = 3 });
        var head = Assert.Single(Allocation.Fixed(groups, o));
        Assert.Contains(groups.Groups[head].Consumers, m => m.Node == "head"); // the group the 1×1 output conv reads
        foreach (var grp in groups.Prunable) Assert.Equal(grp.Id == head ? grp.Width : Math.Min(3, grp.Width), floored[grp.Id].Length);
        var unprotected = Allocation.Allocate(groups, scores, new Budget("params", 10), o with { MinChannels = 3, HeadInput = HeadInputPolicy.Ranked });
        Assert.Equal(3, unprotected[head].Length);
    }

    /// <summary>
    /// Two layers with equal importance everywhere, one at 32×32 and one at 8×8 after pooling: under a MAC budget,
    /// cost-aware allocation takes channels from the 32×32 layer (each frees 16× the MACs), plain global ranking
    /// does not tell them apart.
    /// </summary>
    [Fact]
    public void CostAwareAllocationRemovesWhatBuysTheMostBudgetFirst()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", 1, 32, 32);
        var big = b.Relu("big.relu", b.Conv("big", x, 8, 3, padding: 1));
        var pooled = b.MaxPool("pool", big, 4, 4);
        var small = b.Relu("small.relu", b.Conv("small", pooled, 8, 3, padding: 1));
        b.Output("y", b.Conv("head", small, 1, 1));
        var g = b.Build();
        var groups = ChannelGroups.Analyze(g);
        var scores = groups.Prunable.ToDictionary(grp => grp.Id, grp => Enumerable.Repeat(1.0, grp.Width).ToArray());
        var o = new AllocationOptions { Mode = AllocationMode.CostAware, MaxGroupRatio = 1.0, MinChannels = 1, HeadInput = HeadInputPolicy.Ranked };
        var keep = Allocation.Allocate(groups, scores, new Budget("macs", g.MacCount() * 0.6), o);
        int Kept(string producer) => keep[groups.Prunable.Single(grp => grp.Producers.Any(m => m.Node == producer)).Id].Length;
        Assert.True(Kept("big") < 8 && Kept("small") == 8, $"big keeps {Kept("big")}, small keeps {Kept("small")}");
        var (pruned, _) = Slicer.Slice(groups, keep, null);
        Assert.True(pruned.MacCount() <= g.MacCount() * 0.6);
    }

    [Fact]
    public void FineTuneBudgetGivesCheaperModelsProportionallyMoreSamples()
    {
        Assert.Equal(96, PruneJob.FineTuneSampleCount(96, 1000, 1000, 420));
        Assert.Equal(192, PruneJob.FineTuneSampleCount(96, 1000, 500, 420));
        Assert.Equal(146, PruneJob.FineTuneSampleCount(96, 1000, 662, 420)); // ceil(145.02)
        Assert.Equal(420, PruneJob.FineTuneSampleCount(96, 1000, 10, 420));
        Assert.Equal(420, PruneJob.FineTuneSampleCount(0, 1000, 1000, 420));
    }

    [Fact]
    public void RoundToKeepsWidthsMultiplesOfK()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 16, InputSize = 16 });
        var groups = ChannelGroups.Analyze(g);
        var scores = Importance.Score(groups, TestFiles.WithBnStatistics(g, 4), Criterion.L1);
        var keep = Allocation.Allocate(groups, scores, new Budget("params", g.ParameterCount() / 5.0), new AllocationOptions { RoundTo = 4 });
        Assert.All(keep.Values, k => Assert.Equal(0, k.Length % 4));
    }

    [Theory]
    [InlineData(Criterion.L1)]
    [InlineData(Criterion.L2)]
    [InlineData(Criterion.BnScale)]
    [InlineData(Criterion.Fpgm)]
    [InlineData(Criterion.Random)]
    public void CriteriaGiveNormalisedScoresPerGroup(Criterion c)
    {
        var g = Residual();
        var groups = ChannelGroups.Analyze(g);
        var s = Importance.Score(groups, TestFiles.WithBnStatistics(g, 5), c, seed: 1);
        Assert.Equal(groups.Prunable.Select(p => p.Id).OrderBy(i => i), s.Keys.OrderBy(i => i));
        foreach (var (id, v) in s) { Assert.Equal(groups.Groups[id].Width, v.Length); Assert.Equal(1.0, v.Average(), 9); }
        Assert.Equal(s[s.Keys.First()], Importance.Score(groups, TestFiles.WithBnStatistics(g, 5), c, seed: 1)[s.Keys.First()]);
    }

    [Fact]
    public void L1ImportanceEqualsHandComputedSums()
    {
        // one group: conv a (producer, 3 filters) → conv b (consumer); no BN
        var b = new GraphBuilder();
        var x = b.Input("x", 1, 4, 4);
        var a = b.Conv("a", x, 3, 1, bias: false);
        b.Output("o", b.Conv("b", a, 1, 1, bias: false));
        var g = b.Build();
        var w = new WeightSet
        {
            ["a.weight"] = new TensorData(new long[] { 3, 1, 1, 1 }, new float[] { 1, -2, 3 }),
            ["b.weight"] = new TensorData(new long[] { 1, 3, 1, 1 }, new float[] { 4, 0, -2 }),
        };
        var groups = ChannelGroups.Analyze(g);
        var s = Importance.Score(groups, w, Criterion.L1)[groups.Prunable.Single().Id];
        // producer |w|/mean = [1,2,3]/2, consumer [4,0,2]/2, sum [2.5,1,2.5], normalised by mean 2
        Assert.Equal(new[] { 1.25, 0.5, 1.25 }, s.Select(v => Math.Round(v, 12)));
    }

    [Fact]
    public void TaylorScoresComeFromCalibrationGradients()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "d");
        SynthDataset.Write(dir, new SynthOptions { Count = 10, Size = 32, Seed = 1 });
        var ds = SegmentationDataset.Load(dir);
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 32 });
        var pkg = new ModelPackage(g, TestFiles.WithBnStatistics(g, 6), new ModelMeta { Task = TrainJob.TaskFor(ds, Batches.Statistics(ds.Samples, 1)) });
        var grads = PruneJob.CalibrationGradients(pkg, ds.Samples, pkg.Meta.Task, 2, 4, 0);
        Assert.Contains(grads.Values, t => t.Data.Any(v => v != 0));
        var groups = ChannelGroups.Analyze(g);
        var s = Importance.Score(groups, pkg.Weights, Criterion.Taylor, grads);
        // a channel whose parameters are all zero has zero Taylor score
        var grp = groups.Groups.Single(x => x.Name == "enc0.conv1");
        var w = pkg.Weights;
        foreach (var m in grp.Members)
        {
            var keys = m.Role == Role.Producer ? new[] { $"{m.Node}.weight" } : m.Role == Role.Norm ? new[] { $"{m.Node}.weight", $"{m.Node}.bias" } : Array.Empty<string>();
            foreach (var k in keys) { var t = w[k]; long per = t.Count / t.Shape[0]; Array.Clear(t.Data, 0, (int)per); }
            if (m.Role == Role.Consumer) { var t = w[$"{m.Node}.weight"]; long inner = 9; for (int o = 0; o < t.Shape[0]; o++) Array.Clear(t.Data, (int)(o * t.Shape[1] * inner), (int)inner); }
        }
        var s2 = Importance.Score(groups, w, Criterion.Taylor, grads);
        Assert.Equal(0.0, s2[grp.Id][0]);
    }

    [Fact]
    public void UnreachableTargetIsRefusedBeforeAnyWork()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 16 });
        var e = Assert.Throws<PruneException>(() => PruneJob.CheckReachable(g, new PruneOptions { MaxParams = 5 }));
        Assert.Contains("cannot be reached", e.Message);
        Assert.Throws<ArgumentException>(() => PruneJob.CheckReachable(g, new PruneOptions { Compression = 10, MaxParams = 100 }));
    }

    private static (ModelPackage Dense, SegmentationDataset Data) TinyTrained()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "d");
        SynthDataset.Write(dir, new SynthOptions { Count = 20, Size = 32, Seed = 4 });
        var ds = SegmentationDataset.Load(dir);
        var (pkg, _) = TrainJob.Run(ds, "unet", new UNetConfig { Depth = 2, BaseWidth = 8, InputSize = 32 }, new TrainOptions { Epochs = 2, BatchSize = 4, Seed = 1 });
        return (pkg, ds);
    }

    [Fact]
    public void IterativePruningIsDeterministicAndResumable()
    {
        var (dense, ds) = TinyTrained();
        var o = new PruneOptions { Compression = 8, Steps = 3, MaxStepRatio = 2, FineTuneEpochs = 1, FinalEpochs = 1, BatchSize = 4, CalibrationBatches = 2, Seed = 3, Distill = true };
        var runA = Path.Combine(TestFiles.TempDir(), "a");
        var (a, stepsA) = PruneJob.Run(dense, ds, o, runA);
        Assert.Equal(4, stepsA.Count);
        Assert.True(dense.Graph.ParameterCount() / (double)a.Graph.ParameterCount() >= 8);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(runA, "steps.jsonl")).Length);
        Assert.Equal(3, a.Meta.PruningHistory.Count(h => h["step"] != null));
        // interrupted during step 2, then resumed: same result as the uninterrupted run
        var runB = Path.Combine(TestFiles.TempDir(), "b");
        Assert.Throws<OperationCanceledException>(() => PruneJob.Run(dense, ds, o, runB, progress: p =>
        {
            if (p.Step == 2 && p.Phase == "fine-tune") throw new OperationCanceledException();
        }));
        Assert.Equal(2, File.ReadAllLines(Path.Combine(runB, "steps.jsonl")).Length);
        int resumedFrom = -1;
        var (b, stepsB) = PruneJob.Run(dense, ds, o, runB, resume: true, progress: p => { if (resumedFrom < 0) resumedFrom = p.Step; });
        Assert.Equal(2, resumedFrom);
        Assert.Equal(stepsA.Select(s => (s.Params, s.ValDice)), stepsB.Select(s => (s.Params, s.ValDice)));
        Assert.Equal(a.Graph.ToJson(), b.Graph.ToJson());
        foreach (var k in a.Weights.Keys) Assert.Equal(a.Weights[k].Data, b.Weights[k].Data);
    }

    [Fact]
    public void MacTargetAndMinDiceSelection()
    {
        var (dense, ds) = TinyTrained();
        long macs = dense.Graph.MacCount();
        var o = new PruneOptions { MaxMacs = macs / 6, Steps = 2, FineTuneEpochs = 0, FinalEpochs = 0, Criterion = Criterion.L1, MinDice = 0.0 };
        var (m, steps) = PruneJob.Run(dense, ds, o, Path.Combine(TestFiles.TempDir(), "r"));
        Assert.True(m.Graph.MacCount() <= macs / 6);
        // min Dice 0 accepts every step: the smallest model is chosen
        Assert.Equal(steps.Where(s => s.Step > 0).Min(s => s.Params), m.Graph.ParameterCount());
    }

    [Fact]
    public void WithoutRetrainingARunWhoseEveryBackOffCollapsesStopsAndKeepsTheLastGoodModel()
    {
        var (dense, ds) = TinyTrained();
        // a collapse threshold below any possible drop: every attempt of step 1 counts as a collapse
        var o = new PruneOptions
        {
            Compression = 4, Steps = 2, MaxStepRatio = 2, FineTuneEpochs = 0, FinalEpochs = 0, Criterion = Criterion.L1, CollapseDrop = -1,
            MaxBackoffs = 1, Control = false,
        };
        Assert.False(PruneJob.ContinuesThroughCollapse(o));
        var (m, steps) = PruneJob.Run(dense, ds, o, Path.Combine(TestFiles.TempDir(), "r"));
        Assert.Single(steps); // only the dense record: no collapsed step was accepted
        Assert.Equal(dense.Graph.ParameterCount(), m.Graph.ParameterCount());
        var final = m.Meta.PruningHistory[^1];
        Assert.False(final["target_reached"]!.GetValue<bool>());
        Assert.StartsWith("stopped at step 1", final["stopped_early"]!.GetValue<string>());
    }

    [Fact]
    public void WithRetrainingARunGoesThroughACollapseToTheTargetAndFallsBackWhenNothingThereTrains()
    {
        var (dense, ds) = TinyTrained();
        // every step counts as a collapse, and so does every output at the target (Dice below the last good one + 1);
        // no back-offs, so that the planned steps reach the target
        var o = new PruneOptions
        {
            Compression = 4, Steps = 2, MaxStepRatio = 2, FineTuneEpochs = 0, FinalEpochs = 0, Criterion = Criterion.L1, CollapseDrop = -1,
            MaxBackoffs = 0,
        };
        Assert.True(PruneJob.ContinuesThroughCollapse(o));
        var runDir = Path.Combine(TestFiles.TempDir(), "r");
        var (m, steps) = PruneJob.Run(dense, ds, o, runDir);
        long target = dense.Graph.ParameterCount() / 4;
        // pruning went on to the target, every step accepted through its collapse
        Assert.True(steps[^1].Params <= target, $"{steps[^1].Params} > {target}");
        Assert.All(steps.Skip(1), s => Assert.Contains(PruneJob.ContinuedThroughCollapse, s.Note));
        // the controls trained the architecture at the target
        var controls = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "controls.json")))!;
        Assert.Equal(steps[^1].Params, controls["results"]![0]!["params"]!.GetValue<long>());
        // and the output fell back to the last model before the collapse: here the dense one, weights unchanged
        Assert.Equal(dense.Graph.ParameterCount(), m.Graph.ParameterCount());
        foreach (var (name, w) in dense.Weights) Assert.Equal(w.Data, m.Weights[name].Data);
        var final = m.Meta.PruningHistory[^1];
        Assert.False(final["target_reached"]!.GetValue<bool>());
        Assert.StartsWith("stopped at step 1: every attempt collapsed", final["stopped_early"]!.GetValue<string>());
        Assert.Equal(Outputs.PrunedWeights, final["output"]!.GetValue<string>());
    }

    /// <summary>
    /// The final fine-tune and the controls show the network's latest validation Dice while they train: the controls'
    /// progress had read "val Dice -" all through their training (four of the demo's eight minutes), the final
    /// fine-tune's the step's Dice it started from.
    /// </summary>
    [Fact]
    public void TrainingPhasesReportTheirLatestValidationDice()
    {
        var (dense, ds) = TinyTrained();
        var o = new PruneOptions { Compression = 2, Steps = 1, FineTuneEpochs = 0, FinalEpochs = 2 };
        var events = new List<PruneProgress>();
        PruneJob.Run(dense, ds, o, Path.Combine(TestFiles.TempDir(), "r"), progress: events.Add);
        foreach (var phase in new[] { "final fine-tune", "control (scratch)", "control (uniform)" })
        {
            var epochsDone = events.Where(p => p.Phase == phase && p.Training is { EpochDone: true }).ToList();
            Assert.NotEmpty(epochsDone);
            Assert.All(epochsDone, p => Assert.Equal(p.Training!.ValDice, p.ValDice));
        }
    }
}

/// <summary>The from-scratch controls of a prune run (issue 14): budget, architectures, outputs.</summary>
[Collection("serial")]
public class ScratchControlTests
{
    [Fact]
    public void AUniformWidthNetworkScalesEveryPrunableGroupByOneFactorAndFillsTheTargetWithoutExceedingIt()
    {
        var dense = UNet.Build(new UNetConfig { Depth = 3, BaseWidth = 16, InputSize = 32 });
        foreach (long target in new[] { dense.ParameterCount() / 30, dense.ParameterCount() / 7, 1_000 })
        foreach (int floor in new[] { 1, 2 })
        {
            var small = ScratchControl.UniformWidth(dense, target, floor);
            Assert.InRange(small.ParameterCount(), target * 0.9, target);
            var denseGroups = ChannelGroups.Analyze(dense).Prunable.ToList();
            var widths = ChannelGroups.Analyze(small).Groups.ToDictionary(g => g.Name, g => g.Width);
            // one factor for all, up to one channel (these groups' block) of rounding above it
            Assert.All(denseGroups, g => Assert.True(widths[g.Name] >= floor, $"{g.Name}: {widths[g.Name]} channels"));
            var aboveFloor = denseGroups.Where(g => widths[g.Name] > floor).ToList();
            double factor = aboveFloor.Min(g => (double)widths[g.Name] / g.Width);
            Assert.All(aboveFloor, g => Assert.InRange(widths[g.Name], factor * g.Width - 1e-9, Math.Ceiling(factor * g.Width - 1e-9) + 1));
            Assert.All(denseGroups.Except(aboveFloor), g => Assert.True(factor * g.Width < floor + 1, $"{g.Name} held at the floor"));
            // filled: one more channel in any group that can still grow would exceed the target
            var groups = ChannelGroups.Analyze(dense);
            foreach (var g in denseGroups.Where(g => widths[g.Name] < g.Width))
            {
                var wider = Slicer.ApplyWidths(groups,
                    groups.Prunable.ToDictionary(p => p.Id, p => widths[p.Name] + (p.Id == g.Id ? 1 : 0)));
                Assert.True(wider.ParameterCount() > target, $"{g.Name} could grow: {wider.ParameterCount()} <= {target}");
            }
        }
    }

    [Fact]
    public void TheOutputIsTheBestValidatedCandidateThatFitsTheTarget()
    {
        var dense = UNet.Build(new UNetConfig { Depth = 3, BaseWidth = 16, InputSize = 32 });
        ModelPackage At(long parameters)
        {
            var g = ScratchControl.UniformWidth(dense, parameters);
            return new ModelPackage(g, new WeightSet(), new ModelMeta());
        }
        var pruned = At(dense.ParameterCount() / 30);
        var smaller = At(pruned.Graph.ParameterCount() / 2);
        var larger = At(pruned.Graph.ParameterCount() * 2);
        var paramsBudget = new Budget("params", pruned.Graph.ParameterCount());
        (string, ModelPackage, double) Candidate(string output, ModelPackage m, double dice) => (output, m, dice);

        // none beats the pruned weights: they stay
        Assert.Null(PruneJob.ChooseOutput(pruned.Graph, 0.9, [Candidate(Outputs.Retrained, pruned, 0.9)], paramsBudget));
        // the highest validation Dice wins, the first of equals
        var chosen = PruneJob.ChooseOutput(pruned.Graph, 0.8,
            [Candidate(Outputs.Retrained, pruned, 0.85), Candidate(Outputs.UniformWidth, smaller, 0.85)], paramsBudget);
        Assert.Equal(Outputs.Retrained, chosen!.Value.Output);
        chosen = PruneJob.ChooseOutput(pruned.Graph, 0.8,
            [Candidate(Outputs.Retrained, pruned, 0.85), Candidate(Outputs.UniformWidth, smaller, 0.86)], paramsBudget);
        Assert.Equal(Outputs.UniformWidth, chosen!.Value.Output);
        Assert.Same(smaller, chosen.Value.Model);
        // a network over the target is never the output, however well it validates
        chosen = PruneJob.ChooseOutput(pruned.Graph, 0.8,
            [Candidate(Outputs.Retrained, pruned, 0.85), Candidate(Outputs.UniformWidth, larger, 0.99)], paramsBudget);
        Assert.Equal(Outputs.Retrained, chosen!.Value.Output);
        // a MAC target is checked in MACs
        var macsBudget = new Budget("macs", pruned.Graph.MacCount());
        chosen = PruneJob.ChooseOutput(pruned.Graph, 0.8, [Candidate(Outputs.UniformWidth, larger, 0.99)], macsBudget);
        Assert.Null(chosen);
        Assert.Equal(Outputs.UniformWidth, PruneJob.ChooseOutput(pruned.Graph, 0.8, [Candidate(Outputs.UniformWidth, smaller, 0.9)],
            macsBudget)!.Value.Output);
        // a run that stopped short of its target: the pruned model's own size is the limit
        var stopped = new Budget("params", smaller.Graph.ParameterCount() / 2.0);
        Assert.Equal(Outputs.UniformWidth, PruneJob.ChooseOutput(pruned.Graph, 0.8, [Candidate(Outputs.UniformWidth, smaller, 0.9)],
            stopped)!.Value.Output);
        Assert.Null(PruneJob.ChooseOutput(pruned.Graph, 0.8, [Candidate(Outputs.UniformWidth, larger, 0.9)], stopped));
    }

    [Fact]
    public void APruneRunTrainsBothControlsWithThePrunedModelsWholeBudget()
    {
        var dir = TestFiles.TempDir();
        var data = Path.Combine(dir, "data");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", data, "--count", "40", "--size", "32", "--seed", "2").Code);
        var dense = Path.Combine(dir, "dense.sculpt");
        Assert.Equal(0, TestFiles.Cli("train", "--data", data, "--arch", "unet-small", "--epochs", "2", "--out", dense, "--seed", "2").Code);
        var pruned = Path.Combine(dir, "p.sculpt");
        var r = TestFiles.Cli("prune", "--model", dense, "--data", data, "--compression", "4", "--steps", "2", "--final-epochs", "1",
            "--out", pruned, "--seed", "2", "--json");
        Assert.Equal(0, r.Code);
        var json = System.Text.Json.Nodes.JsonNode.Parse(r.Out)!;
        var controls = json["controls"]!;
        var denseMeta = ModelPackage.Load(dense).Meta;
        long denseSamples = denseMeta.Training!["train_samples"]!.GetValue<long>() * 2;
        long fineTune = json["steps"]!.AsArray().Sum(s => s!["fine_tune_samples"]!.GetValue<long>())
            + denseMeta.Training!["train_samples"]!.GetValue<long>() * 1;
        Assert.Equal(denseSamples, controls["dense_training_samples"]!.GetValue<long>());
        Assert.Equal(fineTune, controls["fine_tune_samples"]!.GetValue<long>());
        Assert.Equal(fineTune, json["fine_tune_samples"]!.GetValue<long>());
        Assert.Equal(denseSamples + fineTune, controls["budget_samples"]!.GetValue<long>());
        var rows = controls["results"]!.AsArray();
        Assert.Equal(new[] { "scratch", "uniform" }, rows.Select(x => x!["kind"]!.GetValue<string>()));
        // the controls are sized by the pruned weights (the output may be the uniform network)
        long prunedParams = ModelPackage.Load(Path.Combine(pruned + ".run", "pruned-weights.sculpt")).Graph.ParameterCount();
        Assert.Equal(prunedParams, rows[0]!["params"]!.GetValue<long>());
        Assert.InRange(rows[1]!["params"]!.GetValue<long>(), prunedParams * 0.8, prunedParams * 1.2);
        foreach (var row in rows)
        {
            // whole epochs covering the budget, and a model that loads and evaluates
            long samples = row!["samples"]!.GetValue<long>();
            Assert.InRange(samples, denseSamples + fineTune, denseSamples + fineTune + 40);
            var model = ModelPackage.Load(row["model"]!.GetValue<string>());
            Assert.Equal(row["params"]!.GetValue<long>(), model.Graph.ParameterCount());
            Assert.InRange(row["val_dice"]!.GetValue<double>(), 0, 1);
        }
        Assert.True(File.Exists(Path.Combine(pruned + ".run", "controls.json")));

        // the output: the highest val Dice of the fine-tuned pruned weights, the retrained architecture and the uniform
        // network where that fits the target (4x fewer parameters than the dense model, as the pruned weights do)
        var output = ModelPackage.Load(pruned);
        var weights = ModelPackage.Load(Path.Combine(pruned + ".run", "pruned-weights.sculpt"));
        var candidates = new List<(string Output, ModelPackage Model, double ValDice)>
        {
            (Outputs.PrunedWeights, weights, json["pruned_weights_dice"]!.GetValue<double>()),
            (Outputs.Retrained, ModelPackage.Load(rows[0]!["model"]!.GetValue<string>()), rows[0]!["val_dice"]!.GetValue<double>()),
        };
        Assert.True(weights.Graph.ParameterCount() <= ModelPackage.Load(dense).Graph.ParameterCount() / 4.0);
        if (rows[1]!["params"]!.GetValue<long>() <= ModelPackage.Load(dense).Graph.ParameterCount() / 4.0)
            candidates.Add((Outputs.UniformWidth, ModelPackage.Load(rows[1]!["model"]!.GetValue<string>()), rows[1]!["val_dice"]!.GetValue<double>()));
        var best = candidates.Aggregate((a, b) => b.ValDice > a.ValDice ? b : a); // the first of equals, as prune takes them
        Assert.Equal(best.Output, json["output"]!.GetValue<string>());
        Assert.Equal(best.ValDice, json["dice"]!.GetValue<double>(), 6);
        Assert.Equal(best.Model.ContentHash(), output.ContentHash());
        Assert.Equal(best.Model.Graph.ParameterCount(), json["params"]!.GetValue<long>());
        Assert.Equal(weights.Meta.Metrics["val_dice"], candidates[0].ValDice, 6);
        // --keep-pruned-weights: the same run (same seed) outputs the fine-tuned pruned weights
        var kept = Path.Combine(dir, "k.sculpt");
        var k = TestFiles.Cli("prune", "--model", dense, "--data", data, "--compression", "4", "--steps", "2", "--final-epochs", "1",
            "--out", kept, "--seed", "2", "--json", "--keep-pruned-weights");
        Assert.Equal(0, k.Code);
        Assert.Equal(Outputs.PrunedWeights, System.Text.Json.Nodes.JsonNode.Parse(k.Out)!["output"]!.GetValue<string>());
        Assert.Equal(weights.ContentHash(), ModelPackage.Load(kept).ContentHash());

        // --control-budget 2: both controls train twice the pruned model's budget, and say so
        var twice = TestFiles.Cli("prune", "--model", dense, "--data", data, "--compression", "2", "--steps", "1", "--final-epochs", "0",
            "--out", Path.Combine(dir, "t.sculpt"), "--seed", "2", "--control-budget", "2", "--json");
        Assert.Equal(0, twice.Code);
        var twiceJson = System.Text.Json.Nodes.JsonNode.Parse(twice.Out)!;
        var twiceControls = twiceJson["controls"]!;
        long twiceFineTune = twiceJson["fine_tune_samples"]!.GetValue<long>();
        Assert.Equal(2, twiceControls["budget_scale"]!.GetValue<double>());
        Assert.Equal(2 * (denseSamples + twiceFineTune), twiceControls["budget_samples"]!.GetValue<long>());
        foreach (var row in twiceControls["results"]!.AsArray())
        {
            Assert.InRange(row!["samples"]!.GetValue<long>(), 2 * (denseSamples + twiceFineTune), 2 * (denseSamples + twiceFineTune) + 40);
            Assert.Equal(2, ModelPackage.Load(row["model"]!.GetValue<string>()).Meta.Metrics["budget_scale"]);
        }

        // and none with --no-control
        var none = TestFiles.Cli("prune", "--model", dense, "--data", data, "--compression", "2", "--steps", "1", "--final-epochs", "0",
            "--out", Path.Combine(dir, "q.sculpt"), "--no-control", "--json");
        Assert.Equal(0, none.Code);
        Assert.Null(System.Text.Json.Nodes.JsonNode.Parse(none.Out)!["controls"]);
    }
}

public class DenseBudgetTests
{
    [Fact]
    public void TheDenseTrainingBudgetIsReadFromMetadataMadeInThisProcessOrReadFromAFile()
    {
        var meta = new ModelMeta
        {
            Training = new System.Text.Json.Nodes.JsonObject { ["train_samples"] = 280, ["history"] = new System.Text.Json.Nodes.JsonArray(1, 2, 3, 4, 5) },
        };
        Assert.Equal(1400, ScratchControl.DenseTrainingSamples(meta));
        meta.Training = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(meta.Training.ToJsonString())!;
        Assert.Equal(1400, ScratchControl.DenseTrainingSamples(meta));
        Assert.Equal(0, ScratchControl.DenseTrainingSamples(new ModelMeta())); // imported: unknown
    }
}

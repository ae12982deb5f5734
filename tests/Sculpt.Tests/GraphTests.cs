using Sculpt.Graph;
using Sculpt.Models;
using Xunit;

namespace Sculpt.Tests;

public class GraphTests
{
    /// <summary>A graph touching every node type.</summary>
    internal static NetworkGraph EveryOp()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", 3, 16, 16);
        var c1 = b.Conv("c1", x, 8, 3, padding: 1, bias: false);
        var bn = b.BatchNorm("bn", c1);
        var r = b.Relu("r", bn);
        var dw = b.Conv("dw", r, 8, 3, padding: 2, dilation: 2, groups: 8);
        var g = b.Conv("g", dw, 8, 1, groups: 2);
        var add = b.AddNodes("add", r, g);
        var p = b.MaxPool("p", add, 2, 2);
        var nodes = new List<Node>();
        var built = b;
        var ap = new AvgPool2dNode { Name = "ap", Inputs = { "p" }, Kernel = new[] { 3, 3 }, Stride = new[] { 1, 1 }, Padding = new[] { 1, 1 } };
        var lr = new LeakyReluNode { Name = "lr", Inputs = { "ap" }, NegativeSlope = 0.2 };
        var si = new SiluNode { Name = "si", Inputs = { "lr" } };
        var up = new ConvTranspose2dNode { Name = "up", Inputs = { "si" }, InChannels = 8, OutChannels = 4, Kernel = new[] { 2, 2 }, Stride = new[] { 2, 2 } };
        var gap = new AdaptiveAvgPool2dNode { Name = "gap", Inputs = { "up" }, OutputSize = new[] { 1, 1 } };
        var sig = new SigmoidNode { Name = "sig", Inputs = { "gap" } };
        var bil = new UpsampleNode { Name = "bil", Inputs = { "sig", "x" }, Mode = "bilinear" };
        var near = new UpsampleNode { Name = "near", Inputs = { "p" }, Scale = 2 };
        var cat = new ConcatNode { Name = "cat", Inputs = { "bil", "near", "x" } };
        var drop = new DropoutNode { Name = "drop", Inputs = { "cat" }, P = 0.1 };
        var id = new IdentityNode { Name = "id", Inputs = { "drop" } };
        var head = new Conv2dNode { Name = "head", Inputs = { "id" }, InChannels = 15, OutChannels = 2, Kernel = new[] { 1, 1 } };
        var outp = new OutputNode { Name = "out", Inputs = { "head" } };
        var graph = built.BuildPartial();
        graph.Nodes.AddRange(new Node[] { ap, lr, si, up, gap, sig, bil, near, cat, drop, id, head, outp });
        graph.Validate();
        return graph;
    }

    [Fact]
    public void JsonRoundTripPreservesEveryNodeAndAttribute()
    {
        var g = EveryOp();
        var json = g.ToJson();
        var back = NetworkGraph.FromJson(json);
        Assert.Equal(json, back.ToJson());
        Assert.Equal(g.Nodes.Count, back.Nodes.Count);
        var dw = (Conv2dNode)back["dw"];
        Assert.Equal(new[] { 2, 2 }, dw.Dilation);
        Assert.Equal(8, dw.Groups);
        Assert.Equal(0.2, ((LeakyReluNode)back["lr"]).NegativeSlope);
        Assert.Equal(new[] { "sig", "x" }, back["bil"].Inputs);
        Assert.Contains("\"op\": \"conv_transpose2d\"", json);
        Assert.Equal(g.ParameterCount(), back.ParameterCount());
        Assert.Equal(g.MacCount(), back.MacCount());
    }

    [Fact]
    public void ShapesParamsAndMacsMatchHandComputation()
    {
        var infos = EveryOp().Validate().ToDictionary(i => i.Node.Name);
        // c1: 8 filters of 3×3×3, no bias; output 8×16×16
        Assert.Equal(8 * 3 * 3 * 3, infos["c1"].Params);
        Assert.Equal(8L * 16 * 16 * 3 * 3 * 3, infos["c1"].Macs);
        Assert.Equal(2 * 8, infos["bn"].Params);
        // depthwise dilated: span 5, padding 2 keeps 16×16; 8 filters of 1×3×3 + bias
        Assert.Equal(new Shape(8, 16, 16), infos["dw"].Output);
        Assert.Equal(8 * 9 + 8, infos["dw"].Params);
        Assert.Equal(8L * 16 * 16 * 9, infos["dw"].Macs);
        // grouped 1×1, 2 groups: each filter sees 4 channels
        Assert.Equal(8 * 4 + 8, infos["g"].Params);
        Assert.Equal(new Shape(8, 8, 8), infos["p"].Output);
        Assert.Equal(new Shape(8, 8, 8), infos["ap"].Output);
        // transposed 2×2 stride 2: weight [8,4,2,2] + bias 4; MACs = in pixels × in ch × out ch × k²
        Assert.Equal(new Shape(4, 16, 16), infos["up"].Output);
        Assert.Equal(8 * 4 * 4 + 4, infos["up"].Params);
        Assert.Equal(8L * 8 * 8 * 4 * 4, infos["up"].Macs);
        Assert.Equal(new Shape(4, 1, 1), infos["gap"].Output);
        Assert.Equal(new Shape(4, 16, 16), infos["bil"].Output);
        Assert.Equal(new Shape(8, 16, 16), infos["near"].Output);
        Assert.Equal(new Shape(15, 16, 16), infos["cat"].Output);
        Assert.Equal(2 * 15 + 2, infos["head"].Params);
        long total = 216 + 16 + 80 + 40 + 132 + 32;
        Assert.Equal(total, EveryOp().ParameterCount());
    }

    [Fact]
    public void StridedPaddedConvAndCeilPoolShapes()
    {
        var b = new GraphBuilder();
        var x = b.Input("x", 3, 15, 15);
        var c = b.Conv("c", x, 4, 7, stride: 2, padding: 3); // floor((15+6-7)/2)+1 = 8
        var p = b.MaxPool("p", c, 3, 2, padding: 1, ceil: true); // ceil((8+2-3)/2)+1 = 5, last window starts at 8 ≥ 8+1? no → 5
        b.Output("o", p);
        var infos = b.Build().Validate().ToDictionary(i => i.Node.Name);
        Assert.Equal(new Shape(4, 8, 8), infos["c"].Output);
        Assert.Equal(new Shape(4, 5, 5), infos["p"].Output);
        Assert.Equal(4L * 8 * 8 * 3 * 7 * 7, infos["c"].Macs);
    }

    [Fact]
    public void ClassicUNetHasTheKnownParameterCount()
    {
        // milesial Pytorch-UNet (bilinear=False) with 1 input channel and 1 class
        var g = UNet.Build(UNet.Preset("unet-classic", 1, 1, 112));
        Assert.Equal(31_036_481, g.ParameterCount());
    }

    [Theory]
    [InlineData("unknown", "unknown input 'nope'")]
    [InlineData("channels", "input channels mismatch: expects 5, receives 3")]
    [InlineData("cycle", "cycle")]
    [InlineData("kernel", "kernel must be ≥ 1")]
    [InlineData("stride", "stride must be ≥ 1")]
    [InlineData("groups", "groups=2 must divide")]
    [InlineData("duplicate", "used twice")]
    [InlineData("add", "input shapes differ")]
    public void InvalidGraphsGiveClearErrors(string defect, string expected)
    {
        var conv = new Conv2dNode { Name = "c", Inputs = { "x" }, InChannels = 3, OutChannels = 4, Kernel = new[] { 3, 3 } };
        var nodes = new List<Node> { new InputNode { Name = "x", Channels = 3, Height = 8, Width = 8 }, conv, new OutputNode { Name = "o", Inputs = { "c" } } };
        switch (defect)
        {
            case "unknown": conv.Inputs[0] = "nope"; break;
            case "channels": conv.InChannels = 5; break;
            case "cycle": conv.Inputs[0] = "r"; nodes.Add(new ReluNode { Name = "r", Inputs = { "c" } }); break;
            case "kernel": conv.Kernel = new[] { 0, 3 }; break;
            case "stride": conv.Stride = new[] { 1, 0 }; break;
            case "groups": conv.Groups = 2; break;
            case "duplicate": nodes.Add(new ReluNode { Name = "c", Inputs = { "x" } }); break;
            case "add": nodes.Add(new AddNode { Name = "a", Inputs = { "x", "c" } }); break;
        }
        var e = Assert.Throws<GraphException>(() => new NetworkGraph(nodes).Validate());
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Theory]
    [InlineData("{")]
    [InlineData("{\"format\":\"sculpt-graph\",\"version\":1,\"nodes\":[{\"op\":\"warp\",\"name\":\"a\"}]}")]
    [InlineData("{\"format\":\"other\",\"nodes\":[]}")]
    [InlineData("{\"format\":\"sculpt-graph\",\"version\":1,\"nodes\":[{\"op\":\"input\",\"name\":\"x\",\"channels\":1,\"height\":4,\"width\":4}]}")]
    public void MalformedJsonIsRejected(string json)
    {
        var e = Assert.Throws<GraphException>(() => NetworkGraph.FromJson(json));
        Assert.DoesNotContain("\n", e.Message);
    }
}

using Sculpt.Deploy;
using Sculpt.Engine;
using Sculpt.Graph;
using Sculpt.Models;
using Sculpt.Pruning;
using Sculpt.Runtime;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// Sculpt's own executor against ONNX Runtime on the same exported model: every operator, the repo's
/// architectures dense and pruned, the real torch.onnx exports, and random graphs; within 1e-4 of the output's scale.
/// </summary>
public class EngineTests
{
    private static float[] Input(int n, Random r) => Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();

    /// <summary>
    /// Largest |engine − ORT| relative to max(1, largest |ORT output|), at batch <paramref name="batch"/>, over every
    /// vector width this CPU accelerates (the kernels are specialised per width).
    /// </summary>
    internal static double Difference(ModelPackage model, int batch, int seed = 0, float[]? input = null, bool? fourChannelColumns = null)
    {
        var g = model.Graph.InputNodes.Single();
        input ??= Input(batch * g.Channels * g.Height * g.Width, new Random(seed));
        using var ort = OrtModel.FromPackage(model, threads: 1);
        var (theirs, shape) = ort.Run(input, [batch, g.Channels, g.Height, g.Width]);
        double scale = Math.Max(1, theirs.Max(v => Math.Abs(v))), worst = 0;
        foreach (int lanes in VectorWidths.Accelerated)
        {
            var engine = SculptEngine.Create(model.Graph, model.Weights, lanes, fourChannelColumns);
            var ours = engine.Run(input, batch);
            var (c, h, w) = engine.OutputShape;
            Assert.Equal(new long[] { batch, c, h, w }, shape);
            worst = Math.Max(worst, ours.Zip(theirs, (a, b) => Math.Abs(a - b)).Max() / scale);
        }
        return worst;
    }

    [Fact]
    public void EveryOperatorComputesWhatOnnxRuntimeComputes()
    {
        var g = OperatorTests.NewOps();
        var w = TestFiles.WithBnStatistics(g, 3);
        var r = new Random(3);
        foreach (var k in w.Keys.Where(k => k.StartsWith("in1.") || k.StartsWith("gn.") || k.StartsWith("pr.") || k.StartsWith("scale.")).ToList())
            w[k] = new TensorData(w[k].Shape, w[k].Data.Select(_ => (float)(0.5 + r.NextDouble())).ToArray());
        Assert.True(Difference(new ModelPackage(g, w, new ModelMeta()), 3) <= 1e-4);
    }

    public static TheoryData<string> Architectures() => new() { "unet-d2-w4", "unet-d3-w8-bilinear", "unet-d1-w16-odd", "deeplab-small" };

    [Theory]
    [MemberData(nameof(Architectures))]
    public void TheRepositorysArchitecturesDenseAndPrunedAgree(string name)
    {
        var g = name switch
        {
            "unet-d2-w4" => UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 32 }),
            "unet-d3-w8-bilinear" => UNet.Build(new UNetConfig { Depth = 3, BaseWidth = 8, InputSize = 48, Bilinear = true }),
            // a width that is no multiple of the vector length and of the four-channel blocks
            "unet-d1-w16-odd" => UNet.Build(new UNetConfig { Depth = 1, BaseWidth = 6, InputSize = 20 }),
            _ => DeepLabV3.Build(new DeepLabConfig { InChannels = 1, Classes = 2, InputSize = 48, Width = 4, Blocks = [1, 1, 1, 1], AsppChannels = 8, AsppRates = [2, 4, 6] }),
        };
        var w = TestFiles.WithBnStatistics(g, 5);
        Assert.True(Difference(new ModelPackage(g, w, new ModelMeta()), 2) <= 1e-4);
        var groups = ChannelGroups.Analyze(g);
        var keep = Allocation.Allocate(groups, Importance.Score(groups, w, Criterion.L2), new Budget("params", g.ParameterCount() / 20.0), new AllocationOptions());
        var (pg, pw) = Slicer.Slice(groups, keep, w);
        Assert.True(Difference(new ModelPackage(pg, pw!, new ModelMeta()), 3) <= 1e-4);
    }

    [Fact]
    public void TheTrainedFixtureAgrees()
    {
        var model = ModelPackage.Load(ArchiveFixture.Model);
        Assert.True(Difference(model, 4) <= 1e-4);
    }

    [Theory]
    [MemberData(nameof(RealExportTests.Fixtures), MemberType = typeof(RealExportTests))]
    public void RealTorchOnnxExportsAgreeWithOnnxRuntimeAndWithPyTorch(string name)
    {
        var (model, x, shape, expected) = RealExportTests.Load(name);
        Assert.True(Difference(model, (int)shape[0], input: x) <= 1e-4);
        var ours = SculptEngine.Create(model).Run(x, (int)shape[0]);
        double scale = Math.Max(1, expected.Max(v => Math.Abs(v)));
        Assert.True(ours.Zip(expected, (a, b) => Math.Abs(a - b)).Max() / scale <= 1e-4);
    }

    /// <summary>
    /// Random chains with skips: convolutions of every kind (1×1 … 5×5, stride 1–2, dilation, groups, with and
    /// without bias), batch norm, activations, pooling, resizing, padding, concatenation and addition.
    /// </summary>
    internal static NetworkGraph RandomGraph(int seed)
    {
        var r = new Random(seed);
        var nodes = new List<Node>();
        var shapes = new Dictionary<string, Shape>();
        string Add(Node n)
        {
            n.ValidateAttributes();
            shapes[n.Name] = n.InferShape(n.Inputs.Select(i => shapes[i]).ToList());
            nodes.Add(n);
            return n.Name;
        }
        int size = 8 * r.Next(2, 5) + r.Next(0, 3);
        var last = Add(new InputNode { Name = "x", Channels = r.Next(1, 4), Height = size, Width = size });
        var skips = new List<string>();
        for (int layer = 0, layers = r.Next(3, 8); layer < layers; layer++)
        {
            var shape = shapes[last];
            int k = new[] { 1, 3, 3, 3, 5 }[r.Next(5)], stride = shape.H >= 8 && r.Next(4) == 0 ? 2 : 1, dilation = k == 3 && r.Next(5) == 0 ? 2 : 1;
            int groups = shape.C % 2 == 0 && r.Next(4) == 0 ? 2 : 1, oc = groups * r.Next(1, 6);
            last = Add(new Conv2dNode
            {
                Name = $"c{layer}", Inputs = { last }, InChannels = shape.C, OutChannels = oc, Kernel = [k, k], Stride = [stride, stride],
                Padding = [dilation * (k / 2), dilation * (k / 2)], Dilation = [dilation, dilation], Groups = groups, Bias = r.Next(2) == 0,
            });
            if (r.Next(3) > 0) last = Add(new BatchNorm2dNode { Name = $"bn{layer}", Inputs = { last }, Channels = oc });
            last = Add(r.Next(5) switch
            {
                0 => new LeakyReluNode { Name = $"a{layer}", Inputs = { last }, NegativeSlope = 0.1 },
                1 => new ClipNode { Name = $"a{layer}", Inputs = { last }, Min = 0, Max = 6 },
                2 => new SigmoidNode { Name = $"a{layer}", Inputs = { last } },
                _ => new ReluNode { Name = $"a{layer}", Inputs = { last } },
            });
            if (r.Next(3) == 0 && shapes[last].H >= 4)
            {
                skips.Add(last);
                last = Add(r.Next(2) == 0 ? new MaxPool2dNode { Name = $"p{layer}", Inputs = { last } }
                    : new AvgPool2dNode { Name = $"p{layer}", Inputs = { last }, Kernel = [3, 3], Stride = [2, 2], Padding = [1, 1], CeilMode = r.Next(2) == 0 });
            }
            else if (skips.Count > 0 && r.Next(2) == 0)
            {
                var skip = skips[^1]; skips.RemoveAt(skips.Count - 1);
                bool bilinear = r.Next(2) == 0;
                last = Add(new UpsampleNode { Name = $"u{layer}", Inputs = { last, skip }, Mode = bilinear ? "bilinear" : "nearest", AlignCorners = bilinear && r.Next(2) == 0 });
                last = shapes[last].C == shapes[skip].C && r.Next(2) == 0 ? Add(new AddNode { Name = $"sum{layer}", Inputs = { last, skip } })
                    : Add(new ConcatNode { Name = $"cat{layer}", Inputs = { last, skip } });
            }
            else if (r.Next(4) == 0) last = Add(new PadNode { Name = $"pad{layer}", Inputs = { last }, Pads = [1, 0, 0, 1] });
        }
        last = Add(new Conv2dNode { Name = "head", Inputs = { last }, InChannels = shapes[last].C, OutChannels = r.Next(1, 3), Kernel = [1, 1] });
        Add(new OutputNode { Name = "y", Inputs = { last } });
        var g = new NetworkGraph(nodes);
        g.Validate();
        return g;
    }

    [Fact]
    public void RandomGraphsAgree()
    {
        for (int seed = 0; seed < 40; seed++)
        {
            var g = RandomGraph(seed);
            var d = Difference(new ModelPackage(g, TestFiles.WithBnStatistics(g, seed), new ModelMeta()), 1 + seed % 3, seed);
            Assert.True(d <= 1e-4, $"random graph {seed}: difference {d}\n{g.ToJson()}");
        }
    }

    [Fact]
    public void ConcurrentCallersGetWhatOneCallerGets()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 32 });
        var engine = SculptEngine.Create(g, TestFiles.WithBnStatistics(g, 7));
        var inputs = Enumerable.Range(0, 8).Select(i => Input(2 * 32 * 32, new Random(i))).ToArray();
        var expected = inputs.Select(x => engine.Run(x, 2)).ToArray();
        var got = new float[8][];
        Parallel.For(0, 64, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => got[i % 8] = engine.Run(inputs[i % 8], 2));
        for (int i = 0; i < 8; i++) Assert.Equal(expected[i], got[i]);
    }

    [Fact]
    public void ABatchGivesEachImageWhatItGetsAlone()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 32 });
        var engine = SculptEngine.Create(g, TestFiles.WithBnStatistics(g, 6));
        var images = Enumerable.Range(0, 3).Select(i => Input(32 * 32, new Random(20 + i))).ToArray();
        var batched = engine.Run(images.SelectMany(x => x).ToArray(), 3);
        Assert.Equal(images.SelectMany(x => engine.Run(x, 1)).ToArray(), batched);
    }

    [Fact]
    public void ARunAllocatesNothingOnceItsArenaExists()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 8, InputSize = 32 });
        var engine = SculptEngine.Create(g, TestFiles.WithBnStatistics(g, 8));
        var x = Input(32 * 32, new Random(8));
        var y = new float[engine.OutputShape.C * 32 * 32];
        var x4 = Enumerable.Repeat(x, 4).SelectMany(v => v).ToArray();
        var y4 = new float[4 * y.Length];
        engine.Run(x, 1, y);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) { engine.Run(x, 1, y); engine.Run(x4, 4, y4); }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void NarrowMapsRunVectorsOnAcrossTheirRows()
    {
        // a 7×7 bottom (and a 14×14 block): rows that fill 8- and 16-float vectors badly
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 28 });
        var w = TestFiles.WithBnStatistics(g, 10);
        Assert.True(Difference(new ModelPackage(g, w, new ModelMeta()), 2) <= 1e-4);
        foreach (int lanes in VectorWidths.Accelerated.Where(l => l > 4))
        {
            var layers = SculptEngine.Create(g, w, lanes).Layers;
            string vectors = $"Conv 3×3 ({32 * lanes}-bit pixel vectors";
            // the bottom's first convolution writes into the bordered input of the second, whose rows are the padded
            // rows; the second's output (read by the up-convolution, no border) goes through the scratch
            Assert.Contains(layers, l => l.Name == $"{vectors}, rows wrapped)" && l.Output == "16×7×7");
            Assert.Contains(layers, l => l.Name == $"{vectors}, rows wrapped via scratch)" && l.Output == "16×7×7");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ConvolutionsRunDownColumnsAndAgree(bool fourChannelColumns)
    {
        // 3×3 convolutions with 1 to 8 output channels (blocks of four and one to three left over), on maps whose height
        // is and is not a multiple of the column's four rows, with batch norm and ReLU fused, the output zero-bordered for
        // the next convolution or plain for the last; the blocks of four run down columns too where the CPU has 32 vector
        // registers, and both ways on any CPU here
        int[] widths = [1, 2, 3, 4, 5, 6, 7, 8];
        foreach (int size in new[] { 4, 7, 9, 18, 32 })
        {
            var nodes = new List<Node> { new InputNode { Name = "x", Channels = 2, Height = size, Width = size } };
            string previous = "x";
            int inChannels = 2;
            foreach (int c in widths)
            {
                string name = $"c{c}";
                nodes.Add(new Conv2dNode { Name = name, Inputs = { previous }, InChannels = inChannels, OutChannels = c, Kernel = [3, 3],
                    Padding = [1, 1] });
                nodes.Add(new BatchNorm2dNode { Name = $"{name}.bn", Inputs = { name }, Channels = c });
                nodes.Add(new ReluNode { Name = $"{name}.relu", Inputs = { $"{name}.bn" } });
                previous = $"{name}.relu";
                inChannels = c;
            }
            nodes.Add(new OutputNode { Name = "y", Inputs = { previous } });
            var g = new NetworkGraph(nodes);
            var w = TestFiles.WithBnStatistics(g, size);
            double d = Difference(new ModelPackage(g, w, new ModelMeta()), 2, size, fourChannelColumns: fourChannelColumns);
            Assert.True(d <= 1e-4, $"{size}×{size}: difference {d}");
            foreach (int lanes in VectorWidths.Accelerated.Where(l => l <= size))
            {
                var layers = SculptEngine.Create(g, w, lanes, fourChannelColumns).Layers;
                foreach (int c in widths.Where(c => fourChannelColumns || c % 4 != 0))
                {
                    string columns = fourChannelColumns ? ", in columns)" : $", {c % 4} in columns)";
                    // at 32 pixels every width runs along the rows; narrower maps may run their vectors on across the rows
                    Assert.Contains(layers, l => l.Output == $"{c}×{size}×{size}"
                        && ((size < 32 && l.Name.Contains("wrapped")) || l.Name.EndsWith(columns)));
                }
            }
        }
    }

    [Fact]
    public void UpConvolutionsAgreeOnEveryMapShape()
    {
        // 2×2 stride-2 up-convolutions on odd and even heights, a single row, and widths that fill every vector width,
        // none, or end in an overlapping vector
        foreach (var (h, w) in new[] { (1, 16), (2, 4), (3, 17), (5, 35), (7, 7), (6, 8) })
        {
            Node[] nodes =
            [
                new InputNode { Name = "x", Channels = 3, Height = h, Width = w },
                new ConvTranspose2dNode
                {
                    Name = "up", Inputs = { "x" }, InChannels = 3, OutChannels = 2, Kernel = [2, 2], Stride = [2, 2],
                },
                new OutputNode { Name = "y", Inputs = { "up" } },
            ];
            var g = new NetworkGraph(nodes);
            double d = Difference(new ModelPackage(g, TestFiles.WithBnStatistics(g, h * w), new ModelMeta()), 2, h + w);
            Assert.True(d <= 1e-4, $"{h}×{w}: difference {d}");
        }
    }

    [Fact]
    public void BatchNormActivationsAndConcatenationsFuseIntoTheConvolutions()
    {
        var g = UNet.Build(new UNetConfig { Depth = 2, BaseWidth = 4, InputSize = 32 });
        var layers = SculptEngine.Create(g, TestFiles.WithBnStatistics(g, 9)).Layers;
        Assert.DoesNotContain(layers, l => l.Name is "BatchNorm" or "Relu");
        // every skip concatenation of a U-Net feeds a padded 3×3 convolution, which copies the parts itself
        Assert.Contains(g.Nodes, n => n is ConcatNode);
        Assert.DoesNotContain(layers, l => l.Name == "Concat");
        Assert.Equal(g.Nodes.OfType<Conv2dNode>().Count(n => n is not ConvTranspose2dNode), layers.Count(l => l.Name.StartsWith("Conv ")));
        Assert.Equal(g.MacCount(), layers.Sum(l => l.Macs));
        // each width this CPU accelerates is one the agreement tests above really ran (32-pixel rows fill every width),
        // and in each of the five blocks the first convolution writes its output zero-bordered for the second, as do
        // the two poolings for the convolutions after them
        foreach (int lanes in VectorWidths.Accelerated)
        {
            var engine = SculptEngine.Create(g, TestFiles.WithBnStatistics(g, 9), lanes);
            Assert.Contains(engine.Layers, l => l.Name.Contains($"({32 * lanes}-bit pixel vectors)"));
            Assert.Equal(7, engine.BorderedValues);
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Tests.Reference;
using Sculpt.Training;
using TorchSharp;
using static TorchSharp.torch;

// Benchmarks that need real scale; results go to bench/RESULTS.md.
//   train-step  GraphModule vs a hand-written TorchSharp U-Net, same configuration, timed alternately
//   baseline    Dice of the non-learned dark-region baseline on a dataset split
//   slice       dependency analysis + L2 scoring + allocation + weight slicing (any --arch, --compression)
//   equal       a model's output on an .npy input against a reference output (.npy), e.g. PyTorch's for an import
//   onednn      convolution forward and gradients with oneDNN on vs off (libtorch's native kernels), per shape and thread count
//   latency-plan how far apart repeated latency plans of one architecture land (their MAC targets)
//   sensitivity validation Dice after removing a fraction of one channel group at a time (L1 order, BN re-estimated)
var inv = CultureInfo.InvariantCulture;
string Opt(string name, string fallback) { int i = Array.IndexOf(args, "--" + name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback; }
TorchRuntime.Initialize();
switch (args.FirstOrDefault())
{
    case "train-step": TrainStep(); break;
    case "baseline": Baseline(); break;
    case "slice": SliceSpeed(); break;
    case "sensitivity": Sensitivity(); break;
    case "equal": Equal(); break;
    case "onednn": OneDnn(); break;
    case "onednn-sweep": OneDnnSweep(); break;
    case "latency-plan": LatencyPlanSpread(); break;
    default: Console.Error.WriteLine("usage: Sculpt.Bench train-step [--width 64] [--depth 4] [--batch 4] [--reps 10] [--size 112] | baseline --data DIR [--split test] | slice [--reps 5]"); return 2;
}
return 0;

void LatencyPlanSpread()
{
    // --arch unet (width --width, depth 4, --size) or --model M.sculpt; --target-ms is the latency to plan for, by
    // default 40% of the dense model's own median; --reps plans in a row
    var graph = Opt("model", "") is { Length: > 0 } path ? ModelPackage.Load(path).Graph
        : UNet.Build(new UNetConfig { BaseWidth = int.Parse(Opt("width", "16"), inv), InputSize = int.Parse(Opt("size", "112"), inv) });
    int threads = int.Parse(Opt("threads", "1"), inv), reps = int.Parse(Opt("reps", "8"), inv);
    double target = double.Parse(Opt("target-ms", "0"), inv);
    if (target <= 0) target = 0.4 * Sculpt.Pruning.LatencyBudget.Measure(graph, threads);
    var macs = new List<long>();
    for (int r = 0; r < reps; r++)
    {
        var plan = Sculpt.Pruning.LatencyBudget.Plan(graph, target, threads);
        macs.Add(plan.MaxMacs);
        Console.WriteLine(string.Create(inv, $"rep {r}: fixed {plan.FixedMs:0.000} ms, {plan.MsPerGmac:0.000} ms/GMAC, "
            + $"probes {string.Join(" ", plan.Probes.Select(p => p.Ms.ToString("0.000", inv)))} ms → {plan.MaxMacs:N0} MACs"));
    }
    double mean = macs.Average(), sd = Math.Sqrt(macs.Sum(m => (m - mean) * (m - mean)) / (macs.Count - 1));
    Console.WriteLine(string.Create(inv, $"graph {graph.MacCount():N0} MACs, target {target:0.000} ms at {threads} thread(s): MAC target "
        + $"min {macs.Min():N0} max {macs.Max():N0} max/min {(double)macs.Max() / macs.Min():0.000} CV {100 * sd / mean:0.0}%"));
}

void OneDnnSweep()
{
    // Which channel pairs does oneDNN get wrong: conv2d output and input gradient (or, with --forward, the output under
    // no_grad; with --transposed, conv_transpose2d's output), oneDNN vs libtorch's native kernels. --raw calls libtorch
    // as given; otherwise through TorchRuntime's Conv2d/ConvTranspose2d (channels-last under oneDNN).
    // --depthwise: groups = channels, only the diagonal (in = out).
    int[] channels = Opt("channels", "1,2,3,4,5,6,7,8,9,12,15,16,17,24,32").Split(',').Select(int.Parse).ToArray();
    int trials = int.Parse(Opt("trials", "3")), size = int.Parse(Opt("size", "24")), batch = int.Parse(Opt("batch", "4"));
    int kernel = int.Parse(Opt("kernel", "3")), stride = int.Parse(Opt("stride", "1")), dilation = int.Parse(Opt("dilation", "1"));
    bool transposed = Opt("transposed", "no") == "yes", raw = Opt("raw", "no") == "yes", forwardOnly = Opt("forward", "no") == "yes";
    bool depthwise = Opt("depthwise", "no") == "yes";
    string what = transposed ? "conv_transpose2d output" : forwardOnly ? "conv2d output (no grad)" : "conv2d output and input gradient";
    Console.WriteLine($"{(raw ? "libtorch as given" : "Sculpt's convolutions")}: {what}, k{kernel} s{stride} d{dilation}"
        + $"{(depthwise ? " depthwise" : "")}, batch {batch}, {size}², {torch.get_num_threads()} threads: wrong of {trials} "
        + "(rows: in channels, columns: out channels)");
    Console.WriteLine("in\\out " + string.Concat(channels.Select(c => $"{c,4}")));
    foreach (int cin in channels)
    {
        var row = new System.Text.StringBuilder($"{cin,6} ");
        foreach (int cout in channels)
        {
            if (depthwise && cin != cout) { row.Append("    "); continue; }
            int groups = depthwise ? cin : 1, wrong = 0;
            for (int trial = 0; trial < trials; trial++)
            {
                torch.manual_seed(7 + trial);
                using var scope = NewDisposeScope();
                var x = randn(batch, cin, size, size);
                var w = transposed ? randn(cin, cout / groups, kernel, kernel) : randn(cout, cin / groups, kernel, kernel);
                int pad = dilation * (kernel / 2), span = dilation * (kernel - 1) + 1;
                int o = transposed ? (size - 1) * stride - 2 * pad + span : (size + 2 * pad - span) / stride + 1;
                var g = randn(batch, cout, o, o);
                float[] Run(bool oneDnn)
                {
                    TorchRuntime.UseOneDnn(oneDnn);
                    var xs = x.clone().requires_grad_(!forwardOnly);
                    using var grad = forwardOnly ? no_grad() : null;
                    long[] st = [stride, stride], pd = [pad, pad], dl = [dilation, dilation];
                    Tensor Keep(Tensor t) => t;
                    if (transposed)
                        return (raw ? nn.functional.conv_transpose2d(xs, w, strides: st, padding: pd, dilation: dl, groups: groups)
                            : TorchRuntime.ConvTranspose2d(xs, w, null, st, pd, [0, 0], dl, groups, Keep)).contiguous().data<float>().ToArray();
                    var y = raw ? nn.functional.conv2d(xs, w, strides: st, padding: pd, dilation: dl, groups: groups)
                        : TorchRuntime.Conv2d(xs, w, null, st, pd, dl, groups, Keep);
                    if (forwardOnly) return y.contiguous().data<float>().ToArray();
                    y.backward([g]);
                    return y.detach().contiguous().data<float>().Concat(xs.grad!.contiguous().data<float>()).ToArray();
                }
                var a = Run(false); var b = Run(true);
                double scale = a.Max(v => Math.Abs(v));
                if (a.Zip(b, (p, q) => !(Math.Abs(p - q) <= 1e-4 * scale)).Any(v => v)) wrong++;
            }
            row.Append($"{(wrong == 0 ? "." : wrong.ToString()),4}");
        }
        Console.WriteLine(row);
    }
    TorchRuntime.UseOneDnn(false);
}

void OneDnn()
{
    // (batch, in, out, size, kernel, stride, padding, transposed): the U-Net's own layers and small pruned ones, then
    // TorchRuntime's start-up probe cases (a Zen 5 EPYC failed the first one's input gradient)
    var shapes = new (int N, int Cin, int Cout, int S, int K, int Stride, int Pad, bool T)[]
    {
        (4, 1, 16, 112, 3, 1, 1, false), (4, 16, 16, 112, 3, 1, 1, false), (4, 32, 64, 28, 3, 1, 1, false), (2, 64, 64, 56, 3, 1, 1, false),
        (4, 3, 5, 112, 3, 1, 1, false), (4, 7, 3, 56, 3, 1, 1, false), (4, 16, 1, 112, 1, 1, 0, false), (4, 5, 7, 28, 3, 2, 1, false),
        (4, 32, 16, 56, 2, 2, 0, true), (4, 5, 3, 28, 2, 2, 0, true), (4, 16, 16, 56, 3, 1, 1, true), (4, 3, 7, 28, 3, 1, 1, true),
    }.Concat(TorchRuntime.ProbeCases.Select(c => (c.N, c.Cin, c.Cout, S: c.Size, K: c.Kernel, c.Stride, c.Pad, T: c.Transposed))).ToArray();
    int trials = int.Parse(Opt("trials", "3"));
    Console.WriteLine("shape                         threads  fwd max|Δ|  dX max|Δ|   dW max|Δ|"
        + "   (relative to max |value|; oneDNN on vs off)");
    int bad = 0;
    foreach (int threads in new[] { 1, 2 })
    {
        torch.set_num_threads(threads);
        foreach (var sh in shapes)
            for (int trial = 0; trial < trials; trial++)
            {
                torch.manual_seed(100 + trial);
                var x = randn(sh.N, sh.Cin, sh.S, sh.S);
                var w = sh.T ? randn(sh.Cin, sh.Cout, sh.K, sh.K) * 0.1 : randn(sh.Cout, sh.Cin, sh.K, sh.K) * 0.1;
                var g = randn(sh.N, sh.Cout, sh.T ? (sh.S - 1) * sh.Stride - 2 * sh.Pad + sh.K : (sh.S + 2 * sh.Pad - sh.K) / sh.Stride + 1,
                    sh.T ? (sh.S - 1) * sh.Stride - 2 * sh.Pad + sh.K : (sh.S + 2 * sh.Pad - sh.K) / sh.Stride + 1);
                (float[] Y, float[] Dx, float[] Dw) Run(bool oneDnn)
                {
                    TorchRuntime.UseOneDnn(oneDnn);
                    using var xs = x.clone().requires_grad_(true);
                    using var ws = w.clone().requires_grad_(true);
                    using var y = sh.T ? nn.functional.conv_transpose2d(xs, ws, strides: [sh.Stride, sh.Stride], padding: [sh.Pad, sh.Pad])
                        : nn.functional.conv2d(xs, ws, strides: [sh.Stride, sh.Stride], padding: [sh.Pad, sh.Pad]);
                    y.backward([g]);
                    using var yc = y.detach().contiguous();
                    using var dx = xs.grad!.contiguous();
                    using var dw = ws.grad!.contiguous();
                    return (yc.data<float>().ToArray(), dx.data<float>().ToArray(), dw.data<float>().ToArray());
                }
                var native = Run(false);
                var dnn = Run(true);
                double Rel(float[] a, float[] b) =>
                    a.Zip(b, (p, q) => float.IsFinite(q) ? Math.Abs(p - q) : double.PositiveInfinity).Max()
                    / Math.Max(1e-30, a.Max(v => Math.Abs(v)));
                double fy = Rel(native.Y, dnn.Y), fx = Rel(native.Dx, dnn.Dx), fw = Rel(native.Dw, dnn.Dw);
                bool wrong = fy > 1e-4 || fx > 1e-4 || fw > 1e-4;
                if (wrong) bad++;
                Console.WriteLine($"{(sh.T ? "convT" : "conv ")} {sh.N}x{sh.Cin}->{sh.Cout} {sh.S}² k{sh.K} s{sh.Stride} p{sh.Pad} #{trial}".PadRight(30)
                    + $"{threads,7}  {fy,10:g3}  {fx,10:g3}  {fw,10:g3}{(wrong ? "   WRONG" : "")}");
            }
    }
    TorchRuntime.UseOneDnn(false);
    Console.WriteLine($"{bad} wrong of {2 * shapes.Length * trials} (threshold 1e-4 relative)");
}

void Equal()
{
    var model = ModelPackage.Load(Opt("model", ""));
    var (x, shape) = Npy.Read(Opt("input", ""));
    var (expected, _) = Npy.Read(Opt("expected", ""));
    var sw = Stopwatch.StartNew();
    using var m = new GraphModule(model.Graph, model.Weights);
    m.eval();
    using var _ = no_grad();
    var got = m.forward(tensor(x, shape)).contiguous().data<float>().ToArray();
    double diff = expected.Zip(got, (a, b) => Math.Abs(a - b)).Max(), scale = expected.Max(v => Math.Abs(v));
    Console.WriteLine($"max |Δ| {diff:g3}, largest logit {scale:g3}, ratio {diff / scale:g3} ({got.Length} values, {sw.Elapsed.TotalSeconds:0.0} s)");
}

void TrainStep()
{
    int width = int.Parse(Opt("width", "64")), depth = int.Parse(Opt("depth", "4")), batch = int.Parse(Opt("batch", "4"));
    int reps = int.Parse(Opt("reps", "10")), size = int.Parse(Opt("size", "112"));
    string mode = Opt("onednn", "auto"); // auto: as TorchRuntime's start-up probe chose
    if (mode is "on" or "off") TorchRuntime.UseOneDnn(mode == "on");
    Console.WriteLine($"oneDNN {(TorchRuntime.OneDnnDisabled ? "off" : "on")} (--onednn {mode}; start-up: {TorchRuntime.OneDnnChoice}), "
        + $"{torch.get_num_threads()} threads");
    torch.manual_seed(0);
    var graph = UNet.Build(new UNetConfig { Depth = depth, BaseWidth = width, InputSize = size, Classes = 1 });
    using var gm = new GraphModule(graph);
    using var hand = new HandUNet(depth, width, 1, 1);
    hand.CopyFrom(gm.ExportWeights());
    var x = randn(batch, 1, size, size);
    var y = (randn(batch, size, size) > 0.5).to_type(ScalarType.Int64);
    using var optG = new Sculpt.Training.Adam(gm.parameters(), 1e-4, 0);
    using var optH = new Sculpt.Training.Adam(hand.parameters(), 1e-4, 0);
    double Step(nn.Module<Tensor, Tensor> m, Sculpt.Training.Optimizer opt)
    {
        using var scope = NewDisposeScope();
        var sw = Stopwatch.StartNew();
        m.train();
        opt.ZeroGrad();
        var loss = Losses.DiceCe(m.forward(x), y);
        loss.backward();
        opt.Step();
        return sw.Elapsed.TotalSeconds;
    }
    Step(gm, optG); Step(hand, optH); // warm-up
    var g = new List<double>(); var h = new List<double>();
    for (int r = 0; r < reps; r++)
    {
        // alternate the order so drift on a shared machine hits both equally
        if (r % 2 == 0) { g.Add(Step(gm, optG)); h.Add(Step(hand, optH)); }
        else { h.Add(Step(hand, optH)); g.Add(Step(gm, optG)); }
    }
    double Median(List<double> v) { var s = v.OrderBy(t => t).ToArray(); return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2; }
    double mg = Median(g), mh = Median(h);
    Console.WriteLine($"U-Net depth {depth} width {width} ({graph.ParameterCount():N0} params), batch {batch}, {size}×{size}, {reps} alternating reps, {Environment.ProcessorCount} threads");
    Console.WriteLine($"  GraphModule   median {mg:0.0000} s/step  ({mg / batch:0.0000} s/sample)");
    Console.WriteLine($"  hand-written  median {mh:0.0000} s/step  ({mh / batch:0.0000} s/sample)");
    Console.WriteLine($"  ratio GraphModule/hand-written = {mg / mh:0.000}");
    Console.WriteLine(new JsonObject { ["bench"] = "train-step", ["width"] = width, ["depth"] = depth, ["batch"] = batch, ["graph_s"] = mg, ["hand_s"] = mh, ["ratio"] = mg / mh }.ToJsonString());
}

void Baseline()
{
    var ds = SegmentationDataset.Load(Opt("data", "data"));
    var split = ds.Split(Opt("split", "test"));
    var b = new DarkRegionBaseline(ds.Split("train"), ds.Height, ds.Width);
    var scores = split.Select(s => Metrics.Compute(b.Segment(s.Image, ds.Height, ds.Width), s.Mask, ds.Height, ds.Width)).ToList();
    var (mean, lo, hi) = Sculpt.Common.Statistics.MeanCi(scores.Select(s => s.Dice).ToList());
    Console.WriteLine($"dark-region baseline on {split.Count} cases: Dice {mean:0.0000} [{lo:0.0000}, {hi:0.0000}], HD95 {Sculpt.Common.Statistics.MeanCi(scores.Select(s => s.Hd95Px).ToList()).Mean:0.00} px");
}

void SliceSpeed()
{
    int reps = int.Parse(Opt("reps", "5"));
    string arch = Opt("arch", "unet-classic");
    double target = double.Parse(Opt("compression", "1148"), System.Globalization.CultureInfo.InvariantCulture);
    var graph = Sculpt.Models.Architectures.Build(arch, arch.StartsWith("deeplab") ? 3 : 1, 1, 112);
    torch.manual_seed(0);
    WeightSet weights;
    using (var m = new GraphModule(graph)) weights = m.ExportWeights();
    var times = new List<(double Analyze, double Score, double Allocate, double Slice)>();
    long prunedParams = 0;
    for (int r = 0; r < reps; r++)
    {
        var sw = Stopwatch.StartNew();
        var groups = Sculpt.Graph.ChannelGroups.Analyze(graph);
        double a = sw.Elapsed.TotalSeconds; sw.Restart();
        var scores = Sculpt.Pruning.Importance.Score(groups, weights, Sculpt.Pruning.Criterion.L2);
        double sc = sw.Elapsed.TotalSeconds; sw.Restart();
        var keep = Sculpt.Pruning.Allocation.Allocate(groups, scores, new Sculpt.Pruning.Budget("params", graph.ParameterCount() / target), new Sculpt.Pruning.AllocationOptions { MaxGroupRatio = 1.0 });
        double al = sw.Elapsed.TotalSeconds; sw.Restart();
        var (pg, pw) = Sculpt.Pruning.Slicer.Slice(groups, keep, weights);
        double sl = sw.Elapsed.TotalSeconds;
        prunedParams = pg.ParameterCount();
        times.Add((a, sc, al, sl));
    }
    var best = times.Skip(1).DefaultIfEmpty(times[0]).OrderBy(t => t.Analyze + t.Allocate + t.Slice).First();
    Console.WriteLine($"{arch} ({graph.ParameterCount():N0} params, {graph.MacCount():N0} MACs) → {prunedParams:N0} params ({graph.ParameterCount() / (double)prunedParams:0.0}×), median of {reps} reps after warm-up:");
    double Med(Func<(double, double, double, double), double> f) { var v = times.Skip(1).Select(f).OrderBy(x => x).ToArray(); return v.Length == 0 ? f(times[0]) : v[v.Length / 2]; }
    double an = Med(t => t.Item1), scr = Med(t => t.Item2), all = Med(t => t.Item3), sli = Med(t => t.Item4);
    Console.WriteLine($"  dependency analysis {an:0.000} s, L2 scoring {scr:0.000} s, allocation (binary search) {all:0.000} s, slicing {sli:0.000} s");
    Console.WriteLine($"  analysis + allocation + slicing = {an + all + sli:0.000} s; with scoring {an + scr + all + sli:0.000} s");
}

void Sensitivity()
{
    var model = ModelPackage.Load(Opt("model", ""));
    var ds = SegmentationDataset.Load(Opt("data", ""), model.Meta.Task.InputHeight, model.Meta.Task.InputWidth);
    double fraction = double.Parse(Opt("fraction", "0.5"), inv);
    var val = ds.Split("val");
    var train = ds.Split("train");
    var groups = Sculpt.Graph.ChannelGroups.Analyze(model.Graph);
    var scores = Sculpt.Pruning.Importance.Score(groups, model.Weights, Sculpt.Pruning.Criterion.L1);
    double Dice(Sculpt.Graph.NetworkGraph graph, WeightSet weights) { using var gm = new GraphModule(graph, weights); return Evaluator.MeanDice(gm, val, model.Meta.Task); }
    Console.WriteLine($"base val Dice {Dice(model.Graph, model.Weights):0.0000}; removing {fraction:P0} of one group at a time (lowest L1 first), BN re-estimated:");
    foreach (var g in groups.Prunable)
    {
        int keepCount = Math.Max(1, (int)Math.Round(g.Width * (1 - fraction)));
        var keep = groups.Prunable.ToDictionary(x => x.Id, x => x.Id == g.Id
            ? Enumerable.Range(0, x.Width).OrderByDescending(c => scores[x.Id][c]).Take(keepCount).Order().ToArray()
            : Enumerable.Range(0, x.Width).ToArray());
        var (pg, pw) = Sculpt.Pruning.Slicer.Slice(groups, keep, model.Weights);
        using (var gm = new GraphModule(pg, pw!))
        {
            var order = Enumerable.Range(0, train.Count).Take(64).ToList();
            var t = model.Meta.Task;
            gm.RecalibrateBatchNorm(order.Chunk(8).Select(b => Batches.Images(b.Select(i => train[i]).ToList(), t.InputChannels, t.InputHeight, t.InputWidth, t.Normalization)));
            pw = gm.ExportWeights();
        }
        Console.WriteLine($"  {g.Name,-14} width {g.Width,4} → {keepCount,4}: val Dice {Dice(pg, pw!):0.0000}");
    }
}

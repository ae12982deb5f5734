// CA1305 (culture-specific formatting) is enforced in this project; the report formats hundreds of numbers, and its
// entry points (Build, WriteMainPlotPng) run under an InvariantCultureScope instead of passing a provider to each.
#pragma warning disable CA1305
using System.Net;
using System.Text;
using ScottPlot;
using Sculpt.Data;
using Sculpt.Runtime;
using Sculpt.Training;
using Sculpt.Common;

namespace Sculpt.Report;

/// <summary>
/// One self-contained HTML page about a run: plots as inline SVG (ScottPlot), example frames as data-URI
/// PNGs, no external resources. Reads what the run recorded; what is missing is listed, never fatal.
/// </summary>
public static class HtmlReport
{
    /// <summary>Sreeram &amp; Kainz 2023: parameters reduced 1148× at about 4% relative Dice loss.</summary>
    public const double PublishedCompression = 1148, PublishedRelativeLoss = 0.04;

    public static string Build(RunFolder run, int exampleCount = 4)
    {
        using var invariant = InvariantCultureScope.Enter(); // hundreds of formatted numbers
        var config = run.ReadConfig();
        var missing = new List<string>();
        var steps = File.Exists(run.StepsLog) ? run.ReadSteps() : null;
        if (steps is null) missing.Add(Rel(run, run.StepsLog) + " (the per-step pruning log)");
        else
            foreach (var s in steps.Where(s => !File.Exists(run.StepModel(s.Step))))
                missing.Add($"{Rel(run, run.StepModel(s.Step))} (model of step {s.Step})");
        Curve? curve = File.Exists(run.CurvePath) ? Curve.Read(run.CurvePath) : null;
        if (curve is null) missing.Add(Rel(run, run.CurvePath) + " (test Dice and latency of every step; `sculpt demo --out DIR --resume` measures it)");
        else missing.AddRange(curve.Missing.Where(m => !missing.Any(x => x.StartsWith(m))).Select(m => m + " (missing when the curve was measured)"));
        foreach (var f in new[] { run.DenseModel, run.PrunedModel }) if (!File.Exists(f)) missing.Add(Rel(run, f));

        var html = new StringBuilder();
        html.Append("""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Sculpt report</title>
            <style>
            body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
            h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
            table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right} th{background:#f4f4f4}
            td:first-child,th:first-child{text-align:left} .plot svg,.plot img{max-width:100%;height:auto;display:block}
            .missing{background:#fff4e5;border:1px solid #f0a040;padding:.6em 1em} pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
            .caption{color:#555;font-size:.9em} .grid{display:flex;flex-wrap:wrap;gap:1em}
            </style></head><body>
            """);
        var dense = curve?.Points.FirstOrDefault(p => p.Step == 0);
        var final = curve?.Points.LastOrDefault(p => p.Name.StartsWith("pruned"));
        html.Append($"<h1>Sculpt report</h1><p class=\"caption\">{Enc(config.Arch)}, seed {config.Seed}, pruning target {config.Compression:0.#}× fewer parameters, {Enc(run.Root)}</p>");
        if (dense is not null && final is not null)
            html.Append($"<p><b>{final.Compression:0.#}× fewer parameters</b> ({dense.Params:N0} → {final.Params:N0}), {dense.Macs / (double)final.Macs:0.#}× fewer MACs; test Dice {dense.TestDice:0.0000} → {final.TestDice:0.0000} " +
                        $"({100 * (dense.TestDice - final.TestDice) / dense.TestDice:0.00}% relative loss); ONNX Runtime batch-1 latency {dense.LatencyP50Ms:0.###} ms → {final.LatencyP50Ms:0.###} ms ({dense.LatencyP50Ms / final.LatencyP50Ms:0.#}× faster).</p>");
        var scratch = curve?.Points.Where(p => p.Name.StartsWith(Curve.ControlPrefix)).ToList() ?? [];
        if (final is not null && scratch.Count > 0)
            html.Append("<p>Trained from scratch with the same sample budget (dense training + every fine-tune): " +
                        string.Join("; ", scratch.Select(p => $"{Enc(p.Name[(Curve.ControlPrefix.Length + 2)..])}, {p.Params:N0} parameters: test Dice {p.TestDice:0.0000} [{p.TestDiceLo:0.0000}, {p.TestDiceHi:0.0000}]")) +
                        (curve!.Points.FirstOrDefault(p => p.Name == Curve.PrunedWeightsName) is { } weights
                            ? $" — against {weights.TestDice:0.0000} [{weights.TestDiceLo:0.0000}, {weights.TestDiceHi:0.0000}] for the fine-tuned"
                              + (curve.Output == Pruning.Outputs.UniformWidth
                                  ? " pruned weights. The output is the uniform-width network: it scored the highest validation Dice and"
                                    + " fits the target, so on this task pruning did not beat training a small network directly.</p>"
                                  : " pruned weights. The output is the pruned architecture retrained from scratch: it scored the higher"
                                    + " validation Dice, so pruning served as the search for the architecture.</p>")
                            : $" — against {final.TestDice:0.0000} [{final.TestDiceLo:0.0000}, {final.TestDiceHi:0.0000}] for the pruned model.</p>"));
        if (missing.Count > 0)
            html.Append("<div class=\"missing\" id=\"missing\"><b>Missing from this run</b> (the report shows what remains):<ul>")
                .Append(string.Concat(missing.Select(m => $"<li>{Enc(m)}</li>"))).Append("</ul></div>");

        html.Append("<h2>Quality vs compression</h2>");
        html.Append(Figure("dice-vs-compression", DicePlot(curve, steps), "Dice against parameter compression (log scale). Test Dice with 95% bootstrap CI where measured, validation Dice after each step's fine-tuning; the diamond is the published reference point (1148×, ~4% relative loss) placed relative to this run's dense model."));
        if (curve is not null && curve.Points.Count > 0)
        {
            html.Append("<h2>Speed vs compression</h2><div class=\"grid\">");
            html.Append(Figure("latency-vs-compression", SpeedPlot(curve, latency: true), $"ONNX Runtime batch-1 latency (p50), {curve.Threads} thread(s)."));
            html.Append(Figure("throughput-vs-compression", SpeedPlot(curve, latency: false), $"Throughput at batch {curve.Points[0].ThroughputBatch}."));
            html.Append("</div>");
            html.Append($"<p class=\"caption\">Measured hardware peak: <b>{curve.PeakGflops:0.0} GFLOP/s</b> (1024² float32 matrix multiply in ONNX Runtime's GEMM kernels, {curve.Threads} thread(s), same run). " +
                        $"Achieved at batch 1: {string.Join("; ", new[] { dense, final }.Where(p => p is not null).Select(p => $"{Enc(p!.Name)} {p.Gflops:0.00} GFLOP/s ({100 * p.Gflops / curve.PeakGflops:0.0}% of peak)"))}.</p>");
            if (LatencyModel(curve.Points) is { } fit)
                html.Append($"<p class=\"caption\">Where the time goes: a least-squares fit over the smaller half of the measured models gives batch-1 latency ≈ <b>{fit.FixedMs:0.###} ms</b> per run regardless of size (per-node dispatch, memory traffic of the activations) + <b>{fit.MsPerGmac:0.###} ms per GMAC</b> of arithmetic ({2000 / fit.MsPerGmac:0.#} GFLOP/s). " +
                            (final is not null ? $"For the final pruned model ({final.Macs / 1e6:0.##} M MACs) that is {fit.FixedMs:0.###} ms fixed vs {fit.MsPerGmac * final.Macs / 1e9:0.###} ms arithmetic: {(fit.FixedMs > fit.MsPerGmac * final.Macs / 1e9 ? "overhead dominates, so further pruning buys little latency" : "arithmetic still dominates")}." : "") + "</p>");
            html.Append("<h2>Pareto front: Dice vs latency</h2>");
            html.Append(Figure("pareto", ParetoPlot(curve), "Every measured model; the line joins those no other model beats on both test Dice and latency."));
            html.Append("<h2>Every measured model</h2>").Append(CurveTable(curve));
        }
        if (steps is not null && steps.Count > 1)
        {
            html.Append("<h2>The sculpture: channels per layer</h2>");
            html.Append(Figure("sculpture", SculpturePlot(steps[0].Widths, steps[^1].Widths, steps[^1].Step), "Channels of every prunable layer (log scale), dense and after the last pruning step, encoder to decoder."));
        }
        string? examples = ExamplesPng(run, exampleCount, missing);
        if (examples is not null)
            html.Append("<h2>Example test frames</h2>").Append($"<div class=\"plot\" id=\"examples\"><img alt=\"examples\" src=\"data:image/png;base64,{examples}\"></div>")
                .Append("<p class=\"caption\">Columns: image, ground truth, dense prediction, pruned prediction (LV in red).</p>");

        html.Append("<h2>Reproducibility</h2><pre>").Append(Enc(string.Join("\n", config.Commands))).Append("</pre>");
        var m = curve?.Machine ?? MachineInfo.Current();
        html.Append("<table>")
            .Append(Row("seed", config.Seed.ToString())).Append(Row("pruning", $"{config.Criterion}, steps ≤ {config.MaxStepRatio}×, ≥ {config.MinChannels} channels per layer, {config.FineTuneSamples} fine-tune samples per step at dense cost, {config.FinalEpochs} final epochs{(config.Distill ? ", distillation" : "")}{(config.MinDice is { } d ? $", chosen model: smallest step with val Dice ≥ {d}" : "")}"))
            .Append(Row("machine", $"{m.Cores} cores, {m.Cpu}, {m.Os}"))
            .Append(Row("versions", $"Sculpt {m.Sculpt}, .NET {m.DotNet}, TorchSharp {m.TorchSharp}, ONNX Runtime {m.OnnxRuntime}"))
            .Append(Row("measured", curve is null ? "-" : curve.MeasuredUtc.ToString("yyyy-MM-dd HH:mm 'UTC'")));
        if (config.Note is { } note) html.Append(Row("note", note));
        html.Append("</table></body></html>\n");
        return html.ToString();
    }

    public static void Write(RunFolder run, string path) => AtomicFile.WriteAllText(path, Build(run));

    /// <summary>The report's main plot (Dice vs compression) as a PNG, for READMEs and slides.</summary>
    public static void WriteMainPlotPng(RunFolder run, string path)
    {
        using var invariant = InvariantCultureScope.Enter(); // the plot's tick labels
        var steps = File.Exists(run.StepsLog) ? run.ReadSteps() : null;
        var curve = File.Exists(run.CurvePath) ? Curve.Read(run.CurvePath) : null;
        var png = DicePlot(curve, steps).GetImageBytes(900, 450, ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, png);
    }

    private static string Figure(string id, Plot plot, string caption) =>
        $"<figure class=\"plot\" id=\"{id}\">{Svg(plot)}<figcaption class=\"caption\">{Enc(caption)}</figcaption></figure>";

    private static string Svg(Plot plot)
    {
        var svg = plot.GetSvgXml(900, 450);
        int start = svg.IndexOf("<svg", StringComparison.Ordinal);
        return start > 0 ? svg[start..] : svg;
    }

    private static Plot DicePlot(Curve? curve, List<Pruning.StepRecord>? steps)
    {
        var plot = new Plot();
        LogAxis(plot.Axes.Bottom);
        if (steps is { Count: > 0 })
        {
            var val = plot.Add.Scatter(steps.Select(s => Math.Log10(s.Compression)).ToArray(), steps.Select(s => s.ValDice).ToArray());
            val.LegendText = "validation Dice (after each step)";
        }
        double? denseDice = curve?.Points.FirstOrDefault(p => p.Step == 0)?.TestDice ?? steps?.FirstOrDefault()?.ValDice;
        if (curve is not null && curve.Points.Count > 0)
        {
            var pts = curve.Points.Where(p => !p.Name.StartsWith("pruned") && !p.Name.StartsWith(Curve.ControlPrefix)).ToList();
            var test = plot.Add.Scatter(pts.Select(p => Math.Log10(p.Compression)).ToArray(), pts.Select(p => p.TestDice).ToArray());
            test.LegendText = "test Dice (95% CI)";
            foreach (var p in curve.Points)
            {
                var ci = plot.Add.Line(Math.Log10(p.Compression), p.TestDiceLo, Math.Log10(p.Compression), p.TestDiceHi);
                ci.Color = test.Color;
            }
            if (curve.Points.LastOrDefault(p => p.Name.StartsWith("pruned")) is { } final)
            {
                var f = plot.Add.Marker(Math.Log10(final.Compression), final.TestDice, MarkerShape.FilledSquare, 12, Colors.Green);
                f.LegendText = "final pruned model (test)";
            }
            var controls = curve.Points.Where(p => p.Name.StartsWith(Curve.ControlPrefix)).ToList();
            for (int k = 0; k < controls.Count; k++)
            {
                var c = plot.Add.Marker(Math.Log10(controls[k].Compression), controls[k].TestDice, k == 0 ? MarkerShape.FilledTriangleUp : MarkerShape.FilledTriangleDown, 11, Colors.Orange);
                c.LegendText = controls[k].Name;
            }
        }
        if (denseDice is { } dd)
        {
            var reference = plot.Add.Marker(Math.Log10(PublishedCompression), dd * (1 - PublishedRelativeLoss), MarkerShape.FilledDiamond, 14, Colors.Red);
            reference.LegendText = "Sreeram & Kainz 2023 (1148×, ~4% loss)";
        }
        plot.XLabel("compression (dense params / pruned params)");
        plot.YLabel("Dice");
        plot.ShowLegend(Alignment.LowerLeft);
        return plot;
    }

    private static Plot SpeedPlot(Curve curve, bool latency)
    {
        var plot = new Plot();
        LogAxis(plot.Axes.Bottom);
        LogAxis(plot.Axes.Left);
        var pts = curve.Points.Where(p => !p.Name.StartsWith("pruned")).ToList();
        double Y(CurvePoint p) => Math.Log10(latency ? p.LatencyP50Ms : p.ThroughputFps);
        var s = plot.Add.Scatter(pts.Select(p => Math.Log10(p.Compression)).ToArray(), pts.Select(Y).ToArray());
        s.LegendText = latency ? "batch-1 latency p50 (ms)" : $"throughput at batch {pts[0].ThroughputBatch} (frames/s)";
        foreach (var (p, color, label) in new[] { (pts.FirstOrDefault(p => p.Step == 0), Colors.Black, "dense"), (curve.Points.LastOrDefault(p => p.Name.StartsWith("pruned")), Colors.Green, "final pruned") })
            if (p is not null) { var mk = plot.Add.Marker(Math.Log10(p.Compression), Y(p), MarkerShape.FilledSquare, 12, color); mk.LegendText = label; }
        plot.XLabel("compression");
        plot.YLabel(latency ? "latency (ms, log)" : "frames/s (log)");
        plot.ShowLegend(latency ? Alignment.UpperRight : Alignment.UpperLeft);
        return plot;
    }

    private static Plot ParetoPlot(Curve curve)
    {
        var plot = new Plot();
        LogAxis(plot.Axes.Bottom);
        var pts = curve.Points;
        var all = plot.Add.Markers(pts.Select(p => Math.Log10(p.LatencyP50Ms)).ToArray(), pts.Select(p => p.TestDice).ToArray(), MarkerShape.OpenCircle, 8, Colors.Gray);
        all.LegendText = "measured models";
        var front = ParetoFront(pts);
        var line = plot.Add.Scatter(front.Select(p => Math.Log10(p.LatencyP50Ms)).ToArray(), front.Select(p => p.TestDice).ToArray());
        line.LegendText = "Pareto front";
        foreach (var p in front) plot.Add.Text($"{p.Compression:0}×", Math.Log10(p.LatencyP50Ms), p.TestDice);
        plot.XLabel("ONNX Runtime batch-1 latency (ms, log)");
        plot.YLabel("test Dice");
        plot.ShowLegend(Alignment.LowerRight);
        return plot;
    }

    /// <summary>
    /// Latency ≈ FixedMs + MsPerGmac · GMACs, fitted over the smaller half of the measured models (at least
    /// three): thin layers run far below the wide layers' arithmetic rate, so one line through all sizes
    /// misjudges the small end, which is what the fit is for. Null with fewer than three models.
    /// </summary>
    public static (double FixedMs, double MsPerGmac)? LatencyModel(IReadOnlyList<CurvePoint> points) =>
        Deploy.Latency.FitLatency(points.OrderBy(p => p.Macs).Take(Math.Max(3, points.Count / 2)).Select(p => (p.Macs, p.LatencyP50Ms)).ToList());

    /// <summary>Models not beaten by another on both latency (lower) and test Dice (higher), fastest first.</summary>
    public static List<CurvePoint> ParetoFront(IEnumerable<CurvePoint> points)
    {
        var front = new List<CurvePoint>();
        foreach (var p in points.OrderBy(p => p.LatencyP50Ms).ThenByDescending(p => p.TestDice))
            if (front.Count == 0 || p.TestDice > front[^1].TestDice) front.Add(p);
        return front;
    }

    private static Plot SculpturePlot(Dictionary<string, int> dense, Dictionary<string, int> pruned, int step)
    {
        var plot = new Plot();
        var layers = dense.Keys.ToList();
        var bars = new List<Bar>();
        for (int i = 0; i < layers.Count; i++)
        {
            bars.Add(new Bar { Position = i - 0.2, Value = Math.Log2(dense[layers[i]]) + 1, Size = 0.4, FillColor = Colors.LightGray });
            bars.Add(new Bar { Position = i + 0.2, Value = Math.Log2(pruned.GetValueOrDefault(layers[i], 1)) + 1, Size = 0.4, FillColor = Colors.SteelBlue });
        }
        plot.Add.Bars(bars);
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "dense", FillColor = Colors.LightGray });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = $"pruned (step {step})", FillColor = Colors.SteelBlue });
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, layers.Count).Select(i => (double)i).ToArray(), layers.ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 60;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 90;
        int top = (int)Math.Ceiling(Math.Log2(Math.Max(2, dense.Values.Max())));
        plot.Axes.Left.SetTicks(Enumerable.Range(0, top + 1).Select(k => (double)k + 1).ToArray(), Enumerable.Range(0, top + 1).Select(k => (1 << k).ToString()).ToArray());
        plot.Axes.SetLimitsY(0, top + 1.5);
        plot.YLabel("channels (log scale)");
        plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    private static void LogAxis(IAxis axis)
    {
        axis.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = v => Math.Pow(10, v).ToString(Math.Abs(v) < 1e-9 ? "0" : v < 0 ? "0.###" : "#,0", System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    private static string CurveTable(Curve curve)
    {
        var sb = new StringBuilder("<table id=\"curve\"><tr><th>model</th><th>compression</th><th>params</th><th>MACs</th><th>val Dice</th><th>test Dice [95% CI]</th><th>HD95 px</th><th>latency p50 ms</th><th>frames/s</th><th>GFLOP/s (% of peak)</th></tr>");
        foreach (var p in curve.Points)
            sb.Append($"<tr><td>{Enc(p.Name)}</td><td>{p.Compression:0.0}×</td><td>{p.Params:N0}</td><td>{p.Macs:N0}</td><td>{(p.ValDice is { } v ? v.ToString("0.0000") : "-")}</td>" +
                      $"<td>{p.TestDice:0.0000} [{p.TestDiceLo:0.0000}, {p.TestDiceHi:0.0000}]</td><td>{(p.Hd95Px is { } h ? h.ToString("0.00") : "-")}</td><td>{p.LatencyP50Ms:0.###}</td><td>{p.ThroughputFps:0}</td><td>{p.Gflops:0.00} ({100 * p.Gflops / curve.PeakGflops:0.0}%)</td></tr>");
        return sb.Append("</table>").ToString();
    }

    /// <summary>Image | truth | dense | pruned for the first test frames, as base64 PNG; null (and noted) when a piece is missing.</summary>
    private static string? ExamplesPng(RunFolder run, int count, List<string> missing)
    {
        if (!File.Exists(run.DenseModel) || !File.Exists(run.PrunedModel)) return null;
        if (!Directory.Exists(run.DataDir)) { missing.Add(Rel(run, run.DataDir) + " (the dataset, for example frames)"); return null; }
        var dense = ModelPackage.Load(run.DenseModel);
        var pruned = ModelPackage.Load(run.PrunedModel);
        var task = dense.Meta.Task;
        var ds = SegmentationDataset.Load(run.DataDir, task.InputHeight, task.InputWidth);
        var frames = ds.Split("test").Take(count).ToList();
        if (frames.Count == 0) return null;
        List<byte[]> Predict(ModelPackage m) { using var module = new GraphModule(m.Graph, m.Weights); return Evaluator.Predict(module, frames, m.Meta.Task); }
        var densePreds = Predict(dense);
        var prunedPreds = Predict(pruned);
        int h = task.InputHeight, w = task.InputWidth;
        var tiles = frames.SelectMany((s, i) => new[]
        {
            SegmentationDataset.ToImage8(s.Image, h, w), Overlay.Draw(s.Image, s.Mask, h, w), Overlay.Draw(s.Image, densePreds[i], h, w), Overlay.Draw(s.Image, prunedPreds[i], h, w),
        }).ToList();
        return Convert.ToBase64String(ImageIO.EncodePng(Overlay.Montage(tiles, 4)));
    }

    private static string Row(string key, string value) => $"<tr><th>{Enc(key)}</th><td style=\"text-align:left\">{Enc(value)}</td></tr>";
    private static string Enc(string s) => WebUtility.HtmlEncode(s);
    private static string Rel(RunFolder run, string path) => Path.GetRelativePath(run.Root, path);
}

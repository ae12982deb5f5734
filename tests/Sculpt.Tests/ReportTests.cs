using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Playwright;
using Sculpt.Report;
using Sculpt.Runtime;
using Xunit;

namespace Sculpt.Tests;

/// <summary>One tiny demo run (synthesise → train → prune → curve → ONNX → report) shared by the report tests.</summary>
public sealed class TinyDemoRun
{
    public static readonly string[] Options = { "--quick", "--frames", "30", "--epochs", "1", "--compression", "4", "--max-step-ratio", "2", "--ft-samples", "8", "--final-epochs", "1", "--seed", "3", "--threads", "2" };
    public string Root { get; }
    public (int Code, string Out, string Err) Result { get; }

    public TinyDemoRun()
    {
        Root = Path.Combine(TestFiles.TempDir(), "run");
        Result = TestFiles.Cli(new[] { "demo", "--out", Root }.Concat(Options).ToArray());
    }
}

[Collection("serial")]
public class ReportTests(TinyDemoRun demo) : IClassFixture<TinyDemoRun>
{
    private static readonly string[] Figures = { "dice-vs-compression", "latency-vs-compression", "throughput-vs-compression", "pareto", "sculpture" };

    [Fact]
    public void DemoWritesEveryStageAndASelfContainedReport()
    {
        Assert.True(demo.Result.Code == 0, demo.Result.Err);
        var run = new RunFolder(demo.Root);
        var steps = run.ReadSteps();
        Assert.True(steps.Count >= 3, $"{steps.Count} steps"); // dense + ≥ 2 pruning steps (4× in steps of ≤ 2×)
        Assert.True(steps[^1].Compression >= 4 * (1 - 1e-9), $"{steps[^1].Compression}");
        var curve = Curve.Read(run.CurvePath);
        int controls = Directory.GetFiles(run.PruneRun, "control-*.sculpt").Length;
        Assert.Equal(2, controls);
        // every step model, the final pruned model, the controls, and the fine-tuned pruned weights when the output is
        // a network trained from scratch
        string output = Sculpt.Pruning.Outputs.Of(ModelPackage.Load(run.PrunedModel).Meta);
        bool retrained = output != Sculpt.Pruning.Outputs.PrunedWeights;
        Assert.Equal(output, curve.Output);
        Assert.Contains($"; output: {curve.Output}\n", demo.Result.Out.Replace("\r\n", "\n"));
        Assert.Equal(retrained, curve.Points.Any(p => p.Name == Curve.PrunedWeightsName));
        Assert.Equal(steps.Count + 1 + controls + (retrained ? 1 : 0), curve.Points.Count);
        Assert.Equal(steps.Select(s => s.Params), curve.Points.Take(steps.Count).Select(p => p.Params));
        Assert.All(curve.Points, p => Assert.True(p.LatencyP50Ms > 0 && p.ThroughputFps > 0 && p.TestDiceLo <= p.TestDice && p.TestDice <= p.TestDiceHi));
        foreach (var f in new[] { run.DenseModel, run.PrunedModel, run.DenseOnnx, run.PrunedOnnx, run.ReportPath, run.MainPlotPath }) Assert.True(File.Exists(f), f);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(run.MainPlotPath)[..4]);

        var html = File.ReadAllText(run.ReportPath);
        foreach (var id in Figures) Assert.Contains($"id=\"{id}\"", html);
        Assert.Contains("id=\"examples\"", html);
        Assert.Contains("data:image/png;base64,", html);
        Assert.DoesNotContain("src=\"http", html);
        Assert.DoesNotContain("href=\"http", html);
        Assert.DoesNotContain("id=\"missing\"", html);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run.Root, "summary.json")))!;
        Assert.Equal(curve.Points.Single(p => p.Name == "pruned (final)").TestDice, summary["pruned"]!["dice"]!.GetValue<double>());
        Assert.Equal(2, summary["controls"]!.AsArray().Count);
        Assert.Equal(output, summary["output"]!.GetValue<string>());
    }

    [Fact]
    public void SameSeedReproducesTheDiceNumbersAndResumeRebuildsMissingStages()
    {
        var again = Path.Combine(TestFiles.TempDir(), "run");
        var r = TestFiles.Cli(new[] { "demo", "--out", again }.Concat(TinyDemoRun.Options).ToArray());
        Assert.True(r.Code == 0, r.Err);
        double[] Dice(string root) => Curve.Read(new RunFolder(root).CurvePath).Points.Select(p => p.TestDice).ToArray();
        double[] Val(string root) => new RunFolder(root).ReadSteps().Select(s => s.ValDice).ToArray();
        Assert.Equal(Dice(demo.Root), Dice(again));
        Assert.Equal(Val(demo.Root), Val(again));

        // a run stopped before its final stages continues from run.json and lands on the same numbers
        var folder = new RunFolder(again);
        File.Delete(folder.PrunedModel);
        File.Delete(folder.CurvePath);
        File.Delete(folder.ReportPath);
        var resumed = TestFiles.Cli("demo", "--out", again, "--resume");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Equal(Dice(demo.Root), Dice(again));
        Assert.True(File.Exists(folder.ReportPath));
    }

    [Fact]
    public void ReportOnAFolderThatIsNotARunFailsWithoutOutput()
    {
        var dir = TestFiles.TempDir();
        var outFile = Path.Combine(dir, "r.html");
        var r = TestFiles.Cli("report", "--run", dir, "--out", outFile);
        Assert.Equal(1, r.Code);
        Assert.Contains("not a Sculpt run folder", r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.False(File.Exists(outFile));
        Assert.Empty(Directory.GetFiles(dir));
    }

    [Fact]
    public void ReportOnARunWithAMissingStepFileSaysWhatIsMissing()
    {
        var copy = Path.Combine(TestFiles.TempDir(), "run");
        CopyDirectory(demo.Root, copy);
        File.Delete(Path.Combine(copy, "prune.run", "step_01.sculpt"));
        File.Delete(Path.Combine(copy, "curve.json"));
        var outFile = Path.Combine(copy, "again.html");
        var r = TestFiles.Cli("report", "--run", copy, "--out", outFile);
        Assert.True(r.Code == 0, r.Err);
        var html = File.ReadAllText(outFile);
        Assert.Contains("id=\"missing\"", html);
        Assert.Contains(Path.Combine("prune.run", "step_01.sculpt"), html);
        Assert.Contains("curve.json", html);
        Assert.Contains("id=\"dice-vs-compression\"", html); // validation Dice from steps.jsonl still plotted
    }

    [Fact]
    public void ParetoFrontKeepsOnlyModelsNotBeatenOnBothLatencyAndDice()
    {
        CurvePoint P(string n, double ms, double dice) => new(n, 0, 1, 1, 1, null, dice, dice, dice, null, ms, ms, 1, 1);
        var front = HtmlReport.ParetoFront(new[] { P("a", 10, 0.95), P("b", 1, 0.90), P("c", 2, 0.85), P("d", 5, 0.93), P("e", 5, 0.92) });
        Assert.Equal(new[] { "b", "d", "a" }, front.Select(p => p.Name));
    }

    [Fact]
    public void LatencyModelRecoversFixedAndPerMacCost()
    {
        CurvePoint P(long macs, double ms) => new("m", 0, 1, macs, 1, null, 0.9, 0.9, 0.9, null, ms, ms, 1, 1);
        var fit = HtmlReport.LatencyModel(new[] { P(1_000_000_000, 10.5), P(100_000_000, 1.5), P(10_000_000, 0.6), P(2_000_000, 0.52) })!.Value;
        Assert.Equal(0.5, fit.FixedMs, 9);
        Assert.Equal(10.0, fit.MsPerGmac, 9);
    }

    /// <summary>Opens the report in headless Chromium: every plot renders with a non-zero size, the page logs no error.</summary>
    [SkippableFact]
    public async Task ReportRendersInHeadlessChromium()
    {
        var chromium = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);
        Skip.If(chromium is null, "Chromium is not installed (apt-get install chromium); .ci/run installs it");
        Assert.True(demo.Result.Code == 0, demo.Result.Err);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = chromium, Headless = true, Args = new[] { "--no-sandbox" } });
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        var foreign = new List<string>();
        page.Console += (_, m) => { if (m.Type == "error") errors.Add(m.Text); };
        page.PageError += (_, e) => errors.Add(e);
        page.Request += (_, req) => { if (!req.Url.StartsWith("file:") && !req.Url.StartsWith("data:")) foreign.Add(req.Url); };
        await page.GotoAsync(new Uri(new RunFolder(demo.Root).ReportPath).AbsoluteUri);
        foreach (var id in Figures)
        {
            var box = await page.Locator($"#{id} svg").BoundingBoxAsync();
            Assert.True(box is { Width: > 100, Height: > 50 }, $"{id}: {box?.Width}×{box?.Height}");
        }
        Assert.True(await page.Locator("#examples img").EvaluateAsync<bool>("img => img.complete && img.naturalWidth > 0"), "example frames image did not decode");
        Assert.Empty(errors);
        Assert.Empty(foreign);
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(d.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(f, f.Replace(from, to));
    }
}

using Sculpt.Cli.Commands;
using Sculpt.Cli;
using Sculpt.Data;
using Sculpt.Pruning;
using Xunit;

namespace Sculpt.Tests;

// Tests that swap Console or time-consuming training runs go one at a time (2-core machines).
[CollectionDefinition("serial", DisableParallelization = true)]
public class SerialCollection { }

[Collection("serial")]
public class CliTests
{
    private static (int Code, string Out, string Err) Sculpt(params string[] args) => TestFiles.Cli(args);

    private static void AssertCleanFailure((int Code, string Out, string Err) r, string mentions)
    {
        Assert.NotEqual(0, r.Code);
        var lines = r.Err.Trim().Split('\n');
        Assert.Single(lines);
        Assert.Contains(mentions, r.Err);
    }

    [Fact]
    public void TrainEvalInspectOnATinySet()
    {
        var dir = TestFiles.TempDir();
        var data = Path.Combine(dir, "data");
        Assert.Equal(0, Sculpt("synth", "--out", data, "--count", "16", "--size", "32", "--seed", "1").Code);
        var model = Path.Combine(dir, "m.sculpt");
        var t = Sculpt("train", "--data", data, "--arch", "unet-small", "--epochs", "1", "--batch", "4", "--out", model, "--json");
        Assert.True(t.Code == 0, t.Err);
        Assert.Contains("\"val_dice\"", t.Out);
        Assert.False(Directory.Exists(model + ".ckpt"));
        var ev = Sculpt("eval", "--model", model, "--data", data, "--split", "all", "--out", Path.Combine(dir, "ev"), "--json");
        Assert.True(ev.Code == 0, ev.Err);
        var csv = File.ReadAllLines(Path.Combine(dir, "ev", "per_case.csv"));
        Assert.Equal(17, csv.Length);
        // eval's two files arrive together or not at all, and an --out that cannot take them fails before the evaluation
        var blocked = Path.Combine(dir, "blocked");
        Directory.CreateDirectory(Path.Combine(blocked, "summary.json"));
        AssertCleanFailure(Sculpt("eval", "--model", model, "--data", data, "--split", "all", "--out", blocked),
            "summary.json: is a folder");
        Assert.Equal(["summary.json"], Directory.EnumerateFileSystemEntries(blocked).Select(Path.GetFileName));
        var insp = Sculpt("inspect", "--model", model, "--json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(insp.Out)!;
        Assert.Equal(global::Sculpt.Runtime.ModelPackage.Load(model).Graph.ParameterCount(), json["params"]!.GetValue<long>());
        Assert.True(json["macs"]!.GetValue<long>() > 0);
        // DeepLabV3-ResNet50 trains from the same command, at the data's channels and size
        var deeplab = Path.Combine(dir, "deeplab.sculpt");
        var d = Sculpt("train", "--data", data, "--arch", "deeplabv3_resnet50", "--epochs", "1", "--batch", "4", "--out", deeplab, "--json");
        Assert.True(d.Code == 0, d.Err);
        var expected = global::Sculpt.Models.DeepLabV3.Build(new global::Sculpt.Models.DeepLabConfig { InChannels = 1, Classes = 1, InputSize = 32 });
        Assert.Equal(expected.ParameterCount(), System.Text.Json.Nodes.JsonNode.Parse(d.Out)!["params"]!.GetValue<long>());
        AssertCleanFailure(Sculpt("train", "--data", data, "--arch", "deeplabv3_resnet50", "--width", "8", "--out", Path.Combine(dir, "bad.sculpt")), "U-Net architectures only");
        AssertCleanFailure(Sculpt("train", "--data", data, "--arch", "resnet", "--out", Path.Combine(dir, "bad.sculpt")), "unknown --arch");
        // distillation from a teacher: the trained model teaches a fresh start of its own architecture
        var taught = Path.Combine(dir, "taught.sculpt");
        var k = Sculpt("train", "--data", data, "--init", model, "--reinit", "--teacher", model, "--distill-loss", "soft", "--epochs", "1",
            "--batch", "4", "--out", taught, "--json");
        Assert.True(k.Code == 0, k.Err);
        var distill = global::Sculpt.Runtime.ModelPackage.Load(taught).Meta.Training!["options"]!["distill"]!;
        Assert.Equal("soft", distill["kind"]!.GetValue<string>());
        var bad = Path.Combine(dir, "bad.sculpt");
        AssertCleanFailure(Sculpt("train", "--data", data, "--distill-loss", "soft", "--out", bad), "need --teacher");
        AssertCleanFailure(Sculpt("train", "--data", data, "--teacher", Path.Combine(dir, "none.sculpt"), "--out", bad), "none.sculpt");
        AssertCleanFailure(Sculpt("train", "--data", data, "--teacher", deeplab, "--distill-loss", "kl", "--out", bad), "--distill-loss");
        AssertCleanFailure(Sculpt("train", "--data", data, "--ema", "1", "--out", bad), "--ema must be in [0, 1)");
        Assert.False(File.Exists(Path.Combine(dir, "bad.sculpt")));
        var info = Sculpt("data", "info", "--data", data, "--json");
        Assert.Equal(16, System.Text.Json.Nodes.JsonNode.Parse(info.Out)!["samples"]!.GetValue<int>());
        var export = Path.Combine(dir, "export");
        Assert.Equal(0, Sculpt("data", "export", "--data", data, "--out", export, "--limit", "3").Code);
        Assert.Equal(3, Directory.GetFiles(Path.Combine(export, "images"), "*.png").Length);
        Assert.Equal(3, Directory.GetFiles(Path.Combine(export, "masks"), "*.png").Length);
        Assert.Equal(3, Directory.GetFiles(Path.Combine(export, "overlays"), "*.png").Length);
        Assert.True(File.Exists(Path.Combine(export, "montage.png")));
        Assert.Equal(3, global::Sculpt.Data.SegmentationDataset.Load(export).Samples.Count); // the export is itself a dataset folder
    }

    [Fact]
    public void PruneExportAndGroupsFromTheCommandLine()
    {
        var dir = TestFiles.TempDir();
        var data = Path.Combine(dir, "data");
        Assert.Equal(0, Sculpt("synth", "--out", data, "--count", "16", "--size", "32", "--seed", "2").Code);
        var model = Path.Combine(dir, "m.sculpt");
        Assert.Equal(0, Sculpt("train", "--data", data, "--arch", "unet-small", "--epochs", "1", "--batch", "4", "--out", model).Code);
        var small = Path.Combine(dir, "small.sculpt");
        var p = Sculpt("prune", "--model", model, "--data", data, "--compression", "5", "--steps", "2", "--max-step-ratio", "3", "--epochs", "0", "--final-epochs", "0",
            "--criterion", "l1", "--out", small, "--json");
        Assert.True(p.Code == 0, p.Err);
        var json = System.Text.Json.Nodes.JsonNode.Parse(p.Out)!;
        Assert.True(json["compression"]!.GetValue<double>() >= 5);
        Assert.Equal(global::Sculpt.Runtime.ModelPackage.Load(small).Graph.ParameterCount(), json["params"]!.GetValue<long>());
        Assert.Equal(3, File.ReadAllLines(Path.Combine(small + ".run", "steps.jsonl")).Length);
        var onnx = Path.Combine(dir, "small.onnx");
        Assert.Equal(0, Sculpt("export", "--model", small, "--onnx", onnx).Code);
        Assert.True(new FileInfo(onnx).Length > 0);
        // dense vs pruned, one session and two concurrent ones: one row per model and batch in each
        var bench = Sculpt("bench", "--model", model, "--compare", onnx, "--threads", "1", "--batches", "1,2", "--runs", "5", "--streams", "2", "--window", "0.2", "--json");
        Assert.True(bench.Code == 0, bench.Err);
        var bj = System.Text.Json.Nodes.JsonNode.Parse(bench.Out)!;
        Assert.Equal(4, bj["results"]!.AsArray().Count);
        var streamRows = bj["streams"]!.AsArray();
        Assert.Equal(new[] { (1, "m.sculpt"), (1, "small.onnx"), (2, "m.sculpt"), (2, "small.onnx") },
            streamRows.Select(r => (r!["batch"]!.GetValue<int>(), r["model"]!.GetValue<string>())).ToArray());
        Assert.All(streamRows, r => Assert.True(r!["throughput_fps"]!.GetValue<double>() > 0));
        Assert.True(bj["latency_ms"]!["p50"]!.GetValue<double>() > 0);
        // both engines side by side, and where Sculpt's engine spends its time: every planned kernel, MACs summing to the model's
        var both = Sculpt("bench", "--model", small, "--engine", "both", "--threads", "1", "--batches", "1", "--runs", "5", "--profile", "--json");
        Assert.True(both.Code == 0, both.Err);
        var bothJson = System.Text.Json.Nodes.JsonNode.Parse(both.Out)!;
        Assert.Equal(["sculpt", "ort"], bothJson["results"]!.AsArray().Select(r => r!["engine"]!.GetValue<string>()));
        var layers = bothJson["sculpt_layers"]![0]!["layers"]!.AsArray();
        var sculptLayers = bothJson["sculpt_layers"]![0]!;
        Assert.Equal(global::Sculpt.Engine.VectorWidths.Accelerated[0] * 32, sculptLayers["vector_bits"]!.GetValue<int>());
        Assert.True(sculptLayers["fma_ceiling_gflops"]!.GetValue<double>() > 0);
        Assert.Equal(global::Sculpt.Runtime.ModelPackage.Load(small).Graph.MacCount(), layers.Sum(r => r!["macs"]!.GetValue<long>()));
        Assert.All(layers, r => Assert.True(r!["ms"]!.GetValue<double>() > 0));
        // the same measurement inside a .NET application: a package timed by all three executors in this process
        using (var scratch = new global::Sculpt.Common.TempFolder("bench-test-"))
        {
            var subject = global::Sculpt.Report.BenchModel.Load(small, scratch.Path);
            var inProcess = global::Sculpt.Deploy.Benchmark.Latencies([subject.Subject()], ["sculpt", "ort", "torch"], [1], [1], 5);
            Assert.Equal(["sculpt", "ort", "torch"], inProcess.Select(r => r["engine"]!.GetValue<string>()));
            Assert.All(inProcess, r => Assert.True(r["latency_ms"]!["p50"]!.GetValue<double>() > 0));
            Assert.Equal(global::Sculpt.Runtime.ModelPackage.Load(small).Graph.MacCount(), subject.Macs);
        }
        // libtorch times packages only: an .onnx file with it is a usage error before any timing
        var torchOnnx = Sculpt("bench", "--model", model, "--compare", onnx, "--backend", "torch");
        Assert.Equal(2, torchOnnx.Code);
        Assert.Contains("small.onnx: an ONNX file cannot be timed with the torch backend", torchOnnx.Err);
        var groups = Sculpt("inspect", "--model", small, "--groups", "--json");
        Assert.Equal(0, groups.Code);
        Assert.Contains("\"prunable\": true", groups.Out);

        // distillation during pruning, with the loss train --teacher offers: recorded with each step
        var taught = Path.Combine(dir, "taught.sculpt");
        var d = Sculpt("prune", "--model", model, "--data", data, "--compression", "2", "--steps", "1", "--max-step-ratio", "3",
            "--epochs", "1", "--final-epochs", "0", "--criterion", "l1", "--no-control",
            "--distill", "--distill-loss", "soft", "--distill-weight", "0.5", "--out", taught);
        Assert.True(d.Code == 0, d.Err);
        var step = global::Sculpt.Runtime.ModelPackage.Load(taught).Meta.PruningHistory[0]["distill"]!;
        Assert.Equal(("soft", 0.5), (step["kind"]!.GetValue<string>(), step["weight"]!.GetValue<double>()));
        Assert.Null(global::Sculpt.Runtime.ModelPackage.Load(small).Meta.PruningHistory[0]["distill"]);
        AssertCleanFailure(
            Sculpt("prune", "--model", model, "--data", data, "--compression", "2", "--distill-loss", "soft", "--out", taught + "2"),
            "need --distill");

        // a target beyond what one channel per group allows: refused before anything is written
        var tooSmall = Path.Combine(dir, "tiny.sculpt");
        AssertCleanFailure(Sculpt("prune", "--model", model, "--data", data, "--max-params", "10", "--out", tooSmall), "cannot be reached");
        Assert.False(File.Exists(tooSmall));
        Assert.False(Directory.Exists(tooSmall + ".run"));

        // a latency target: planned through a latency model of this machine, then measured on the result
        var fast = Path.Combine(dir, "fast.sculpt");
        var dense = global::Sculpt.Runtime.ModelPackage.Load(model);
        // the fastest of three: one slow measurement on a busy machine would put the target above what prune itself
        // measures for the dense model, and nothing would need pruning (the likely cause of one CI failure)
        double denseMs = Enumerable.Range(0, 3).Min(_ => LatencyBudget.Measure(dense.Graph, 1, dense.Weights));
        var l = Sculpt("prune", "--model", model, "--data", data, "--max-latency-ms", (denseMs * 0.7).ToString(System.Globalization.CultureInfo.InvariantCulture), "--steps", "1", "--max-step-ratio", "4",
            "--epochs", "0", "--final-epochs", "0", "--criterion", "l1", "--out", fast, "--json");
        Assert.True(l.Code == 0, l.Err);
        var lj = System.Text.Json.Nodes.JsonNode.Parse(l.Out)!;
        Assert.True(lj["macs"]!.GetValue<long>() < dense.Graph.MacCount());
        Assert.True(lj["latency_ms"]!.GetValue<double>() > 0);
        // the plan the MAC target came from, as the run folder keeps it
        var latencyPlan = lj["latency_plan"]!;
        Assert.Equal(denseMs * 0.7, latencyPlan["target_ms"]!.GetValue<double>(), 12);
        Assert.Equal(dense.Graph.MacCount(), latencyPlan["dense_macs"]!.GetValue<long>());
        var kept = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(fast + ".run", "latency.json")))!;
        Assert.Equal(kept.ToJsonString(), latencyPlan.ToJsonString());
        Assert.Equal(4, latencyPlan["probes"]!.AsArray().Count);
        // a resumed run prunes to the MACs its first run planned: timing again would give another MAC target, and the
        // run's own options would refuse the resume
        string target = (denseMs * 0.7).ToString(System.Globalization.CultureInfo.InvariantCulture);
        string[] latencyRun = ["prune", "--model", model, "--data", data, "--steps", "1", "--max-step-ratio", "4",
            "--epochs", "0", "--final-epochs", "0", "--criterion", "l1", "--json", "--resume"];
        var again = Sculpt([.. latencyRun, "--max-latency-ms", target, "--out", fast + ".again.sculpt", "--run", fast + ".run"]);
        Assert.True(again.Code == 0, again.Err);
        Assert.Equal(lj["macs"]!.GetValue<long>(), System.Text.Json.Nodes.JsonNode.Parse(again.Out)!["macs"]!.GetValue<long>());
        string otherTarget = (denseMs * 0.5).ToString(System.Globalization.CultureInfo.InvariantCulture);
        AssertCleanFailure(Sculpt([.. latencyRun, "--max-latency-ms", otherTarget, "--out", fast + ".other.sculpt", "--run", fast + ".run"]),
            "latency.json");
        string[] onAnotherModel = [.. latencyRun];
        onAnotherModel[Array.IndexOf(onAnotherModel, model)] = small;
        AssertCleanFailure(Sculpt([.. onAnotherModel, "--max-latency-ms", target, "--out", fast + ".other.sculpt", "--run", fast + ".run"]),
            "latency.json: this run was planned for a model of");
        foreach (var hostile in new[] { "{\"TargetMs\": 1e999", "{\"target_ms\": -1, \"threads\": 1, \"max_macs\": 5}", "[]" })
        {
            File.WriteAllText(Path.Combine(fast + ".run", "latency.json"), hostile);
            var resumed = Sculpt([.. latencyRun, "--max-latency-ms", target, "--out", fast + ".hostile.sculpt", "--run", fast + ".run"]);
            AssertCleanFailure(resumed, "latency.json: corrupt resume state");
            Assert.False(File.Exists(fast + ".hostile.sculpt"));
        }
        // below the fixed cost per run: refused before any pruning
        AssertCleanFailure(Sculpt("prune", "--model", model, "--data", data, "--max-latency-ms", "0.000001", "--out", tooSmall), "cannot be reached");
        Assert.False(File.Exists(tooSmall));
    }

    [Fact]
    public void InvalidGraphJsonInsideAModelIsReportedWithTheFileName()
    {
        var dir = TestFiles.TempDir();
        var path = Path.Combine(dir, "bad.sculpt");
        using (var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Create))
        {
            using (var w = new StreamWriter(zip.CreateEntry("graph.json").Open()))
                w.Write("{\"format\":\"sculpt-graph\",\"version\":1,\"nodes\":[{\"op\":\"conv2d\",\"name\":\"c\",\"inputs\":[\"nowhere\"],\"in_channels\":1,\"out_channels\":1}]}");
            using (var w = new StreamWriter(zip.CreateEntry("meta.json").Open())) w.Write("{}");
            zip.CreateEntry("weights.safetensors");
        }
        var r = Sculpt("inspect", "--model", path);
        AssertCleanFailure(r, "bad.sculpt");
        Assert.Contains("graph.json", r.Err);
    }

    [Fact]
    public void InspectClassicUNetPrintsItsExactCount()
    {
        var r = Sculpt("inspect", "--arch", "unet-classic", "--size", "112");
        Assert.Equal(0, r.Code);
        Assert.Contains("31,036,481 parameters", r.Out);
    }

    [Fact]
    public void BadInputFailsWithOneLineAndLeavesNoOutput()
    {
        var dir = TestFiles.TempDir();
        var outModel = Path.Combine(dir, "out.sculpt");
        AssertCleanFailure(Sculpt("train", "--data", Path.Combine(dir, "missing"), "--out", outModel), "missing");
        Assert.False(File.Exists(outModel));
        // the folders an output would go into are not left behind either (checking --out early had created them)
        var nested = Path.Combine(dir, "new", "models", "out.sculpt");
        AssertCleanFailure(Sculpt("train", "--data", Path.Combine(dir, "missing"), "--out", nested), "missing");
        var newEval = Path.Combine(dir, "new", "ev");
        AssertCleanFailure(Sculpt("eval", "--model", outModel, "--data", Path.Combine(dir, "missing"), "--out", newEval), "out.sculpt");
        Assert.False(Directory.Exists(Path.Combine(dir, "new")));

        var data = Path.Combine(dir, "data");
        // a set too small to split, or images too small to pool, are usage errors naming the option
        foreach (var (option, value, range) in new[] { ("count", "2", "3 to"), ("size", "31", "32 to") })
        {
            var small = Sculpt("synth", "--out", data, "--" + option, value);
            Assert.Equal(2, small.Code);
            Assert.StartsWith($"sculpt synth: --{option} must be {range}", small.Err);
            Assert.False(Directory.Exists(data));
        }
        Sculpt("synth", "--out", data, "--count", "6", "--size", "32");
        File.WriteAllBytes(Path.Combine(data, "images", "case_00001.png"), new byte[] { 0x89, 0x50, 0x4e, 0x47, 1, 2, 3 });
        AssertCleanFailure(Sculpt("train", "--data", data, "--out", outModel), "case_00001.png");
        Assert.False(File.Exists(outModel));

        var graphFile = Path.Combine(dir, "notzip.sculpt");
        File.WriteAllText(graphFile, "{\"format\":\"sculpt-graph\"");
        AssertCleanFailure(Sculpt("inspect", "--model", graphFile), "notzip.sculpt");
        AssertCleanFailure(Sculpt("eval", "--model", graphFile, "--data", data), "notzip.sculpt");

        var r = Sculpt("train", "--data", data, "--out", outModel, "--epohcs", "3");
        Assert.Equal(2, r.Code);
        Assert.Contains("unknown option --epohcs", r.Err);

        // a flag the command does not have is unknown, not an option that takes the next one as its value (segment
        // had answered "option --lenient needs a value" here); an option without its value is named as such
        r = Sculpt("segment", "--model", ArchiveFixture.Model, "--lenient", "--input", data, "--out", Path.Combine(dir, "seg"));
        Assert.Equal((2, "sculpt segment: unknown option --lenient"), (r.Code, r.Err.Split(" (see")[0].Trim()));
        r = Sculpt("train", "--data", data, "--epochs", "--out", outModel);
        Assert.Equal((2, "sculpt train: option --epochs needs a value"), (r.Code, r.Err.Split(" (see")[0].Trim()));

        // a missing input folder is bad input (exit 1) like a missing file, not a usage error (report had exited 2)
        var missingRun = Path.Combine(dir, "no-run");
        r = Sculpt("report", "--run", missingRun);
        Assert.Equal((1, $"sculpt report: error: {missingRun}: run folder not found"), (r.Code, r.Err.Trim()));

        // a split that does not exist is a usage error (eval had answered "split 'tset' is empty")
        var exported = Path.Combine(dir, "exported");
        foreach (var (args, splits) in new[]
                 {
                     (new[] { "eval", "--model", ArchiveFixture.Model, "--data", data, "--split", "tset" }, "train, val, test or all"),
                     (["data", "export", "--data", data, "--out", exported, "--split", "tset"], "train, val, test"),
                 })
        {
            r = Sculpt(args);
            Assert.True(r.Code == 2, $"{args[0]}: exit {r.Code}, {r.Err}");
            Assert.Contains($"--split: 'tset' is not a split ({splits})", r.Err);
        }
        Assert.False(Path.Exists(exported));

        Assert.Empty(Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories));
        Assert.False(File.Exists(outModel));
    }
}

/// <summary>The real CLI as a child process: what only a process can show (signals, FIFOs that would block forever).</summary>
public class CliProcessTests
{
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private static System.Diagnostics.Process Start(string tmp, params string[] args)
    {
        // through perl, which sets SIGINT and SIGTERM back to their defaults before it execs the CLI: a test host
        // started in the background by a non-interactive shell (as CI runs it) ignores SIGINT, and an ignored
        // signal stays ignored in every child, so the CLI would never see it
        var psi = new System.Diagnostics.ProcessStartInfo("perl",
            ["-e", "$SIG{INT} = $SIG{TERM} = 'DEFAULT'; exec @ARGV or die", Path.Combine(AppContext.BaseDirectory, "Sculpt.Cli"), .. args])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        psi.Environment["TMPDIR"] = tmp; // the child's scratch folders land here, where the test can see them
        psi.Environment["PERL_BADLANG"] = "0"; // a LANG without an installed locale (de_DE here) makes perl warn on stderr
        return System.Diagnostics.Process.Start(psi)!;
    }

    private static string SmallModel(string dir)
    {
        var g = Models.UNet.Build(new Models.UNetConfig { Depth = 1, BaseWidth = 2, InputSize = 16 });
        var meta = new Runtime.ModelMeta();
        meta.Task.InputHeight = meta.Task.InputWidth = 16;
        var path = Path.Combine(dir, "m.sculpt");
        new Runtime.ModelPackage(g, TestFiles.WithBnStatistics(g, 1), meta).Save(path);
        return path;
    }

    [Theory]
    [InlineData(15)] // SIGTERM
    [InlineData(2)]  // SIGINT
    public void AStoppedRunLeavesNoScratchFolderBehind(int signal)
    {
        var dir = TestFiles.TempDir();
        var tmp = Directory.CreateDirectory(Path.Combine(dir, "tmp")).FullName;
        var model = SmallModel(dir);
        using var p = Start(tmp, "bench", "--model", model, "--runs", "100000000", "--threads", "1", "--batches", "1");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // the export to ONNX lands in a scratch folder first: stop the run once it exists
        while (Directory.GetDirectories(tmp, "sculpt-bench-*").Length == 0 && !p.HasExited && clock.Elapsed < TimeSpan.FromSeconds(60))
            Thread.Sleep(20);
        if (p.HasExited) Assert.Fail($"the run ended before it could be stopped: {p.StandardError.ReadToEnd()}");
        Assert.NotEmpty(Directory.GetDirectories(tmp, "sculpt-bench-*"));
        Thread.Sleep(300);
        Assert.Equal(0, kill(p.Id, signal));
        bool ended = p.WaitForExit(30_000);
        if (!ended) p.Kill();
        Assert.True(ended, "the stopped run did not end");
        Assert.NotEqual(0, p.ExitCode);
        Assert.Empty(Directory.GetFileSystemEntries(tmp, "sculpt-*"));
    }

    [Theory]
    [InlineData("inspect", "--model")]
    [InlineData("import", "--onnx")]
    [InlineData("import", "--pytorch")]
    [InlineData("eval", "--model")]
    public void AFifoAsAnInputIsRefusedInsteadOfBlocking(string command, string option)
    {
        var dir = TestFiles.TempDir();
        var fifo = Path.Combine(dir, "input.fifo");
        using (var mk = System.Diagnostics.Process.Start("mkfifo", fifo)) mk.WaitForExit();
        var args = new List<string> { command, option, fifo };
        if (command == "import") args.AddRange(["--arch", "unet-small", "--out", Path.Combine(dir, "out.sculpt")]);
        if (command == "eval") args.AddRange(["--data", dir]);
        using var p = Start(dir, args.ToArray());
        bool ended = p.WaitForExit(60_000);
        if (!ended) p.Kill();
        Assert.True(ended, $"{command} {option} FIFO blocked");
        var err = p.StandardError.ReadToEnd();
        Assert.Equal(1, p.ExitCode);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains(fifo, err);
        Assert.Contains("not a regular file", err);
        Assert.False(File.Exists(Path.Combine(dir, "out.sculpt")));
    }
}

/// <summary>
/// `sculpt eval --engine`: a model scored by the runtime it is deployed with. libtorch, ONNX Runtime and Sculpt's
/// engine compute the same logits to about 1e-4, so a pixel can flip only where a logit is that close to the
/// decision boundary: per case, Dice agrees to 1e-3.
/// </summary>
public class EvalEngineTests
{
    private static readonly Lazy<string> Data = new(() =>
    {
        var dir = Path.Combine(TestFiles.TempDir(), "synth");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", dir, "--count", "16", "--size", "64", "--seed", "8").Code);
        return dir;
    });

    private static double[] PerCaseDice(string model, string engine, params string[] more)
    {
        var outDir = Path.Combine(TestFiles.TempDir(), "eval");
        var r = TestFiles.Cli(["eval", "--model", model, "--data", Data.Value, "--split", "all", "--engine", engine, "--out", outDir,
            "--json", .. more]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(engine, System.Text.Json.Nodes.JsonNode.Parse(r.Out)!["engine"]!.GetValue<string>());
        return File.ReadAllLines(Path.Combine(outDir, "per_case.csv")).Skip(1)
            .Select(l => double.Parse(l.Split(',')[2], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>A trained LV model as a package and as its ONNX export; real torch.onnx exports as they come.</summary>
    [Theory]
    [InlineData("lv-unet")]
    [InlineData("nnunet")]
    [InlineData("monai_unet")]
    public void EveryEngineScoresTheModelAlike(string name)
    {
        string model;
        if (name == "lv-unet")
        {
            model = Path.Combine(TestFiles.TempDir(), "lv.onnx");
            Assert.Equal(0, TestFiles.Cli("export", "--model", ArchiveFixture.Model, "--onnx", model).Code);
        }
        else model = Path.Combine(RealExportTests.Dir, name + ".onnx");
        var reference = PerCaseDice(name == "lv-unet" ? ArchiveFixture.Model : model, "torch");
        Assert.Equal(16, reference.Length);
        if (name == "lv-unet") Assert.True(reference.Average() > 0.9, $"the trained model scores {reference.Average():0.000}");
        foreach (var engine in new[] { "ort", "sculpt" })
        {
            var dice = PerCaseDice(model, engine);
            Assert.Equal(reference.Length, dice.Length);
            for (int i = 0; i < dice.Length; i++)
                Assert.True(Math.Abs(dice[i] - reference[i]) <= 1e-3, $"{engine}, case {i}: {dice[i]} vs {reference[i]}");
        }
    }

    /// <summary>
    /// A real torch.onnx export with dynamic height and width (as nnU-Net-style exports often are) is scored and segmented
    /// at the size given, alike by every engine; without a size it is refused with what to give.
    /// </summary>
    [Fact]
    public void AnExportWithDynamicHeightAndWidthRunsAtTheGivenSize()
    {
        var dynamic = Path.Combine(RealExportTests.Dir, "unet_dynamic_hw.onnx");
        var reference = PerCaseDice(dynamic, "torch", "--input-size", "64,64");
        Assert.Equal(16, reference.Length);
        foreach (var engine in new[] { "ort", "sculpt" })
        {
            var dice = PerCaseDice(dynamic, engine, "--input-size", "64,64");
            for (int i = 0; i < dice.Length; i++)
                Assert.True(Math.Abs(dice[i] - reference[i]) <= 1e-3, $"{engine}, case {i}: {dice[i]} vs {reference[i]}");
        }

        var r = TestFiles.Cli("eval", "--model", dynamic, "--data", Data.Value);
        Assert.Equal(1, r.Code);
        Assert.Contains(
            $"{dynamic}: the input's height and width are dynamic [?, 1, ?, ?]; give the size to run it at (--input-size H,W)", r.Err);
        r = TestFiles.Cli("eval", "--model", Path.Combine(RealExportTests.Dir, "unet.onnx"), "--data", Data.Value, "--input-size", "32,32");
        Assert.Equal(1, r.Code);
        Assert.Contains("--input-size 32,32 disagrees", r.Err);
        r = TestFiles.Cli("eval", "--model", ArchiveFixture.Model, "--data", Data.Value, "--input-size", "64,64");
        Assert.Equal(2, r.Code);
        Assert.Contains("--input-size applies to an .onnx model", r.Err);
        r = TestFiles.Cli("eval", "--model", dynamic, "--data", Data.Value, "--input-size", "64x64");
        Assert.Equal(2, r.Code);
        Assert.Contains("--input-size needs H,W between 1 and 8192, got '64x64'", r.Err);

        var image = Directory.GetFiles(Path.Combine(Data.Value, "images")).Order().First();
        foreach (var engine in new[] { "ort", "sculpt" })
        {
            var outDir = Path.Combine(TestFiles.TempDir(), "seg");
            var s = TestFiles.Cli("segment", "--model", dynamic, "--input", image, "--out", outDir, "--engine", engine,
                "--input-size", "64,64");
            Assert.True(s.Code == 0, s.Err);
            var mask = ImageIO.Read(Path.Combine(outDir, "masks", Path.GetFileNameWithoutExtension(image) + ".png"));
            Assert.Equal((64, 64), (mask.Height, mask.Width));
        }
        r = TestFiles.Cli("segment", "--model", dynamic, "--input", image, "--out", Path.Combine(TestFiles.TempDir(), "seg"));
        Assert.Equal(1, r.Code);
        Assert.Contains("--input-size H,W", r.Err);
    }

    [Fact]
    public void AnUnknownEngineIsAUsageError()
    {
        var r = TestFiles.Cli("eval", "--model", ArchiveFixture.Model, "--data", Data.Value, "--engine", "tensorrt");
        Assert.Equal(2, r.Code);
        Assert.Contains("--engine must be torch, sculpt or ort, got 'tensorrt'", r.Err);
    }
}

/// <summary>
/// A dataset's warnings reach the user whatever the command: prune had printed none of them (an EchoNet archive's
/// skipped videos went unmentioned there) and could not skip a bad item at all, although train and eval could.
/// </summary>
public class DatasetWarningTests
{
    [Fact]
    public void EveryCommandThatReadsADatasetShowsItsWarningsAndPruneSkipsBadItemsWhenLenient()
    {
        var dir = TestFiles.TempDir();
        var fx = new Fixtures.EchoNetFixture(Path.Combine(dir, "echonet"));
        var missing = fx.Videos[1].Name + ".avi";
        File.Delete(Path.Combine(fx.Root, "Videos", missing));
        // the fixture's last video has one traced frame, which EchoNet's rule drops
        string[] expected = [missing, "1 video(s) with fewer than two traced frames"];
        void AssertWarned((int Code, string Out, string Err) r)
        {
            Assert.True(r.Code == 0, r.Err);
            var warnings = r.Err.Split('\n').Where(l => l.StartsWith("warning: ", StringComparison.Ordinal)).ToList();
            Assert.All(expected, w => Assert.Single(warnings, l => l.Contains(w, StringComparison.Ordinal)));
        }

        var model = Path.Combine(dir, "m.sculpt");
        AssertWarned(TestFiles.Cli("train", "--data", fx.Root, "--lenient", "--arch", "unet-small", "--width", "2", "--epochs", "1",
            "--batch", "4", "--out", model));
        var pruned = Path.Combine(dir, "p.sculpt");
        string[] prune = ["prune", "--model", model, "--data", fx.Root, "--compression", "2", "--steps", "1", "--max-step-ratio", "3",
            "--epochs", "0", "--final-epochs", "0", "--no-control", "--out", pruned];
        var strict = TestFiles.Cli(prune);
        Assert.Equal(1, strict.Code);
        Assert.Contains($"{missing}", strict.Err);
        Assert.Contains("not found", strict.Err);
        Assert.False(File.Exists(pruned));
        AssertWarned(TestFiles.Cli([.. prune, "--lenient"]));
        Assert.True(File.Exists(pruned));
        AssertWarned(TestFiles.Cli("eval", "--model", pruned, "--data", fx.Root, "--lenient"));
        AssertWarned(TestFiles.Cli("data", "info", "--data", fx.Root, "--lenient", "--json"));
    }
}

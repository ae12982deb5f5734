using Sculpt.Cli;
using Sculpt.Data;
using Xunit;

namespace Sculpt.Tests;

// Tests that swap Console or time-consuming training runs go one at a time (2-core machines).
[CollectionDefinition("serial", DisableParallelization = true)]
public class SerialCollection { }

[Collection("serial")]
public class CliTests
{
    private static (int Code, string Out, string Err) Sculpt(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        Console.SetOut(o); Console.SetError(e);
        try { return (CliMain.Run(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

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
        var insp = Sculpt("inspect", "--model", model, "--json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(insp.Out)!;
        Assert.Equal(global::Sculpt.Runtime.ModelPackage.Load(model).Graph.ParameterCount(), json["params"]!.GetValue<long>());
        Assert.True(json["macs"]!.GetValue<long>() > 0);
        var info = Sculpt("data", "info", "--data", data, "--json");
        Assert.Equal(16, System.Text.Json.Nodes.JsonNode.Parse(info.Out)!["samples"]!.GetValue<int>());
        var export = Path.Combine(dir, "export");
        Assert.Equal(0, Sculpt("data", "export", "--data", data, "--out", export, "--limit", "3").Code);
        Assert.Equal(10, Directory.GetFiles(export, "*.png").Length);
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

        var data = Path.Combine(dir, "data");
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

        Assert.Empty(Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories));
        Assert.False(File.Exists(outModel));
    }
}

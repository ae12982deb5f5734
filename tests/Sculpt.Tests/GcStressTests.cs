using System.Text.Json.Nodes;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// TorchSharp does not keep a temporary tensor alive while libtorch reads it: outside a DisposeScope the GC may
/// finalize an argument in the middle of a native call, which crashed the test host and the demo now and then
/// (a jump to a freed vtable, or "Expected false to be true" from libtorch). A thread that collects garbage
/// without pause makes such a window likely; the pipeline must then neither crash nor change a single number.
/// </summary>
[Collection("serial")]
public class GcStressTests
{
    private static JsonNode Run(string dir, string data)
    {
        var model = Path.Combine(dir, "dense.sculpt");
        var t = TestFiles.Cli("train", "--data", data, "--arch", "unet-small", "--width", "4", "--epochs", "1", "--batch", "4",
            "--seed", "5", "--out", model, "--json");
        Assert.True(t.Code == 0, t.Err);
        var pruned = Path.Combine(dir, "pruned.sculpt");
        var p = TestFiles.Cli("prune", "--model", model, "--data", data, "--compression", "3", "--max-step-ratio", "2", "--ft-samples", "8",
            "--final-epochs", "1", "--batch", "4", "--seed", "5", "--out", pruned, "--json");
        Assert.True(p.Code == 0, p.Err);
        return new JsonObject { ["train"] = JsonNode.Parse(t.Out), ["prune"] = JsonNode.Parse(p.Out) };
    }

    [Fact]
    public void TrainingAndPruningGiveTheSameNumbersWhileTheGcCollectsWithoutPause()
    {
        var dir = TestFiles.TempDir();
        var data = Path.Combine(dir, "data");
        Assert.Equal(0, TestFiles.Cli("synth", "--out", data, "--count", "16", "--size", "32", "--seed", "2").Code);
        var calm = Run(Directory.CreateDirectory(Path.Combine(dir, "calm")).FullName, data);

        using var stop = new CancellationTokenSource();
        var hammer = new Thread(() =>
        {
            while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        }) { IsBackground = true };
        hammer.Start();
        JsonNode stressed;
        try { stressed = Run(Directory.CreateDirectory(Path.Combine(dir, "stressed")).FullName, data); }
        finally { stop.Cancel(); hammer.Join(); }

        foreach (var key in new[] { "val_dice", "params" })
            Assert.Equal(calm["train"]![key]!.ToJsonString(), stressed["train"]![key]!.ToJsonString());
        foreach (var key in new[] { "dice", "params", "macs", "compression", "steps" })
            Assert.Equal(calm["prune"]![key]!.ToJsonString(), stressed["prune"]![key]!.ToJsonString());
        static string Controls(JsonNode run) => string.Join("; ", run["prune"]!["controls"]!["results"]!.AsArray()
            .Select(r => $"{r!["kind"]} {r["params"]} {r["val_dice"]}"));
        Assert.Equal(2, calm["prune"]!["controls"]!["results"]!.AsArray().Count);
        Assert.Equal(Controls(calm), Controls(stressed));
    }
}

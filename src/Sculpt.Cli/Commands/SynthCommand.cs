using System.Text.Json.Nodes;
using Sculpt.Data;

namespace Sculpt.Cli.Commands;

public static class SynthCommand
{
    public const string Help = """
        sculpt synth --out DIR [--count N] [--size S] [--videos V] [--frames F] [--extra-classes] [--seed S] [--json]

        Writes synthetic apical-four-chamber echocardiography as a dataset folder: images/, masks/ (pixel value =
        label: 1 LV cavity; with --extra-classes also 2 myocardium, 3 left atrium), split.csv (70/15/15),
        manifest.json, and with --videos short cine loops (videos/<id>/frame_*.png and masks) whose ejection
        fraction, ED and ES frames (area-length method on the true masks) are in the manifest.
        Deterministic for a given --seed.

        example: sculpt synth --out data/echo --count 800 --videos 4 --seed 1
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "extra-classes", "json" });
        var o = new SynthOptions
        {
            Count = a.Int("count", 800, 3, 1_000_000), Size = a.Int("size", 112, 32, 1024), Videos = a.Int("videos", 0, 0, 10_000),
            VideoFrames = a.Int("frames", 40, 2, 10_000),
            ExtraClasses = a.Flag("extra-classes"), Seed = a.Int("seed", 0),
        };
        var outDir = a.Required("out");
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        var progress = new ProgressLine();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        SynthDataset.Write(outDir, o, (k, n) => progress.Update($"synth {ProgressLine.Bar((double)k / n)} {k}/{n}"));
        progress.Done();
        if (json) Output.Json(new JsonObject { ["out"] = outDir, ["count"] = o.Count, ["videos"] = o.Videos, ["seed"] = o.Seed, ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 2) });
        else Console.WriteLine($"wrote {o.Count} frames{(o.Videos > 0 ? $" and {o.Videos} videos" : "")} ({o.Size}×{o.Size}, seed {o.Seed}) to {outDir} in {clock.Elapsed.TotalSeconds:0.0}s");
        return 0;
    }
}

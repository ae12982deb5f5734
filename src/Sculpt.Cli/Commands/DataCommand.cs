using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Runtime;

namespace Sculpt.Cli.Commands;

public static class DataCommand
{
    public const string Help = """
        sculpt data info   --data DIR [--json]
        sculpt data export --data DIR --out DIR2 [--split S] [--limit N]

        info:   format, sample counts per split, image sizes, class balance (pixel fraction per label), videos.
        export: writes <id>_image.png, <id>_mask.png (labels scaled to be visible) and <id>_overlay.png for each
                sample, plus montage.png, so a person can see what the model will learn from.

        example: sculpt data info --data data/echo
        """;

    public static int Run(string[] argv)
    {
        if (argv.Length == 0 || argv[0] is not ("info" or "export")) throw new UsageException("expected 'info' or 'export'");
        var a = new Args(argv[1..], new HashSet<string> { "json" });
        var dir = a.Required("data");
        return argv[0] == "info" ? Info(a, dir) : Export(a, dir);
    }

    private static int Info(Args a, string dir)
    {
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        var ds = SegmentationDataset.Load(dir);
        var counts = ds.Samples.GroupBy(s => s.Split).OrderBy(g => g.Key).ToDictionary(g => g.Key, g => g.Count());
        var pixels = new long[ds.Labels.Count];
        foreach (var s in ds.Samples) foreach (var v in s.Mask) pixels[v]++;
        long total = pixels.Sum();
        int videos = Directory.Exists(Path.Combine(dir, "videos")) ? Directory.GetDirectories(Path.Combine(dir, "videos")).Length : 0;
        if (json)
        {
            Output.Json(new JsonObject
            {
                ["data"] = dir, ["format"] = ds.Format, ["samples"] = ds.Samples.Count,
                ["splits"] = new JsonObject(counts.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                ["height"] = ds.Height, ["width"] = ds.Width, ["channels"] = ds.Channels,
                ["labels"] = new JsonArray(ds.Labels.Select(l => (JsonNode)l).ToArray()),
                ["pixel_fraction"] = new JsonObject(ds.Labels.Select((l, i) => KeyValuePair.Create(l, (JsonNode?)Math.Round((double)pixels[i] / total, 6)))),
                ["videos"] = videos,
            });
            return 0;
        }
        Console.WriteLine($"dataset  {dir}\nformat   {ds.Format}\nimages   {ds.Samples.Count} ({ds.Width}×{ds.Height}, {ds.Channels} channel{(ds.Channels > 1 ? "s" : "")})" + (videos > 0 ? $"\nvideos   {videos}" : ""));
        Console.WriteLine();
        Console.Write(Output.Table(new[] { "split", "samples" }, counts.Select(kv => new[] { kv.Key, kv.Value.ToString() })));
        Console.WriteLine();
        Console.Write(Output.Table(new[] { "label", "value", "pixel fraction", "images containing" },
            ds.Labels.Select((l, i) => new[] { l, i.ToString(), Output.F((double)pixels[i] / total), ds.Samples.Count(s => s.Mask.Contains((byte)i)).ToString() })));
        return 0;
    }

    private static int Export(Args a, string dir)
    {
        var outDir = a.Required("out");
        var split = a.Get("split");
        int limit = a.Int("limit", int.MaxValue);
        a.EnsureAllUsed();
        var ds = SegmentationDataset.Load(dir);
        var samples = ds.Samples.Where(s => split == null || s.Split == split).Take(limit).ToList();
        if (samples.Count == 0) throw new DatasetException($"{dir}: no samples{(split != null ? $" in split '{split}'" : "")}");
        AtomicFile.WriteDirectory(outDir, tmp =>
        {
            var overlays = new List<Image8>();
            int scale = 255 / Math.Max(1, ds.Labels.Count - 1);
            foreach (var s in samples)
            {
                var hw = ds.Height * ds.Width;
                var grey = s.Image[..hw];
                File.WriteAllBytes(Path.Combine(tmp, $"{s.Id}_image.png"), ImageIO.EncodePng(SegmentationDataset.ToImage8(grey, ds.Height, ds.Width)));
                File.WriteAllBytes(Path.Combine(tmp, $"{s.Id}_mask.png"), ImageIO.EncodePng(new Image8(ds.Width, ds.Height, 1, s.Mask.Select(v => (byte)(v * scale)).ToArray())));
                var ov = Overlay.Draw(grey, s.Mask, ds.Height, ds.Width);
                File.WriteAllBytes(Path.Combine(tmp, $"{s.Id}_overlay.png"), ImageIO.EncodePng(ov));
                if (overlays.Count < 24) overlays.Add(ov);
            }
            File.WriteAllBytes(Path.Combine(tmp, "montage.png"), ImageIO.EncodePng(Overlay.Montage(overlays, 6)));
        });
        Console.WriteLine($"wrote {samples.Count} image/mask/overlay triples and montage.png to {outDir}");
        return 0;
    }
}

using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Runtime;

namespace Sculpt.Cli.Commands;

public static class DataCommand
{
    public const string Help = """
        sculpt data info   --data DIR [--lenient] [--json]
        sculpt data export --data DIR --out DIR2 [--split S] [--limit N] [--lenient]

        DIR: a Sculpt dataset folder (docs/dataset-format.md) or an EchoNet-Dynamic release (FileList.csv,
        VolumeTracings.csv, Videos/ with Motion-JPEG AVIs; each traced frame is a sample <FileName>_<Frame>,
        the larger-area traced frame of a video is ED, the smaller ES).
        info:   format, sample counts per split, image sizes, class balance (pixel fraction per label),
                normalisation the source prescribes, skipped items.
        export: writes a Sculpt dataset folder (images/<id>.png, masks/<id>.png, split.csv, manifest.json)
                plus overlays/<id>.png and montage.png, so a person can see what the model will learn from.
        --lenient: a bad item (missing video, frame beyond the video, malformed row) is skipped with a counted
                warning instead of failing.

        example: sculpt data info --data data/echo
        """;

    public static int Run(string[] argv)
    {
        if (argv.Length == 0 || argv[0] is not ("info" or "export")) throw new UsageException("expected 'info' or 'export'");
        var a = new Args(argv[1..], new HashSet<string> { "json", "lenient" });
        var dir = a.Required("data");
        return argv[0] == "info" ? Info(a, dir) : Export(a, dir);
    }

    private static int Info(Args a, string dir)
    {
        bool json = a.Flag("json"), lenient = a.Flag("lenient");
        a.EnsureAllUsed();
        var ds = DataLoading.Load(dir, lenient: lenient);
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
                ["normalization"] = ds.Normalization is { } n ? new JsonObject { ["mean_0_255"] = new JsonArray(n.Mean.Select(m => (JsonNode)Math.Round(m * 255, 3)).ToArray()), ["std_0_255"] = new JsonArray(n.Std.Select(m => (JsonNode)Math.Round(m * 255, 3)).ToArray()) } : null,
                ["ed_es"] = new JsonObject { ["ED"] = ds.Samples.Count(s => s.Phase == "ED"), ["ES"] = ds.Samples.Count(s => s.Phase == "ES") },
                ["warnings"] = new JsonArray(ds.Warnings.Select(w => (JsonNode)w).ToArray()),
            });
            return 0;
        }
        if (ds.Normalization is { } norm)
            Console.WriteLine($"normalisation (0–255 scale) mean [{string.Join(", ", norm.Mean.Select(m => (m * 255).ToString("0.00", Output.Inv)))}], std [{string.Join(", ", norm.Std.Select(m => (m * 255).ToString("0.00", Output.Inv)))}]");
        if (ds.Samples.Any(s => s.Phase != null)) Console.WriteLine($"phases   {ds.Samples.Count(s => s.Phase == "ED")} ED, {ds.Samples.Count(s => s.Phase == "ES")} ES");
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
        var split = a.Has("split") ? a.Choice("split", "", s => SegmentationDataset.ParseSplit(s)) : null;
        int limit = a.Int("limit", int.MaxValue, 1, int.MaxValue);
        bool lenient = a.Flag("lenient");
        a.EnsureAllUsed();
        var ds = DataLoading.Load(dir, lenient: lenient);
        var samples = ds.Samples.Where(s => split == null || s.Split == split).Take(limit).ToList();
        if (samples.Count == 0) throw new DatasetException($"{dir}: no samples{(split != null ? $" in split '{split}'" : "")}");
        int hw = ds.Height * ds.Width;
        SegmentationDataset.WriteFolder(outDir, samples.Select(s => (s.Id, s.Image[..hw], s.Mask, s.Split)), ds.Height, ds.Width, ds.Labels,
            new JsonObject { ["source"] = Path.GetFullPath(dir), ["source_format"] = ds.Format }, tmp =>
            {
                Directory.CreateDirectory(Path.Combine(tmp, "overlays"));
                var overlays = new List<Image8>();
                foreach (var s in samples)
                {
                    var ov = Overlay.Draw(s.Image[..hw], s.Mask, ds.Height, ds.Width);
                    File.WriteAllBytes(Path.Combine(tmp, "overlays", $"{s.Id}.png"), ImageIO.EncodePng(ov));
                    if (overlays.Count < 24) overlays.Add(ov);
                }
                File.WriteAllBytes(Path.Combine(tmp, "montage.png"), ImageIO.EncodePng(Overlay.Montage(overlays, 6)));
            });
        Console.WriteLine($"wrote {samples.Count} images, masks and overlays (a Sculpt dataset folder) and montage.png to {outDir}");
        return 0;
    }
}

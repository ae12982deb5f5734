using System.Text.Json.Nodes;

namespace Sculpt.Data;

public static class SynthDataset
{
    /// <summary>Generates the synthetic echo set (and optional videos) into a dataset folder.</summary>
    public static void Write(string dir, SynthOptions o, Action<int, int>? progress = null)
    {
        if (o.Count < 3)
            throw new DatasetException($"a synthetic set needs at least 3 cases (train, val and test need one each), got {o.Count}");
        if (o.Size < 32) throw new DatasetException($"synthetic images need a size of at least 32 pixels, got {o.Size}");
        var order = Enumerable.Range(0, o.Count).ToArray();
        new Random(o.Seed).Shuffle(order);
        int nVal = Math.Max(1, (int)Math.Round(o.Count * o.ValFraction)), nTest = Math.Max(1, (int)Math.Round(o.Count * o.TestFraction));
        var splitOf = new string[o.Count];
        for (int k = 0; k < o.Count; k++) splitOf[order[k]] = k < nVal ? "val" : k < nVal + nTest ? "test" : "train";

        var labels = o.ExtraClasses ? SyntheticEcho.ExtraLabels : SyntheticEcho.BinaryLabels;
        int total = o.Count + o.Videos;
        var videoMeta = new JsonArray();
        var items = Enumerable.Range(0, o.Count).Select(i =>
        {
            var (img, mask) = SyntheticEcho.Frame(o, i);
            return ($"case_{i:D5}", img, mask, splitOf[i]);
        });
        var manifest = new JsonObject
        {
            ["generator"] = new JsonObject
            {
                ["name"] = "sculpt-synthetic-echo-a4c", ["version"] = 2, ["seed"] = o.Seed, ["count"] = o.Count,
                ["size"] = o.Size, ["extra_classes"] = o.ExtraClasses, ["videos"] = o.Videos, ["video_frames"] = o.VideoFrames,
            },
            ["videos"] = videoMeta,
        };
        SegmentationDataset.WriteFolder(dir, items, o.Size, o.Size, labels, manifest, tmp =>
        {
            for (int v = 0; v < o.Videos; v++)
            {
                var video = SyntheticEcho.Video(o, v);
                var vdir = Path.Combine(tmp, "videos", video.Id);
                Directory.CreateDirectory(Path.Combine(vdir, "masks"));
                for (int t = 0; t < video.Frames.Count; t++)
                {
                    File.WriteAllBytes(Path.Combine(vdir, $"frame_{t:D4}.png"), ImageIO.EncodePng(SegmentationDataset.ToImage8(video.Frames[t], o.Size, o.Size)));
                    File.WriteAllBytes(Path.Combine(vdir, "masks", $"frame_{t:D4}.png"), ImageIO.EncodePng(new Image8(o.Size, o.Size, 1, video.Masks[t])));
                }
                videoMeta.Add(new JsonObject
                {
                    ["id"] = video.Id, ["frames"] = video.Frames.Count, ["fps"] = video.Fps,
                    ["ejection_fraction"] = Math.Round(video.EjectionFraction, 3),
                    ["end_diastole"] = new JsonArray(video.EndDiastole.Select(x => (JsonNode)x).ToArray()),
                    ["end_systole"] = new JsonArray(video.EndSystole.Select(x => (JsonNode)x).ToArray()),
                });
                progress?.Invoke(o.Count + v + 1, total);
            }
        }, k => progress?.Invoke(k, total));
    }
}

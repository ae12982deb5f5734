using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Sculpt.Clinical;
using Sculpt.Data;
using Sculpt.Deploy;
using Sculpt.Runtime;
using Sculpt.Common;

namespace Sculpt.Cli.Commands;

public static class SegmentCommand
{
    public const string Help = """
        sculpt segment --model M.sculpt|M.onnx --input IMAGE|DIR|VIDEO|X.npy --out DIR [--logits Y.npy] [--json]

        IMAGE (.png/.jpg/.jpeg) or DIR of images: masks/<name>.png (pixel = label) and overlays/<name>.png at the
        image's own size (resized to the model input and back). VIDEO: a folder of frame_*.png (as
        `sculpt synth --videos` writes), a multi-frame ultrasound DICOM file (uncompressed, RLE or JPEG baseline; LV
        volumes in mL from its ultrasound regions' pixel size) or a video file decoded with FFmpeg; besides masks and overlays it writes
        lv_area.csv (per-frame LV area, long axis, area-length volume), beats.csv (ED/ES frames, volumes, EF per
        beat), lv_area.png (area over time, ED/ES marked) and summary.json with the ejection fraction averaged
        over beats (single-plane area-length V = 8A²/(3πL)). X.npy: a raw NCHW float32 tensor, no
        preprocessing; --logits writes the raw outputs as .npy.

        example: sculpt segment --model small.onnx --input data/echo/videos/video_0000 --out seg/
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "json" });
        var modelPath = a.Required("model");
        var input = a.Required("input");
        var outDir = a.Get("out");
        var logitsPath = a.Get("logits");
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        if (!File.Exists(input) && !Directory.Exists(input)) throw new FileNotFoundException($"{input}: input not found");
        using var seg = Segmenter.Open(modelPath);

        if (input.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            var (data, shape) = Npy.Read(input);
            (float[] y, long[] yShape) result;
            try { result = seg.RunRaw(data, shape); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{input}: {e.Message}"); }
            if (logitsPath != null) AtomicFile.WriteAllBytes(logitsPath, Npy.Encode(result.y, result.yShape));
            if (json) Output.Json(new JsonObject { ["input"] = input, ["shape"] = new JsonArray(result.yShape.Select(v => (JsonNode)v).ToArray()), ["logits"] = logitsPath });
            else Console.WriteLine($"{input}: logits [{string.Join(", ", result.yShape)}]{(logitsPath != null ? $" written to {logitsPath}" : "")}");
            return 0;
        }
        if (outDir == null) throw new UsageException("missing required option --out");
        if (logitsPath != null) throw new UsageException("--logits applies to .npy inputs only");

        List<string> frames;
        List<Image8>? decoded = null;
        DicomCine? dicom = null;
        bool video;
        if (Directory.Exists(input))
        {
            var pngs = Directory.GetFiles(input).Where(IsImage).OrderBy(f => f, StringComparer.Ordinal).ToList();
            if (pngs.Count == 0) throw new InvalidDataException($"{input}: no .png or .jpg images");
            video = pngs.All(f => Path.GetFileName(f).StartsWith("frame_"));
            frames = pngs;
        }
        else if (IsImage(input)) { frames = new() { input }; video = false; }
        else if (IsDicom(input))
        {
            dicom = Dicom.Read(input);
            decoded = dicom.Frames;
            frames = Enumerable.Range(0, decoded.Count).Select(i => $"frame_{i:D5}").ToList();
            video = decoded.Count > 1;
        }
        else { decoded = Video.ReadFrames(input); frames = Enumerable.Range(0, decoded.Count).Select(i => $"frame_{i:D5}").ToList(); video = true; }

        var task = seg.Task;
        var images = decoded ?? frames.Select(f => ImageIO.Read(f)).ToList();
        var planes = images.Select(img => ToModelInput(img, task)).ToList();
        var masks = seg.Segment(planes);
        var summary = new JsonObject { ["model"] = modelPath, ["input"] = input, ["frames"] = frames.Count, ["video"] = video };
        // area–length volumes scale with the cube of the pixel size; for unequal x and y sizes their geometric mean
        // stands in for the long axis' direction (ultrasound regions are square in practice)
        double? mlPerPx3 = dicom?.Spacing is { } sp ? Math.Pow(Math.Sqrt(sp.XMm * sp.YMm), 3) / 1000 : null;
        if (dicom != null)
        {
            summary["frame_time_ms"] = Output.Num(dicom.FrameTimeMs ?? double.NaN);
            summary["pixel_spacing_mm"] = dicom.Spacing is { } s2 ? new JsonArray(s2.XMm, s2.YMm) : null;
        }
        AtomicFile.WriteDirectory(outDir, tmp =>
        {
            Directory.CreateDirectory(Path.Combine(tmp, "masks"));
            Directory.CreateDirectory(Path.Combine(tmp, "overlays"));
            var lvAreas = new List<double>(); var lengths = new List<double>(); var volumes = new List<double>();
            byte lv = (byte)Math.Max(1, task.Labels.IndexOf("lv"));
            for (int i = 0; i < frames.Count; i++)
            {
                var img = images[i];
                var full = ImageIO.ResizeNearest(masks[i], task.InputHeight, task.InputWidth, img.Height, img.Width);
                var name = Path.GetFileNameWithoutExtension(frames[i]);
                File.WriteAllBytes(Path.Combine(tmp, "masks", name + ".png"), ImageIO.EncodePng(new Image8(img.Width, img.Height, 1, full)));
                var grey = SegmentationDataset.ToPlanes(img, 1);
                File.WriteAllBytes(Path.Combine(tmp, "overlays", name + ".png"), ImageIO.EncodePng(Overlay.Draw(grey, full, img.Height, img.Width)));
                var (area, length) = AreaLength.Measure(full, img.Height, img.Width, lv);
                lvAreas.Add(area); lengths.Add(length); volumes.Add(AreaLength.Volume(area, length));
            }
            if (video)
            {
                var beats = CardiacCycle.Beats(volumes);
                var csv = new StringBuilder("frame,lv_area_px,long_axis_px,volume_px3\n");
                for (int i = 0; i < frames.Count; i++) csv.Append(CultureInfo.InvariantCulture, $"{i},{lvAreas[i]},{lengths[i]:0.###},{volumes[i]:0.#}\n");
                File.WriteAllText(Path.Combine(tmp, "lv_area.csv"), csv.ToString());
                var beatCsv = new StringBuilder("beat,ed_frame,es_frame,edv_px3,esv_px3,ef_percent,edv_ml,esv_ml\n");
                string Millilitres(double px3) => mlPerPx3 is { } f ? (px3 * f).ToString("0.###", CultureInfo.InvariantCulture) : "";
                for (int k = 0; k < beats.Count; k++)
                    beatCsv.Append(CultureInfo.InvariantCulture, $"{k + 1},{beats[k].EndDiastole},")
                        .Append(CultureInfo.InvariantCulture, $"{beats[k].EndSystole},{beats[k].Edv:0.#},")
                        .Append(CultureInfo.InvariantCulture, $"{beats[k].Esv:0.#},{beats[k].EjectionFraction:0.##},")
                        .Append($"{Millilitres(beats[k].Edv)},{Millilitres(beats[k].Esv)}\n");
                File.WriteAllText(Path.Combine(tmp, "beats.csv"), beatCsv.ToString());
                double ef = beats.Count > 0 ? beats.Average(b => b.EjectionFraction) : double.NaN;
                AreaPlot.Save(Path.Combine(tmp, "lv_area.png"), lvAreas, beats, "px", $"LV area — EF {(double.IsNaN(ef) ? "n/a" : ef.ToString("0.0", CultureInfo.InvariantCulture) + "%")} ({beats.Count} beat{(beats.Count == 1 ? "" : "s")})");
                summary["ejection_fraction"] = Output.Num(ef);
                summary["beats"] = new JsonArray(beats.Select(b => (JsonNode)new JsonObject
                {
                    ["ed"] = b.EndDiastole, ["es"] = b.EndSystole, ["ef"] = b.EjectionFraction,
                    ["edv_ml"] = mlPerPx3 is { } f ? b.Edv * f : null, ["esv_ml"] = mlPerPx3 is { } g ? b.Esv * g : null,
                }).ToArray());
            }
            File.WriteAllText(Path.Combine(tmp, "summary.json"), summary.ToJsonString(Output.Indented));
        });
        if (json) Output.Json(summary);
        else
        {
            Console.WriteLine($"segmented {frames.Count} {(video ? "video frames" : "image(s)")} → {outDir}/masks, {outDir}/overlays");
            if (video)
            {
                var beats = summary["beats"]!.AsArray();
                Console.Write(Output.Table(new[] { "beat", "ED frame", "ES frame", "EF %" }, beats.Select((b, k) => new[] { (k + 1).ToString(), b!["ed"]!.ToString(), b["es"]!.ToString(), Output.F(b["ef"]!.GetValue<double>(), "0.0") })));
                Console.WriteLine($"ejection fraction (area-length, mean over beats): {(summary["ejection_fraction"] is { } e ? e.GetValue<double>().ToString("0.0", CultureInfo.InvariantCulture) + "%" : "n/a (no complete beat)")}; plot {outDir}/lv_area.png");
            }
        }
        return 0;
    }

    private static bool IsDicom(string path) => Dicom.IsPart10(Common.InputFile.ReadHead(path, "input", 132));

    private static bool IsImage(string path) => path.EndsWith(".png", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase);

    private static float[] ToModelInput(Image8 img, TaskInfo task) =>
        ImageIO.ResizeBilinear(SegmentationDataset.ToPlanes(img, task.InputChannels), task.InputChannels, img.Height, img.Width, task.InputHeight, task.InputWidth);
}

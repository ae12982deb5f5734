using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Clinical;
using Sculpt.Common;
using Sculpt.Data;
using Sculpt.Runtime;

namespace Sculpt.Deploy;

/// <summary>
/// One input of <c>sculpt segment</c> decoded: an image, a folder of images (a cine loop when they are all
/// <c>frame_*</c>), a multi-frame DICOM file or a video file.
/// </summary>
public sealed record StudyFrames(List<string> Names, List<Image8> Images, bool Video, DicomCine? Dicom)
{
    public static StudyFrames Read(string input)
    {
        if (Directory.Exists(input))
        {
            var files = Directory.GetFiles(input).Where(IsImage).OrderBy(f => f, StringComparer.Ordinal).ToList();
            if (files.Count == 0) throw new InvalidDataException($"{input}: no .png or .jpg images");
            bool video = files.All(f => Path.GetFileName(f).StartsWith("frame_"));
            return new(files.Select(f => Path.GetFileNameWithoutExtension(f)).ToList(), files.Select(f => ImageIO.Read(f)).ToList(), video, null);
        }
        if (IsImage(input)) return new([Path.GetFileNameWithoutExtension(input)], [ImageIO.Read(input)], false, null);
        // a file named as DICOM is read as DICOM, so that a damaged one is refused as DICOM, not as an unknown video
        if (HasDicomExtension(input) || IsDicom(input))
        {
            var dicom = Data.Dicom.Read(input);
            return new(FrameNames(dicom.Frames.Count), dicom.Frames, dicom.Frames.Count > 1, dicom);
        }
        var frames = Data.Video.ReadFrames(input);
        return new(FrameNames(frames.Count), frames, true, null);
    }

    public static bool IsImage(string path) =>
        path.EndsWith(".png", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase)
        || path.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase);

    public static bool HasDicomExtension(string path) =>
        path.EndsWith(".dcm", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".dicom", StringComparison.OrdinalIgnoreCase);

    public static bool IsDicom(string path) => Data.Dicom.IsPart10(InputFile.ReadHead(path, "input", 132));

    private static List<string> FrameNames(int count) => Enumerable.Range(0, count).Select(i => $"frame_{i:D5}").ToList();
}

/// <summary>
/// The cine-loop pipeline behind <c>sculpt segment</c>: masks and overlays per frame, LV area and area–length
/// volume per frame, ED/ES per beat and the ejection fraction; LV volumes in mL where a DICOM file gives the
/// physical pixel size. One implementation for a single input and for every study of an archive.
/// </summary>
public static class CineStudy
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Segments <paramref name="input"/> and writes the study folder <paramref name="outDir"/> as a whole (a
    /// temporary folder renamed at the end). <paramref name="images"/> false leaves out the per-frame mask and
    /// overlay PNGs, which dominate the time of an archive run. Returns summary.json's content.
    /// </summary>
    public static JsonObject Segment(Segmenter seg, string modelPath, string input, string outDir, bool images = true)
    {
        var study = StudyFrames.Read(input);
        var task = seg.Task;
        var masks = seg.Segment(study.Images.Select(img => ToModelInput(img, task)).ToList());
        var frames = study.Names;
        var summary = new JsonObject { ["model"] = modelPath, ["input"] = input, ["frames"] = frames.Count, ["video"] = study.Video };
        var dicom = study.Dicom;
        // area–length volumes scale with the cube of the pixel size; for unequal x and y sizes their geometric mean
        // stands in for the long axis' direction (ultrasound regions are square in practice)
        double? mlPerPx3 = dicom?.Spacing is { } sp ? Math.Pow(Math.Sqrt(sp.XMm * sp.YMm), 3) / 1000 : null;
        if (dicom != null)
        {
            summary["frame_time_ms"] = dicom.FrameTimeMs is { } ft && double.IsFinite(ft) ? ft : null;
            summary["pixel_spacing_mm"] = dicom.Spacing is { } s2 ? new JsonArray(s2.XMm, s2.YMm) : null;
        }
        AtomicFile.WriteDirectory(outDir, tmp =>
        {
            if (images)
            {
                Directory.CreateDirectory(Path.Combine(tmp, "masks"));
                Directory.CreateDirectory(Path.Combine(tmp, "overlays"));
            }
            var lvAreas = new List<double>(); var lengths = new List<double>(); var volumes = new List<double>();
            byte lv = (byte)Math.Max(1, task.Labels.IndexOf("lv"));
            for (int i = 0; i < frames.Count; i++)
            {
                var img = study.Images[i];
                var full = ImageIO.ResizeNearest(masks[i], task.InputHeight, task.InputWidth, img.Height, img.Width);
                if (images)
                {
                    File.WriteAllBytes(Path.Combine(tmp, "masks", frames[i] + ".png"), ImageIO.EncodePng(new Image8(img.Width, img.Height, 1, full)));
                    var grey = SegmentationDataset.ToPlanes(img, 1);
                    File.WriteAllBytes(Path.Combine(tmp, "overlays", frames[i] + ".png"), ImageIO.EncodePng(Overlay.Draw(grey, full, img.Height, img.Width)));
                }
                var (area, length) = AreaLength.Measure(full, img.Height, img.Width, lv);
                lvAreas.Add(area); lengths.Add(length); volumes.Add(AreaLength.Volume(area, length));
            }
            summary["frames_without_lv"] = lvAreas.Count(a => a == 0);
            if (study.Video) WriteCycle(tmp, summary, lvAreas, lengths, volumes, mlPerPx3);
            File.WriteAllText(Path.Combine(tmp, "summary.json"), summary.ToJsonString(Indented));
        });
        return summary;
    }

    private static void WriteCycle(string dir, JsonObject summary, List<double> lvAreas, List<double> lengths, List<double> volumes, double? mlPerPx3)
    {
        var beats = CardiacCycle.Beats(volumes);
        var csv = new StringBuilder("frame,lv_area_px,long_axis_px,volume_px3\n");
        for (int i = 0; i < volumes.Count; i++) csv.Append(CultureInfo.InvariantCulture, $"{i},{lvAreas[i]},{lengths[i]:0.###},{volumes[i]:0.#}\n");
        File.WriteAllText(Path.Combine(dir, "lv_area.csv"), csv.ToString());
        var beatCsv = new StringBuilder("beat,ed_frame,es_frame,edv_px3,esv_px3,ef_percent,edv_ml,esv_ml\n");
        string Millilitres(double px3) => mlPerPx3 is { } f ? (px3 * f).ToString("0.###", CultureInfo.InvariantCulture) : "";
        for (int k = 0; k < beats.Count; k++)
            beatCsv.Append(CultureInfo.InvariantCulture, $"{k + 1},{beats[k].EndDiastole},")
                .Append(CultureInfo.InvariantCulture, $"{beats[k].EndSystole},{beats[k].Edv:0.#},")
                .Append(CultureInfo.InvariantCulture, $"{beats[k].Esv:0.#},{beats[k].EjectionFraction:0.##},")
                .Append(CultureInfo.InvariantCulture, $"{Millilitres(beats[k].Edv)},{Millilitres(beats[k].Esv)}\n");
        File.WriteAllText(Path.Combine(dir, "beats.csv"), beatCsv.ToString());
        double ef = beats.Count > 0 ? beats.Average(b => b.EjectionFraction) : double.NaN;
        string efText = double.IsNaN(ef) ? "n/a" : ef.ToString("0.0", CultureInfo.InvariantCulture) + "%";
        AreaPlot.Save(Path.Combine(dir, "lv_area.png"), lvAreas, beats, "px", $"LV area — EF {efText} ({beats.Count} beat{(beats.Count == 1 ? "" : "s")})");
        summary["ejection_fraction"] = double.IsFinite(ef) ? ef : null;
        // strict JSON: an undefined EF (no LV found at end-diastole) is null, not NaN
        static JsonNode? Finite(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
        summary["beats"] = new JsonArray(beats.Select(b => (JsonNode)new JsonObject
        {
            ["ed"] = b.EndDiastole, ["es"] = b.EndSystole, ["ef"] = Finite(b.EjectionFraction),
            ["edv_px3"] = Finite(b.Edv), ["esv_px3"] = Finite(b.Esv),
            ["edv_ml"] = mlPerPx3 is { } f ? Finite(b.Edv * f) : null, ["esv_ml"] = mlPerPx3 is { } g ? Finite(b.Esv * g) : null,
        }).ToArray());
    }

    private static float[] ToModelInput(Image8 img, TaskInfo task) =>
        ImageIO.ResizeBilinear(SegmentationDataset.ToPlanes(img, task.InputChannels), task.InputChannels, img.Height, img.Width,
            task.InputHeight, task.InputWidth);
}

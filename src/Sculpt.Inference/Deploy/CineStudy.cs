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
            // measured from the headers first, so that a folder too large for one study is refused before it is decoded
            long decoded = 0;
            foreach (var f in files)
                if ((decoded += ImageIO.DecodedBytes(f)) > Data.Video.MaxDecodedBytes)
                    throw new InvalidDataException($"{input}: its images decode to more than {Data.Video.MaxDecodedBytes:N0} bytes, "
                        + "the limit for one study (as for a video); segment fewer at a time");
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

/// <summary>Draws the LV area curve of a study (the CLI's plot; the library itself carries no plotting library).</summary>
public delegate void AreaPlotWriter(string pngPath, IReadOnlyList<double> lvArea, IReadOnlyList<Beat> beats, string unit, string title);

/// <summary>
/// The study folder behind <c>sculpt segment</c>: masks and overlays per frame, LV area and area–length volume per
/// frame (lv_area.csv), ED/ES per beat and the ejection fraction (beats.csv, summary.json); LV volumes in mL where
/// a DICOM file gives the physical pixel size. One implementation for a single input and for every study of an
/// archive.
/// </summary>
public static class CineStudy
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Segments <paramref name="input"/> and writes the study folder <paramref name="outDir"/> as a whole (a
    /// temporary folder renamed at the end). <paramref name="images"/> false leaves out the per-frame mask and
    /// overlay PNGs, which dominate the time of an archive run; <paramref name="plot"/> draws lv_area.png;
    /// <paramref name="progress"/> hears (frames segmented, frames in all) every few frames, since a long loop
    /// through a large model takes minutes. Returns summary.json's content.
    /// </summary>
    public static JsonObject Segment(Segmenter seg, string modelPath, string input, string outDir, bool images = true,
        AreaPlotWriter? plot = null, Action<int, int>? progress = null)
    {
        var study = StudyFrames.Read(input);
        var masks = new List<Image8>(study.Images.Count);
        foreach (var chunk in study.Images.Chunk(32))
        {
            masks.AddRange(seg.SegmentImages(chunk));
            progress?.Invoke(masks.Count, study.Images.Count);
        }
        var analysis = CineAnalysis.Measure(masks, seg.Lv, study.Dicom?.Spacing, cycle: study.Video);
        var frames = study.Names;
        var summary = new JsonObject { ["model"] = modelPath, ["input"] = input, ["frames"] = frames.Count, ["video"] = study.Video };
        if (study.Dicom is { } dicom)
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
                for (int i = 0; i < frames.Count; i++)
                {
                    var img = study.Images[i];
                    var mask = analysis.Masks[i];
                    File.WriteAllBytes(Path.Combine(tmp, "masks", frames[i] + ".png"), ImageIO.EncodePng(mask));
                    var grey = ImageIO.ToPlanes(img, 1);
                    File.WriteAllBytes(Path.Combine(tmp, "overlays", frames[i] + ".png"), ImageIO.EncodePng(Overlay.Draw(grey, mask.Pixels, img.Height, img.Width)));
                }
            }
            summary["frames_without_lv"] = analysis.FramesWithoutLv;
            if (study.Video) WriteCycle(tmp, summary, analysis, plot);
            File.WriteAllText(Path.Combine(tmp, "summary.json"), summary.ToJsonString(Indented));
        });
        return summary;
    }

    private static void WriteCycle(string dir, JsonObject summary, CineAnalysis analysis, AreaPlotWriter? plot)
    {
        var beats = analysis.Beats;
        var csv = new StringBuilder("frame,lv_area_px,long_axis_px,volume_px3\n");
        for (int i = 0; i < analysis.VolumePx3.Count; i++)
            csv.Append(CultureInfo.InvariantCulture, $"{i},{analysis.LvAreaPx[i]},{analysis.LongAxisPx[i]:0.###},{analysis.VolumePx3[i]:0.#}\n");
        File.WriteAllText(Path.Combine(dir, "lv_area.csv"), csv.ToString());
        var beatCsv = new StringBuilder("beat,ed_frame,es_frame,edv_px3,esv_px3,ef_percent,edv_ml,esv_ml\n");
        string Millilitres(double px3) => analysis.Millilitres(px3) is { } ml ? ml.ToString("0.###", CultureInfo.InvariantCulture) : "";
        for (int k = 0; k < beats.Count; k++)
            beatCsv.Append(CultureInfo.InvariantCulture, $"{k + 1},{beats[k].EndDiastole},")
                .Append(CultureInfo.InvariantCulture, $"{beats[k].EndSystole},{beats[k].Edv:0.#},")
                .Append(CultureInfo.InvariantCulture, $"{beats[k].Esv:0.#},{beats[k].EjectionFraction:0.##},")
                .Append(CultureInfo.InvariantCulture, $"{Millilitres(beats[k].Edv)},{Millilitres(beats[k].Esv)}\n");
        File.WriteAllText(Path.Combine(dir, "beats.csv"), beatCsv.ToString());
        var ef = analysis.EjectionFraction;
        string efText = ef is { } e ? e.ToString("0.0", CultureInfo.InvariantCulture) + "%" : "n/a";
        plot?.Invoke(Path.Combine(dir, "lv_area.png"), analysis.LvAreaPx, beats, "px", $"LV area — EF {efText} ({beats.Count} beat{(beats.Count == 1 ? "" : "s")})");
        summary["ejection_fraction"] = ef;
        // strict JSON: an undefined EF (no LV found at end-diastole) is null, not NaN
        static JsonNode? Finite(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
        summary["beats"] = new JsonArray(beats.Select(b => (JsonNode)new JsonObject
        {
            ["ed"] = b.EndDiastole, ["es"] = b.EndSystole, ["ef"] = Finite(b.EjectionFraction),
            ["edv_px3"] = Finite(b.Edv), ["esv_px3"] = Finite(b.Esv),
            ["edv_ml"] = analysis.Millilitres(b.Edv), ["esv_ml"] = analysis.Millilitres(b.Esv),
        }).ToArray());
    }
}

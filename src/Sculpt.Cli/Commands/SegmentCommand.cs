using System.Globalization;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Deploy;
using Sculpt.Runtime;
using Sculpt.Common;

namespace Sculpt.Cli.Commands;

public static class SegmentCommand
{
    public const string Help = """
        sculpt segment --model M.sculpt|M.onnx --input IMAGE|DIR|VIDEO|X.npy --out DIR [--logits Y.npy] [--engine E] [--input-size H,W]
                       [--json]
        sculpt segment --model M --input ARCHIVE --out DIR [--shard i/N | --shard N] [--no-images] [--retry-failed] [--engine E]
                       [--input-size H,W] [--json]
        sculpt segment --merge DIR [--json]

        IMAGE (.png/.jpg/.jpeg) or DIR of images: masks/<name>.png (pixel = label) and overlays/<name>.png at the
        image's own size (resized to the model input and back). VIDEO: a folder of frame_*.png (as
        `sculpt synth --videos` writes), a multi-frame ultrasound DICOM file (uncompressed, RLE or JPEG baseline; LV
        volumes in mL from its ultrasound regions' pixel size) or a video file decoded with FFmpeg; besides masks and overlays it writes
        lv_area.csv (per-frame LV area, long axis, area-length volume), beats.csv (ED/ES frames, volumes, EF per
        beat), lv_area.png (area over time, ED/ES marked) and summary.json with the ejection fraction averaged
        over beats (single-plane area-length V = 8A²/(3πL)). X.npy: a raw NCHW float32 tensor, no
        preprocessing; --logits writes the raw outputs as .npy.

        --engine auto|sculpt|ort: the executor. auto (default) times Sculpt's own engine and ONNX Runtime on the model
        at load, alternating, and keeps the faster (ONNX Runtime where Sculpt's engine cannot plan the graph); the two
        agree to 1e-4 in the logits, so a pixel whose logit is that close to the threshold can differ between them.
        sculpt needs no native library. Give it explicitly where runs must be byte-identical (shards, resumes).
        --input-size H,W: the size to run an .onnx file at that leaves height and width dynamic.

        ARCHIVE: a folder without images of its own. Every cine loop below it is a study — a DICOM file (.dcm,
        .dicom, or no extension and a DICOM header), a video file, or a folder of images — and is written to
        DIR/studies/<its path>/ as above, plus one row of DIR/summary.csv (study, status, frames, beats, ED/ES
        frames, mean EDV/ESV in mL and px³, EF %, quality flags, error). Resumable: a study already done is
        skipped; a study that fails is recorded (DIR/errors/, status "failed") and the run goes on; --retry-failed
        tries those again. --no-images leaves out the per-frame mask and overlay PNGs. --shard i/N processes the
        studies whose path hashes to shard i (0-based) and writes DIR/summary.shard-i-of-N.csv; --shard N takes i
        from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or a Slurm job array (SLURM_ARRAY_TASK_ID, less
        SLURM_ARRAY_TASK_MIN). --merge DIR joins every shard's table into DIR/summary.csv, equal to one run's
        (deploy/k8s/ and deploy/slurm/ run exactly this).

        example: sculpt segment --model small.onnx --input data/echo/videos/video_0000 --out seg/
        example: sculpt segment --model small.onnx --input /archive/echo --out /results/echo --shard 3/8 --no-images
        """;

    public static int Run(string[] argv)
    {
        var a = new Args(argv, new HashSet<string> { "json", "no-images", "retry-failed" });
        if (a.Get("merge") is { } mergeDir) return Merge(a, mergeDir);
        var modelPath = a.Required("model");
        var input = a.Required("input");
        var outDir = a.Get("out");
        var logitsPath = a.Get("logits");
        bool json = a.Flag("json");
        bool archive = Archive.IsArchive(input);
        var shardText = a.Get("shard");
        var engine = a.Get("engine", "auto") switch
        {
            "auto" => EngineChoice.Auto, "sculpt" => EngineChoice.Sculpt, "ort" => EngineChoice.Ort,
            var e => throw new UsageException($"--engine must be auto, sculpt or ort, got '{e}'"),
        };
        bool noImages = a.Flag("no-images"), retryFailed = a.Flag("retry-failed");
        var inputSize = a.InputSize(onnx: modelPath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase));
        a.EnsureAllUsed();
        if (!File.Exists(input) && !Directory.Exists(input)) throw new FileNotFoundException($"{input}: input not found");
        if (!archive && (shardText != null || noImages || retryFailed))
            throw new UsageException("--shard, --no-images and --retry-failed apply to an archive (a folder of studies)");
        Shard shard = Shard.Whole;
        if (shardText != null)
        {
            try { shard = Shard.Parse(shardText, Environment.GetEnvironmentVariable); }
            catch (ArgumentException e) { throw new UsageException(e.Message); }
        }
        if (archive && outDir != null) CheckOutsideArchive(input, outDir);
        using var seg = Segmenter.Open(modelPath, new SegmenterOptions { Engine = engine, InputSize = inputSize });
        if (archive)
        {
            if (outDir == null) throw new UsageException("missing required option --out");
            return RunArchive(seg, modelPath, input, outDir, shard, !noImages, retryFailed, json);
        }

        if (input.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            var (data, shape) = Npy.Read(input);
            (float[] y, long[] yShape) result;
            try { result = seg.RunRaw(data, shape); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{input}: {e.Message}"); }
            if (logitsPath != null) AtomicFile.WriteAllBytes(logitsPath, Npy.Encode(result.y, result.yShape));
            if (json)
                Output.Json(new JsonObject
                {
                    ["input"] = input, ["shape"] = new JsonArray(result.yShape.Select(v => (JsonNode)v).ToArray()), ["logits"] = logitsPath,
                    ["engine"] = seg.EngineName,
                });
            else Console.WriteLine($"{input}: logits [{string.Join(", ", result.yShape)}]{(logitsPath != null ? $" written to {logitsPath}" : "")}");
            return 0;
        }
        if (outDir == null) throw new UsageException("missing required option --out");
        if (logitsPath != null) throw new UsageException("--logits applies to .npy inputs only");

        var line = new ProgressLine();
        var summary = CineStudy.Segment(seg, modelPath, input, outDir, plot: Clinical.AreaPlot.Save,
            progress: line.Counter($"segment ({seg.EngineName})", "frames"));
        line.Done();
        bool video = summary["video"]!.GetValue<bool>();
        int frames = summary["frames"]!.GetValue<int>();
        if (json)
        {
            var printed = (JsonObject)summary.DeepClone();
            printed["engine"] = seg.EngineName;
            Output.Json(printed);
        }
        else
        {
            Console.WriteLine($"segmented {frames} {(video ? "video frames" : "image(s)")} → {outDir}/masks, {outDir}/overlays");
            if (video)
            {
                var beats = summary["beats"]!.AsArray();
                Console.Write(Output.Table(new[] { "beat", "ED frame", "ES frame", "EF %" }, beats.Select((b, k) => new[] { (k + 1).ToString(), b!["ed"]!.ToString(), b["es"]!.ToString(), (b["ef"] is { } ef ? Output.F(ef.GetValue<double>(), "0.0") : "n/a") })));
                Console.WriteLine($"ejection fraction (area-length, mean over beats): {(summary["ejection_fraction"] is { } e ? e.GetValue<double>().ToString("0.0", CultureInfo.InvariantCulture) + "%" : "n/a (no complete beat)")}; plot {outDir}/lv_area.png");
            }
        }
        return 0;
    }

    private static void CheckOutsideArchive(string archive, string outDir)
    {
        string root = Path.GetFullPath(archive).TrimEnd('/') + "/", target = Path.GetFullPath(outDir).TrimEnd('/') + "/";
        if (target.StartsWith(root, StringComparison.Ordinal) || root.StartsWith(target, StringComparison.Ordinal))
            throw new UsageException($"--out {outDir} must lie outside the archive {archive} (and not contain it)");
    }

    private static int RunArchive(Segmenter seg, string modelPath, string input, string outDir, Shard shard, bool images, bool retryFailed, bool json)
    {
        var line = new ProgressLine();
        var result = Archive.Run(seg, modelPath, input, outDir, shard, images, retryFailed, p => line.Update(
            $"study {p.Position}/{p.Total} ({p.Processed} done, {p.Skipped} skipped, {p.Failed} failed) "
            + $"{ProgressLine.Bar((double)p.Position / Math.Max(1, p.Total), 12)} {p.StudiesPerSecond:0.00} studies/s ETA {Output.Duration(p.Eta)} {p.Study}",
            p.Position == p.Total), Clinical.AreaPlot.Save);
        line.Done();
        if (result.Studies == 0 && shard.Count == 1) throw new InvalidDataException($"{input}: no studies (DICOM files, videos or image folders) found");
        if (json)
        {
            Output.Json(new JsonObject
            {
                ["archive"] = input, ["out"] = outDir, ["shard"] = shard.ToString(), ["engine"] = seg.EngineName, ["studies"] = result.Studies, ["processed"] = result.Processed,
                ["skipped"] = result.Skipped, ["failed_now"] = result.FailedNow, ["failed"] = result.Failed, ["ignored_files"] = result.IgnoredFiles, ["csv"] = result.Csv,
                ["seconds"] = Math.Round(result.Seconds, 2), ["studies_per_second"] = Math.Round(result.StudiesPerSecond, 3),
            });
        }
        else
        {
            Console.WriteLine($"{result.Studies} studies{(shard.Count > 1 ? $" in shard {shard}" : "")}: {result.Processed} segmented, "
                + $"{result.Skipped} already done, {result.Failed} failed (see the table's error column); {result.IgnoredFiles} other files ignored");
            Console.WriteLine($"{result.StudiesPerSecond:0.00} studies/s; table {result.Csv}");
        }
        return 0;
    }

    private static int Merge(Args a, string dir)
    {
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        var (csv, shards, rows) = Archive.Merge(dir);
        if (json) Output.Json(new JsonObject { ["csv"] = csv, ["shards"] = shards, ["studies"] = rows });
        else Console.WriteLine($"merged {shards} shard tables, {rows} studies → {csv}");
        return 0;
    }
}

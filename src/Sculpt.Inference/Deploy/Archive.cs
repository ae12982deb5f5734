using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Sculpt.Common;

namespace Sculpt.Deploy;

/// <summary>
/// One part of an archive: shard <see cref="Index"/> of <see cref="Count"/>. A study belongs to the shard its
/// path hashes to (SHA-256, so every machine agrees and a study keeps its shard when the archive grows).
/// </summary>
public sealed record Shard(int Index, int Count)
{
    public static readonly Shard Whole = new(0, 1);

    /// <summary>
    /// "i/N", or "N" with the index from the scheduler that started this process: a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX) or a Slurm job array (SLURM_ARRAY_TASK_ID, counted from SLURM_ARRAY_TASK_MIN).
    /// </summary>
    public static Shard Parse(string text, Func<string, string?> environment)
    {
        var parts = text.Split('/');
        if (parts.Length > 2 || !int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count < 1 || count > 100_000)
            throw new ArgumentException($"--shard must be i/N or N with 1 ≤ N ≤ 100000, got '{Messages.Quote(text)}'");
        int index;
        if (parts.Length == 2)
        {
            if (!int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out index))
                throw new ArgumentException($"--shard: the index in '{Messages.Quote(text)}' is not a number");
        }
        else if (environment("JOB_COMPLETION_INDEX") is { } k8s)
            index = EnvironmentIndex("JOB_COMPLETION_INDEX", k8s, 0);
        else if (environment("SLURM_ARRAY_TASK_ID") is { } slurm)
            index = EnvironmentIndex("SLURM_ARRAY_TASK_ID", slurm, 0)
                - (environment("SLURM_ARRAY_TASK_MIN") is { } min ? EnvironmentIndex("SLURM_ARRAY_TASK_MIN", min, 0) : 0);
        else throw new ArgumentException($"--shard {count}: no shard index given (i/{count}) and neither JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID is set");
        if (index < 0 || index >= count) throw new ArgumentException($"--shard: index {index} is outside 0..{count - 1}");
        return new Shard(index, count);
    }

    private static int EnvironmentIndex(string name, string value, int fallback) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v
            : throw new ArgumentException($"{name}='{Messages.Quote(value)}' is not a non-negative integer");

    public bool Owns(string study)
    {
        if (Count == 1) return true;
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(study));
        return (int)(BitConverter.ToUInt64(hash, 0) % (ulong)Count) == Index;
    }

    /// <summary>The summary table this shard writes; <see cref="Archive.Merge"/> joins them into summary.csv.</summary>
    public string CsvName => Count == 1 ? Archive.SummaryCsv : $"summary.shard-{Index}-of-{Count}.csv";

    public override string ToString() => $"{Index}/{Count}";
}

public sealed record ArchiveProgress(int Position, int Total, int Processed, int Skipped, int Failed, double StudiesPerSecond, TimeSpan Eta, string Study);

/// <summary>
/// <see cref="Processed"/> + <see cref="Skipped"/> + <see cref="FailedNow"/> = <see cref="Studies"/>;
/// <see cref="Failed"/> counts the failed rows of the table, those recorded by earlier runs included.
/// </summary>
public sealed record ArchiveResult(int Studies, int Processed, int Skipped, int FailedNow, int Failed, int IgnoredFiles, string Csv, double Seconds)
{
    public double StudiesPerSecond => Processed / Math.Max(1e-9, Seconds);
}

/// <summary>
/// <c>sculpt segment</c> over a whole archive: every cine loop below a folder (DICOM files, video files, folders of
/// frame_*.png) is one study, written to OUT/studies/&lt;its path&gt;/ as a single input would be, and one row of
/// the summary table. Resumable: a study whose folder is complete is skipped, a study that fails is recorded in
/// OUT/errors/ and in the table and does not stop the run. The table is rebuilt from the study folders at the end,
/// so a resumed run's table equals an uninterrupted one's.
/// </summary>
public static class Archive
{
    public const string SummaryCsv = "summary.csv";
    public const string Header = "study,status,frames,beats,ed_frames,es_frames,edv_ml,esv_ml,edv_px3,esv_px3,ef_percent,flags,error";
    /// <summary>Folders deeper than this below the archive root are not searched (and symbolic links never followed).</summary>
    public const int MaxDepth = 32;

    private static readonly string[] VideoExtensions = [".avi", ".mp4", ".mov", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg", ".m4v"];

    /// <summary>Whether <c>segment --input DIR</c> means an archive: a folder without images of its own.</summary>
    public static bool IsArchive(string dir) => Directory.Exists(dir) && !Directory.EnumerateFiles(dir).Any(StudyFrames.IsImage);

    /// <summary>The studies below <paramref name="root"/> as paths relative to it ('/'-separated, ordinal order), and how many files were not studies.</summary>
    public static (List<string> Studies, int Ignored) Find(string root)
    {
        var studies = new List<string>();
        int ignored = 0;
        var pending = new Stack<(string Dir, int Depth)>();
        pending.Push((root, 0));
        while (pending.Count > 0)
        {
            var (dir, depth) = pending.Pop();
            var files = Directory.GetFiles(dir);
            if (dir != root && files.Any(StudyFrames.IsImage)) { studies.Add(Relative(root, dir)); continue; }
            foreach (var f in files)
            {
                if (IsStudyFile(f)) studies.Add(Relative(root, f)); else ignored++;
            }
            if (depth >= MaxDepth) continue;
            foreach (var sub in Directory.GetDirectories(dir))
                if (!new DirectoryInfo(sub).Attributes.HasFlag(FileAttributes.ReparsePoint)) pending.Push((sub, depth + 1));
        }
        studies.Sort(StringComparer.Ordinal);
        return (studies, ignored);
    }

    private static string Relative(string root, string path) => Path.GetRelativePath(root, path).Replace('\\', '/');

    /// <summary>
    /// A DICOM or video file by its name, or an extension-less file that starts like DICOM Part 10 (PACS exports
    /// rarely have extensions). A damaged .dcm is still a study, so that its failure is recorded, not skipped.
    /// </summary>
    private static bool IsStudyFile(string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (StudyFrames.HasDicomExtension(path) || VideoExtensions.Contains(ext)) return true;
        if (ext != "" || Path.GetFileName(path).Equals("DICOMDIR", StringComparison.OrdinalIgnoreCase)) return false;
        try { return StudyFrames.IsDicom(path); }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { return false; }
    }

    public static string StudyFolder(string outDir, string study) => Path.Combine(outDir, "studies", study);
    private static string ErrorFile(string outDir, string study) => Path.Combine(outDir, "errors", study + ".txt");

    public static ArchiveResult Run(Segmenter seg, string modelPath, string root, string outDir, Shard shard, bool images, bool retryFailed,
        Action<ArchiveProgress>? progress = null, AreaPlotWriter? plot = null)
    {
        var (all, ignored) = Find(root);
        var mine = all.Where(shard.Owns).ToList();
        Directory.CreateDirectory(outDir);
        RemoveInterruptedWrites(Path.Combine(outDir, "studies"), shard);
        int processed = 0, skipped = 0, failed = 0;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < mine.Count; i++)
        {
            var study = mine[i];
            var folder = StudyFolder(outDir, study);
            var error = ErrorFile(outDir, study);
            double rate = processed / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            progress?.Invoke(new ArchiveProgress(i, mine.Count, processed, skipped, failed, rate,
                TimeSpan.FromSeconds(rate > 0 ? (mine.Count - i) / rate : 0), study));
            if (File.Exists(Path.Combine(folder, "summary.json")) || (File.Exists(error) && !retryFailed)) { skipped++; continue; }
            if (File.Exists(error)) File.Delete(error);
            if (Directory.Exists(folder)) Directory.Delete(folder, true); // no summary.json: not this tool's complete output
            Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
            try
            {
                CineStudy.Segment(seg, modelPath, Path.Combine(root, study), folder, images, plot);
                processed++;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                failed++;
                Directory.CreateDirectory(Path.GetDirectoryName(error)!);
                AtomicFile.WriteAllText(error, Messages.OneLine(e is InvalidDataException or FileNotFoundException or IOException or Data.DatasetException
                    ? e.Message : $"{Path.Combine(root, study)}: internal error: {e.GetType().Name}: {e.Message}"));
            }
        }
        progress?.Invoke(new ArchiveProgress(mine.Count, mine.Count, processed, skipped, failed, processed / Math.Max(1e-9, clock.Elapsed.TotalSeconds), TimeSpan.Zero, ""));
        var csv = Path.Combine(outDir, shard.CsvName);
        var table = new StringBuilder(Header).Append('\n');
        int failedInTable = 0;
        foreach (var study in mine)
        {
            var (row, rowFailed) = Row(outDir, study);
            if (rowFailed) failedInTable++;
            table.Append(row).Append('\n');
        }
        AtomicFile.WriteAllText(csv, table.ToString());
        return new ArchiveResult(mine.Count, processed, skipped, failed, failedInTable, ignored, csv, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// A temporary study folder left by a killed run (AtomicFile.WriteDirectory's name.tmp-GUID) is removed — only of
    /// this shard's studies: the other shards may be writing theirs into the same folder right now.
    /// </summary>
    private static void RemoveInterruptedWrites(string studies, Shard shard)
    {
        if (!Directory.Exists(studies)) return;
        foreach (var d in Directory.EnumerateDirectories(studies, "*.tmp-*", SearchOption.AllDirectories).ToList())
        {
            var m = System.Text.RegularExpressions.Regex.Match(Relative(studies, d), @"^(.+)\.tmp-[0-9a-f]{32}$");
            if (m.Success && shard.Owns(m.Groups[1].Value) && Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    private static (string Line, bool Failed) Row(string outDir, string study)
    {
        var error = ErrorFile(outDir, study);
        if (File.Exists(error)) return (Csv([study, "failed", "", "", "", "", "", "", "", "", "", "", File.ReadAllText(error).Trim()]), true);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(StudyFolder(outDir, study), "summary.json")))!.AsObject();
        bool video = summary["video"]!.GetValue<bool>();
        int frames = summary["frames"]!.GetValue<int>();
        var beats = summary["beats"]?.AsArray().Select(b => b!.AsObject()).ToList() ?? [];
        string Mean(string key) => beats.Count == 0 || beats.Any(b => b[key] is null) ? "" : F(beats.Average(b => b[key]!.GetValue<double>()));
        string Frames(string key) => string.Join(' ', beats.Select(b => b[key]!.ToString()));
        double? ef = summary["ejection_fraction"]?.GetValue<double>();
        var flags = new List<string>();
        if (!video) flags.Add("not_a_cine");
        else if (beats.Count == 0) flags.Add("no_complete_beat");
        if (video && summary["pixel_spacing_mm"] is null) flags.Add("no_pixel_spacing");
        if (summary["frames_without_lv"]?.GetValue<int>() is > 0 and var missing) flags.Add($"lv_missing_in_{missing}_frames");
        // outside what a left ventricle does: a segmentation failure more likely than physiology
        if (ef is < 10 or > 90) flags.Add("ef_implausible");
        return (Csv([study, "ok", frames.ToString(CultureInfo.InvariantCulture), beats.Count.ToString(CultureInfo.InvariantCulture),
            Frames("ed"), Frames("es"),
            Mean("edv_ml"), Mean("esv_ml"), Mean("edv_px3"), Mean("esv_px3"), ef is { } e ? F(e) : "", string.Join(';', flags), ""]), false);
    }

    private static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

    private static string Csv(IEnumerable<string> fields) => string.Join(',', fields.Select(f =>
        f.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + f.Replace("\"", "\"\"") + "\"" : f));

    /// <summary>
    /// Joins the shards' tables in <paramref name="outDir"/> into summary.csv (rows in study order, as one
    /// unsharded run writes them). Every shard of one N must be there, each study once.
    /// </summary>
    public static (string Csv, int Shards, int Rows) Merge(string outDir)
    {
        var shards = Directory.Exists(outDir) ? Directory.GetFiles(outDir, "summary.shard-*-of-*.csv") : [];
        if (shards.Length == 0) throw new InvalidDataException($"{outDir}: no shard tables (summary.shard-i-of-N.csv) to merge");
        var parsed = shards.Select(p =>
        {
            var m = System.Text.RegularExpressions.Regex.Match(Path.GetFileName(p), @"^summary\.shard-(\d+)-of-(\d+)\.csv$");
            if (!m.Success) throw new InvalidDataException($"{p}: not a shard table name (summary.shard-i-of-N.csv)");
            return (Path: p, Index: int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Count: int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        }).OrderBy(s => s.Index).ToList();
        int n = parsed[0].Count;
        if (parsed.Any(s => s.Count != n)) throw new InvalidDataException($"{outDir}: shard tables of different shard counts ({string.Join(", ", parsed.Select(s => s.Count).Distinct())})");
        var absent = Enumerable.Range(0, n).Except(parsed.Select(s => s.Index)).ToList();
        if (absent.Count > 0) throw new InvalidDataException($"{outDir}: shard table(s) {string.Join(", ", absent.Select(i => $"{i}/{n}"))} missing; run those shards first");
        var rows = new List<(string Study, string Line)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in parsed)
        {
            var lines = InputFile.ReadText(s.Path, "shard table").Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (lines.Length == 0 || lines[0] != Header) throw new InvalidDataException($"{s.Path}: not a summary table of this version (header differs)");
            foreach (var line in lines.Skip(1))
            {
                string study = StudyOf(line);
                if (!seen.Add(study)) throw new InvalidDataException($"{s.Path}: study '{Messages.Quote(study)}' is in more than one shard table");
                rows.Add((study, line));
            }
        }
        var table = new StringBuilder(Header).Append('\n');
        foreach (var (_, line) in rows.OrderBy(r => r.Study, StringComparer.Ordinal)) table.Append(line).Append('\n');
        var csv = Path.Combine(outDir, SummaryCsv);
        AtomicFile.WriteAllText(csv, table.ToString());
        return (csv, n, rows.Count);
    }

    private static string StudyOf(string line)
    {
        if (!line.StartsWith('"')) return line[..Math.Max(0, line.IndexOf(','))];
        var sb = new StringBuilder();
        for (int i = 1; i < line.Length; i++)
        {
            if (line[i] == '"' && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; }
            else if (line[i] == '"') break;
            else sb.Append(line[i]);
        }
        return sb.ToString();
    }
}

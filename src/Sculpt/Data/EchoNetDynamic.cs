using System.Globalization;
using Sculpt.Runtime;

namespace Sculpt.Data;

/// <summary>
/// Reader for the EchoNet-Dynamic release (Ouyang et al., Nature 2020): FileList.csv, VolumeTracings.csv and
/// Videos/*.avi. Every traced frame becomes a sample whose LV mask is built exactly as EchoNet's
/// <c>echonet.datasets.Echo</c> does; of a video's traced frames the larger-area one is end-diastole (ED),
/// the smaller end-systole (ES).
/// </summary>
public static class EchoNetDynamic
{
    public const string FileList = "FileList.csv", VolumeTracings = "VolumeTracings.csv", VideosDir = "Videos";
    private static readonly string[] TracingHeader = { "FileName", "X1", "Y1", "X2", "Y2", "Frame" };

    /// <summary>EchoNet samples at most this many training videos for its mean/std (echonet.utils.get_mean_and_std).</summary>
    public const int NormalizationVideos = 128;

    public static bool IsLayout(string dir) =>
        File.Exists(Path.Combine(dir, FileList)) && File.Exists(Path.Combine(dir, VolumeTracings)) && Directory.Exists(Path.Combine(dir, VideosDir));

    private sealed record VideoEntry(string FileName, string Split, int Line);
    private sealed record Trace(double X1, double Y1, double X2, double Y2);

    public static SegmentationDataset Load(string dir, int? height = null, int? width = null, bool lenient = false,
        Action<int, int>? progress = null)
    {
        var warnings = new List<string>();
        void Problem(string message) { if (lenient) warnings.Add(message); else throw new DatasetException(message); }

        var videos = ReadFileList(Path.Combine(dir, FileList), Problem);
        var known = videos.ToDictionary(v => v.FileName, StringComparer.Ordinal);
        var traces = ReadTracings(Path.Combine(dir, VolumeTracings), known, Problem);

        // normalisation from training videos (EchoNet: 128 randomly chosen; here a fixed-seed choice)
        var trainVideos = videos.Where(v => v.Split == "train").Select(v => v.FileName).ToArray();
        new Random(0).Shuffle(trainVideos);
        var statsVideos = trainVideos.Take(NormalizationVideos).ToHashSet();
        double[] sum = new double[3], sumSq = new double[3];
        long pixels = 0;

        var samples = new List<Sample>();
        int fewTraces = 0, h0 = 0, w0 = 0;
        int videosRead = 0;
        foreach (var video in videos)
        {
            progress?.Invoke(videosRead++, videos.Count);
            if (!traces.TryGetValue(video.FileName, out var frames) || frames.Count < 2) { fewTraces++; continue; }
            var path = Path.Combine(dir, VideosDir, video.FileName);
            if (!File.Exists(path)) { Problem($"{path}: video listed in {Path.Combine(dir, FileList)} (line {video.Line}) not found"); continue; }
            List<Image8> decoded;
            try { decoded = Video.ReadFrames(path); }
            catch (InvalidDataException e) { Problem(e.Message); continue; }
            var bad = frames.FirstOrDefault(f => f.Key >= decoded.Count || f.Key < 0);
            if (bad.Value is not null) { Problem($"{Path.Combine(dir, VolumeTracings)}:{bad.Value.Line}: frame {bad.Key} of {Common.Messages.Quote(video.FileName)} is beyond the video's {decoded.Count} frames"); continue; }
            if (statsVideos.Contains(video.FileName))
                foreach (var img in decoded) { Accumulate(img, sum, sumSq); pixels += (long)img.Width * img.Height; }

            var masks = frames.ToDictionary(f => f.Key, f => Mask(f.Value.Traces, decoded[f.Key].Height, decoded[f.Key].Width));
            int ed = masks.OrderByDescending(m => Area(m.Value)).ThenBy(m => m.Key).First().Key;
            int es = masks.Where(m => m.Key != ed).OrderBy(m => Area(m.Value)).ThenByDescending(m => m.Key).First().Key; // a tie still yields two frames
            foreach (var (frame, phase) in new[] { (ed, "ED"), (es, "ES") })
            {
                var img = decoded[frame];
                (h0, w0) = (img.Height, img.Width);
                int h = height ?? img.Height, w = width ?? img.Width;
                // two frames (ED, ES) of every video traced at least twice, at the size of the first
                if (samples.Count == 0) SegmentationDataset.CheckMemory(dir, 2L * traces.Values.Count(f => f.Count >= 2), 3, h, w);
                var planes = ImageIO.ResizeBilinear(ImageIO.ToPlanes(img, 3), 3, img.Height, img.Width, h, w);
                var mask = ImageIO.ResizeNearest(masks[frame], img.Height, img.Width, h, w);
                samples.Add(new Sample($"{Path.GetFileNameWithoutExtension(video.FileName)}_{frame}", planes, mask, video.Split, null, phase));
            }
        }
        if (fewTraces > 0) warnings.Insert(0, $"{Path.Combine(dir, VolumeTracings)}: {fewTraces} video(s) with fewer than two traced frames skipped");
        if (samples.Count == 0) throw new DatasetException($"{dir}: no EchoNet video with two traced frames could be read");

        Normalization? norm = null;
        if (pixels > 0)
        {
            var mean = sum.Select(s => s / pixels).ToArray();
            var std = sumSq.Select((s, c) => Math.Sqrt(Math.Max(0, s / pixels - mean[c] * mean[c]))).ToArray();
            // EchoNet's statistics are on the 0–255 scale; Sculpt's normalisation applies to [0, 1] intensities
            norm = new Normalization { Mean = mean.Select(m => Math.Round(m / 255, 6)).ToArray(), Std = std.Select(s => Math.Round(Math.Max(s, 1e-3) / 255, 6)).ToArray() };
        }
        return new SegmentationDataset
        {
            Source = dir, Labels = new(SyntheticEcho.BinaryLabels), Channels = 3, Height = height ?? h0, Width = width ?? w0, Samples = samples,
            Format = "echonet-dynamic", OriginalHeight = h0, OriginalWidth = w0, Normalization = norm, Warnings = warnings,
        };
    }

    private static void Accumulate(Image8 img, double[] sum, double[] sumSq)
    {
        int n = img.Width * img.Height;
        for (int p = 0; p < n; p++)
            for (int c = 0; c < 3; c++)
            {
                double v = img.Pixels[p * img.Channels + (img.Channels == 3 ? c : 0)];
                sum[c] += v;
                sumSq[c] += v * v;
            }
    }

    private static int Area(byte[] mask) => mask.Count(v => v != 0);

    /// <summary>
    /// EchoNet's mask: the first row of a frame's tracing is the long axis and is dropped; the polygon is
    /// X1[1:] followed by X2[1:] reversed (Y likewise), vertices rounded to integers, filled the way
    /// skimage.draw.polygon fills (pixel centres inside or on the boundary), clipped to the frame.
    /// </summary>
    public static byte[] Mask(IReadOnlyList<(double X1, double Y1, double X2, double Y2)> rows, int height, int width)
    {
        var xs = new List<double>();
        var ys = new List<double>();
        for (int i = 1; i < rows.Count; i++) { xs.Add(Math.Round(rows[i].X1, MidpointRounding.ToEven)); ys.Add(Math.Round(rows[i].Y1, MidpointRounding.ToEven)); }
        for (int i = rows.Count - 1; i >= 1; i--) { xs.Add(Math.Round(rows[i].X2, MidpointRounding.ToEven)); ys.Add(Math.Round(rows[i].Y2, MidpointRounding.ToEven)); }
        return Polygon.Fill(xs, ys, height, width);
    }

    private static List<VideoEntry> ReadFileList(string path, Action<string> problem)
    {
        var rows = Csv.Read(path);
        if (rows.Count == 0) throw new DatasetException($"{path}: empty file");
        var header = rows[0].Fields;
        int Col(string name) => Array.FindIndex(header, h => h.Equals(name, StringComparison.OrdinalIgnoreCase));
        int file = Col("FileName"), split = Col("Split");
        if (file < 0 || split < 0) throw new DatasetException($"{path}:1: header must name FileName and Split columns, found [{Common.Messages.Quote(string.Join(", ", header))}]");
        var list = new List<VideoEntry>();
        var seen = new HashSet<string>();
        foreach (var (line, f) in rows.Skip(1))
        {
            if (f.Length != header.Length) { problem($"{path}:{line}: expected {header.Length} fields, found {f.Length}"); continue; }
            var name = f[file];
            if (name.Length == 0) { problem($"{path}:{line}: empty FileName"); continue; }
            // a video is a file inside Videos/: no folders, no way out of the dataset, nothing a path cannot hold
            if (name.IndexOfAny(['/', '\\']) >= 0 || name is "." or ".." || name.Any(char.IsControl)
                || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
            {
                problem($"{path}:{line}: FileName '{Common.Messages.Quote(name)}' is not a plain file name");
                continue;
            }
            if (Path.GetExtension(name) == "") name += ".avi"; // FileList names omit the extension, VolumeTracings include it
            string? s = f[split].ToUpperInvariant() switch { "TRAIN" => "train", "VAL" => "val", "TEST" => "test", _ => null };
            if (s is null) { problem($"{path}:{line}: Split '{Common.Messages.Quote(f[split])}' is not TRAIN, VAL or TEST"); continue; }
            if (!seen.Add(name)) { problem($"{path}:{line}: {Common.Messages.Quote(name)} listed twice"); continue; }
            list.Add(new VideoEntry(name, s, line));
        }
        return list;
    }

    private sealed class TracedFrame(int line)
    {
        public int Line { get; } = line;
        public List<(double X1, double Y1, double X2, double Y2)> Traces { get; } = new();
    }

    private static Dictionary<string, SortedDictionary<int, TracedFrame>> ReadTracings(string path, Dictionary<string, VideoEntry> known, Action<string> problem)
    {
        var rows = Csv.Read(path);
        if (rows.Count == 0 || !rows[0].Fields.SequenceEqual(TracingHeader))
            throw new DatasetException($"{path}:1: header must be {string.Join(",", TracingHeader)}, found {(rows.Count == 0 ? "an empty file" : Common.Messages.Quote(string.Join(",", rows[0].Fields)))}");
        var result = new Dictionary<string, SortedDictionary<int, TracedFrame>>(StringComparer.Ordinal);
        var reportedUnknown = new HashSet<string>();
        foreach (var (line, f) in rows.Skip(1))
        {
            if (f.Length != 6) { problem($"{path}:{line}: expected 6 fields, found {f.Length}"); continue; }
            var name = f[0];
            if (Path.GetExtension(name) == "") name += ".avi";
            if (!known.ContainsKey(name)) { if (reportedUnknown.Add(name)) problem($"{path}:{line}: tracing for {Common.Messages.Quote(name)}, which {FileList} does not list"); continue; }
            var v = new double[4];
            int bad = -1;
            for (int k = 0; k < 4; k++)
                if (!double.TryParse(f[k + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out v[k]) || !double.IsFinite(v[k])) { bad = k; break; }
            if (bad >= 0) { problem($"{path}:{line}: {TracingHeader[bad + 1]} '{Common.Messages.Quote(f[bad + 1])}' is not a number"); continue; }
            if (!int.TryParse(f[5], NumberStyles.Integer, CultureInfo.InvariantCulture, out int frame) || frame < 0) { problem($"{path}:{line}: Frame '{Common.Messages.Quote(f[5])}' is not a frame index"); continue; }
            if (!result.TryGetValue(name, out var frames)) result[name] = frames = new();
            if (!frames.TryGetValue(frame, out var tf)) frames[frame] = tf = new TracedFrame(line);
            tf.Traces.Add((v[0], v[1], v[2], v[3]));
        }
        return result;
    }
}

/// <summary>Scan conversion of a polygon to a pixel mask.</summary>
public static class Polygon
{
    /// <summary>
    /// Pixels (r, c) whose centre lies inside the polygon or on its boundary (a vertex or an edge), clipped to
    /// height × width — the rule of skimage.draw.polygon (0.19: O'Rourke's ray crossing, "Computational Geometry
    /// in C", ch. 7), which EchoNet uses. With integer vertices many centres lie exactly on an edge: they count.
    /// </summary>
    public static byte[] Fill(IReadOnlyList<double> xs, IReadOnlyList<double> ys, int height, int width)
    {
        var mask = new byte[height * width];
        int n = xs.Count;
        if (n < 3) return mask;
        int r0 = Math.Max(0, (int)Math.Floor(ys.Min())), r1 = Math.Min(height - 1, (int)Math.Ceiling(ys.Max()));
        int c0 = Math.Max(0, (int)Math.Floor(xs.Min())), c1 = Math.Min(width - 1, (int)Math.Ceiling(xs.Max()));
        for (int r = r0; r <= r1; r++)
            for (int c = c0; c <= c1; c++)
                if (InsideOrOnBoundary(xs, ys, c, r)) mask[r * width + c] = 1;
        return mask;
    }

    /// <summary>
    /// Crossings of the horizontal ray from (x, y) to the right and, separately, to the left: a point on an edge
    /// is crossed on one side only (the parities differ); inside, both counts are odd.
    /// </summary>
    private static bool InsideOrOnBoundary(IReadOnlyList<double> xs, IReadOnlyList<double> ys, double x, double y)
    {
        const double vertexTolerance = 1e-12;
        int right = 0, left = 0, n = xs.Count;
        double px = xs[n - 1] - x, py = ys[n - 1] - y;
        for (int i = 0; i < n; i++)
        {
            double qx = xs[i] - x, qy = ys[i] - y;
            if (Math.Abs(qx) < vertexTolerance && Math.Abs(qy) < vertexTolerance) return true;
            if ((qy > 0) != (py > 0) && (qx * py - px * qy) / (py - qy) > 0) right++;
            if ((qy < 0) != (py < 0) && (qx * py - px * qy) / (py - qy) < 0) left++;
            (px, py) = (qx, qy);
        }
        return (right & 1) != (left & 1) || (right & 1) == 1;
    }
}

/// <summary>Minimal RFC 4180 reader: quoted fields, doubled quotes, CRLF or LF; rows keep their 1-based line numbers.</summary>
public static class Csv
{
    public static List<(int Line, string[] Fields)> Read(string path)
    {
        string text;
        try { text = Common.InputFile.ReadText(path, "CSV file"); }
        catch (InvalidDataException e) { throw new DatasetException(e.Message); }
        var rows = new List<(int, string[])>();
        int line = 1;
        var fields = new List<string>();
        var field = new System.Text.StringBuilder();
        bool quoted = false, any = false;
        int rowLine = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char ch = text[i];
            if (quoted)
            {
                if (ch == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (ch == '"') quoted = false;
                else { if (ch == '\n') line++; field.Append(ch); }
                continue;
            }
            if (ch == '"') { quoted = true; any = true; }
            else if (ch == ',') { fields.Add(field.ToString().Trim()); field.Clear(); any = true; }
            else if (ch == '\r') { }
            else if (ch == '\n')
            {
                if (any || field.Length > 0) { fields.Add(field.ToString().Trim()); rows.Add((rowLine, fields.ToArray())); }
                fields.Clear(); field.Clear(); any = false; line++; rowLine = line;
            }
            else { field.Append(ch); if (ch != ' ' && ch != '\t') any = true; }
        }
        if (quoted) throw new DatasetException($"{path}:{rowLine}: unterminated quoted field");
        if (any || field.Length > 0) { fields.Add(field.ToString().Trim()); rows.Add((rowLine, fields.ToArray())); }
        return rows;
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Sculpt.Runtime;
using Sculpt.Common;

namespace Sculpt.Data;

/// <summary>One training/evaluation item at model input size: image planes C×H×W in [0,1], label map H×W.</summary>
/// <summary>One image and its label map. <see cref="Phase"/>: "ED" or "ES" where the source says which cardiac phase the frame shows.</summary>
public sealed record Sample(string Id, float[] Image, byte[] Mask, string Split, double? SpacingMm = null, string? Phase = null);

/// <summary>
/// A segmentation dataset in memory, loaded from Sculpt's folder format (see docs/dataset-format.md):
/// <c>images/&lt;id&gt;.png</c>, <c>masks/&lt;id&gt;.png</c> (pixel value = label index; 0/255 binary masks are
/// accepted), optional <c>split.csv</c> (<c>id,split</c>) and <c>manifest.json</c>.
/// </summary>
public sealed class SegmentationDataset
{
    public string Source { get; init; } = "";
    public List<string> Labels { get; init; } = new(SyntheticEcho.BinaryLabels);
    public int Channels { get; init; } = 1;
    public int Height { get; init; }
    public int Width { get; init; }
    public List<Sample> Samples { get; init; } = new();
    public string Format { get; init; } = "png-folder";
    public int OriginalHeight { get; init; }
    public int OriginalWidth { get; init; }
    /// <summary>Normalisation the source prescribes (EchoNet: per-channel mean/std of training videos); null: computed by training.</summary>
    public Runtime.Normalization? Normalization { get; init; }
    /// <summary>Items skipped while reading (with --lenient, or always for sources that define skipping), one line each.</summary>
    public List<string> Warnings { get; init; } = new();

    public IReadOnlyList<Sample> Split(string split) => Samples.Where(s => s.Split == split).ToList();

    /// <summary>The splits a sample can belong to.</summary>
    public static readonly IReadOnlyList<string> SplitNames = ["train", "val", "test"];

    /// <summary><paramref name="name"/> when it is a split (or, with <paramref name="orAll"/>, "all"); else ArgumentException.</summary>
    public static string ParseSplit(string name, bool orAll = false) => SplitNames.Contains(name) || (orAll && name == "all") ? name
        : throw new ArgumentException(
            $"'{Common.Messages.Quote(name)}' is not a split ({string.Join(", ", SplitNames)}{(orAll ? " or all" : "")})");

    /// <summary>
    /// A short hash of frames as they are trained on (ids, pixels after resampling, masks) and their count: what a
    /// resumed run compares, since another folder's frames may carry the same ids.
    /// </summary>
    public static string Fingerprint(IReadOnlyList<Sample> frames)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var frame in frames)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(frame.Id + "\n"));
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(frame.Image.AsSpan()));
            hash.AppendData(frame.Mask);
        }
        return $"{Convert.ToHexStringLower(hash.GetHashAndReset())[..16]} ({frames.Count} frames)";
    }

    public bool IsBinary => Labels.Count == 2;

    public const string ManifestFile = "manifest.json";
    public const string SplitFile = "split.csv";

    /// <summary>
    /// A Sculpt dataset folder, or an EchoNet-Dynamic or CAMUS release (detected by their files), with images
    /// (bilinear) and masks (nearest) resized to <paramref name="height"/>×<paramref name="width"/> when given.
    /// <paramref name="lenient"/>: bad items become counted warnings and are skipped instead of failing the load;
    /// <paramref name="progress"/>: (items read, items in all) as the frames (videos for EchoNet) are read.
    /// </summary>
    public static SegmentationDataset Load(string dir, int? height = null, int? width = null, bool lenient = false,
        Action<int, int>? progress = null)
    {
        if (!Directory.Exists(dir)) throw new DatasetException($"{dir}: dataset folder not found");
        if (EchoNetDynamic.IsLayout(dir)) return EchoNetDynamic.Load(dir, height, width, lenient, progress);
        if (!Directory.Exists(Path.Combine(dir, "images")) && Camus.IsLayout(dir)) return Camus.Load(dir, height, width, lenient, progress);
        var imagesDir = Path.Combine(dir, "images");
        var masksDir = Path.Combine(dir, "masks");
        if (!Directory.Exists(imagesDir) || !Directory.Exists(masksDir))
            throw new DatasetException($"{dir}: not a dataset folder (needs images/ and masks/ subfolders)");

        JsonObject? manifest = null;
        var manifestPath = Path.Combine(dir, ManifestFile);
        if (File.Exists(manifestPath))
        {
            try
            {
                manifest = JsonNode.Parse(Common.InputFile.ReadText(manifestPath, "dataset manifest")) as JsonObject ?? throw new JsonException("not an object");
                _ = manifest.Count; // JsonObject finds a duplicated key only when first used
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException) { throw new DatasetException($"{manifestPath}: invalid JSON ({e.Message.Split('\n')[0]})"); }
            catch (InvalidDataException e) { throw new DatasetException(e.Message); }
        }
        var fields = new ManifestFields(manifest, manifestPath);
        List<string>? labels = fields.Labels();
        int channels = fields.Int("channels", 1, 1, 4);
        double? spacing = fields.Positive("pixel_spacing_mm");
        string format = fields.Text("format") ?? "png-folder";

        var images = Directory.GetFiles(imagesDir, "*.png").OrderBy(p => p, StringComparer.Ordinal).ToList();
        if (images.Count == 0) throw new DatasetException($"{imagesDir}: no PNG images");
        var splits = ReadSplits(dir);

        // one pass that keeps only frames at the size they are trained at: holding every decoded frame at its own
        // size first (up to 4096×4096) had let a folder of large frames exhaust memory before anything was resized
        var samples = new List<Sample>(images.Count);
        int maxValue = 0, h = 0, w = 0, originalHeight = 0, originalWidth = 0;
        string maxFile = "";
        bool only0And255 = true;
        (string File, int Pixel, int Width)? first255 = null; // where a 255 was first seen, to name it if it is no label
        foreach (var imgPath in images)
        {
            var id = Path.GetFileNameWithoutExtension(imgPath);
            var maskPath = Path.Combine(masksDir, id + ".png");
            if (!File.Exists(maskPath)) throw new DatasetException($"{maskPath}: missing mask for image {imgPath}");
            Image8 img, mask;
            try { img = ImageIO.Read(imgPath); mask = ImageIO.Read(maskPath); }
            catch (InvalidDataException e) { throw new DatasetException(e.Message); }
            if (img.Width != mask.Width || img.Height != mask.Height)
                throw new DatasetException($"{maskPath}: size {mask.Width}×{mask.Height} does not match image {imgPath} ({img.Width}×{img.Height})");
            if (mask.Channels != 1) throw new DatasetException($"{maskPath}: mask must be a single-channel label image, has {mask.Channels} channels");
            if (samples.Count == 0)
            {
                (originalHeight, originalWidth) = (img.Height, img.Width);
                (h, w) = (height ?? img.Height, width ?? img.Width);
                CheckMemory(dir, images.Count, channels, h, w);
            }
            for (int i = 0; i < mask.Pixels.Length; i++)
            {
                byte v = mask.Pixels[i];
                if (v > maxValue) { maxValue = v; maxFile = maskPath; }
                if (v != 0 && v != 255) only0And255 = false;
                if (v == 255) first255 ??= (maskPath, i, mask.Width);
                // a 255 may still be binary foreground (0/255 masks); everything else is checked against the labels now
                if (labels != null && v >= labels.Count && !(v == 255 && labels.Count == 2))
                    throw OutOfRange(maskPath, v, i, mask.Width, labels);
            }
            var resized = ImageIO.ResizeBilinear(ImageIO.ToPlanes(img, channels), channels, img.Height, img.Width, h, w);
            var resizedMask = ImageIO.ResizeNearest(mask.Pixels, img.Height, img.Width, h, w);
            if (!splits.TryGetValue(id, out var split))
                split = splits.Count == 0 ? DefaultSplit(id)
                    : throw new DatasetException($"{Path.Combine(dir, SplitFile)}: no split for '{Common.Messages.Quote(id)}'");
            double? sp = spacing.HasValue ? spacing * img.Width / w : null;
            samples.Add(new Sample(id, resized, resizedMask, split, sp));
            progress?.Invoke(samples.Count, images.Count);
        }
        bool scale255 = false;
        if (labels == null)
        {
            if (maxValue <= 1 || only0And255) { labels = new(SyntheticEcho.BinaryLabels); scale255 = only0And255 && maxValue == 255; }
            else throw new DatasetException($"{maxFile}: mask is not binary (holds label value {maxValue}) and no manifest.json names the labels; binary masks must be 0/1 or 0/255");
        }
        else if (labels.Count == 2 && only0And255 && maxValue == 255) scale255 = true;
        // 0/255 masks are binary only where every mask is; a 255 beside other foreground values is out of range
        else if (first255 is var (file, pixel, maskWidth)) throw OutOfRange(file, 255, pixel, maskWidth, labels);
        if (scale255)
            foreach (var sample in samples)
                for (int i = 0; i < sample.Mask.Length; i++) sample.Mask[i] = sample.Mask[i] == 255 ? (byte)1 : (byte)0;
        return new SegmentationDataset
        {
            Source = dir, Labels = labels, Channels = channels, Height = h, Width = w, Samples = samples,
            Format = format,
            OriginalHeight = originalHeight, OriginalWidth = originalWidth,
        };
    }

    private static DatasetException OutOfRange(string maskPath, int value, int pixel, int width, List<string> labels) =>
        new($"{maskPath}: label value {value} at pixel ({pixel % width}, {pixel / width}) is out of range for labels "
            + $"[{string.Join(", ", labels)}]{(labels.Count == 2 ? " (mask is not binary)" : "")}");

    /// <summary>
    /// Refuses, before reading them, frames that would not fit in memory at the size they are held at: a dataset is
    /// held whole (float planes and a label byte per pixel), and past half of what this process may use the machine
    /// would swap or the process be killed instead of failing with a line that says why.
    /// </summary>
    public static void CheckMemory(string source, long frames, int channels, int height, int width)
    {
        long perFrame = (long)height * width * (channels * sizeof(float) + 1);
        long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;
        if (frames > limit / perFrame)
        {
            double need = frames * (double)perFrame / (1L << 30), have = 2.0 * limit / (1L << 30);
            throw new DatasetException(FormattableString.Invariant($"{source}: {frames:N0} frames of {channels}×{height}×{width} need ")
                + FormattableString.Invariant($"{need:0.#} GiB in memory, more than half of the {have:0.#} GiB this process may use; ")
                + "use fewer or smaller frames");
        }
    }

    /// <summary>Typed, range-checked fields of manifest.json: a wrong type or value is one line naming the file and field.</summary>
    private sealed class ManifestFields(JsonObject? manifest, string path)
    {
        private DatasetException Bad(string key, string expected) => new($"{path}: \"{key}\" must be {expected}");

        public List<string>? Labels()
        {
            if (manifest?["labels"] is not { } node) return null;
            if (node is not JsonArray a || a.Count < 2 || a.Count > 255 || a.Any(x => x is not JsonValue v || !v.TryGetValue<string>(out _)))
                throw Bad("labels", "a list of 2 to 255 label names");
            return a.Select(x => x!.GetValue<string>()).ToList();
        }

        public int Int(string key, int fallback, int min, int max)
        {
            if (manifest?[key] is not { } node) return fallback;
            return node is JsonValue v && v.TryGetValue<int>(out var i) && i >= min && i <= max ? i : throw Bad(key, $"an integer from {min} to {max}");
        }

        public double? Positive(string key)
        {
            if (manifest?[key] is not { } node) return null;
            return node is JsonValue v && v.TryGetValue<double>(out var d) && d > 0 && double.IsFinite(d) ? d : throw Bad(key, "a positive number");
        }

        public string? Text(string key)
        {
            if (manifest?[key] is not { } node) return null;
            return node is JsonValue v && v.TryGetValue<string>(out var t) ? t : throw Bad(key, "a string");
        }
    }

    /// <summary>Deterministic 70/15/15 split by a stable hash of the id, used when no split.csv exists.</summary>
    public static string DefaultSplit(string id)
    {
        uint hsh = 2166136261;
        foreach (char ch in id) { hsh ^= ch; hsh *= 16777619; }
        double u = (hsh % 10000) / 10000.0;
        return u < 0.7 ? "train" : u < 0.85 ? "val" : "test";
    }

    private static Dictionary<string, string> ReadSplits(string dir)
    {
        var path = Path.Combine(dir, SplitFile);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!File.Exists(path)) return result;
        string[] lines;
        try { lines = Common.InputFile.ReadLines(path, "split list"); }
        catch (InvalidDataException e) { throw new DatasetException(e.Message); }
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || (i == 0 && line.StartsWith("id,"))) continue;
            var parts = line.Split(',');
            if (parts.Length != 2) throw new DatasetException($"{path}:{i + 1}: expected 'id,split', got '{Common.Messages.Quote(line)}'");
            var split = parts[1].Trim().ToLowerInvariant();
            if (!SplitNames.Contains(split))
                throw new DatasetException($"{path}:{i + 1}: split must be train, val or test, got '{Common.Messages.Quote(parts[1])}'");
            result[parts[0].Trim()] = split;
        }
        return result;
    }

    /// <summary>Writes a dataset folder atomically: built in a sibling temp folder, then renamed into place.</summary>
    public static void WriteFolder(string dir, IEnumerable<(string Id, float[] Image, byte[] Mask, string Split)> items, int height, int width,
        IReadOnlyList<string> labels, JsonObject extraManifest, Action<string>? writeExtras = null, Action<int>? progress = null)
    {
        AtomicFile.WriteDirectory(dir, tmp =>
        {
            Directory.CreateDirectory(Path.Combine(tmp, "images"));
            Directory.CreateDirectory(Path.Combine(tmp, "masks"));
            var split = new System.Text.StringBuilder("id,split\n");
            var counts = new SortedDictionary<string, int>();
            int k = 0;
            foreach (var (id, image, mask, s) in items)
            {
                File.WriteAllBytes(Path.Combine(tmp, "images", id + ".png"), ImageIO.EncodePng(ToImage8(image, height, width)));
                File.WriteAllBytes(Path.Combine(tmp, "masks", id + ".png"), ImageIO.EncodePng(new Image8(width, height, 1, mask)));
                split.Append(id).Append(',').Append(s).Append('\n');
                counts[s] = counts.GetValueOrDefault(s) + 1;
                progress?.Invoke(++k);
            }
            File.WriteAllText(Path.Combine(tmp, SplitFile), split.ToString());
            var manifest = new JsonObject
            {
                ["format"] = "sculpt-dataset",
                ["version"] = 1,
                ["labels"] = new JsonArray(labels.Select(l => (JsonNode)l).ToArray()),
                ["channels"] = 1,
                ["height"] = height,
                ["width"] = width,
                ["counts"] = new JsonObject(counts.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            };
            writeExtras?.Invoke(tmp);
            foreach (var (key, value) in extraManifest) manifest[key] = value?.DeepClone();
            File.WriteAllText(Path.Combine(tmp, ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        });
    }

    public static Image8 ToImage8(float[] plane, int height, int width) =>
        new(width, height, 1, plane.Select(v => (byte)Math.Clamp(MathF.Round(v * 255f), 0, 255)).ToArray());
}

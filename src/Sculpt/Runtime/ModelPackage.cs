using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Sculpt.Graph;

namespace Sculpt.Runtime;

public sealed class Normalization
{
    /// <summary>Per input channel, applied to intensities scaled to [0, 1]: x' = (x − mean) / std.</summary>
    public double[] Mean { get; set; } = { 0.0 };
    public double[] Std { get; set; } = { 1.0 };
}

/// <summary>What the model does: enough for any tool to preprocess inputs and read outputs.</summary>
public sealed class TaskInfo
{
    /// <summary>Label names indexed by label value; index 0 is background.</summary>
    public List<string> Labels { get; set; } = new() { "background", "lv" };
    /// <summary>"binary" (one sigmoid logit for label 1) or "multiclass" (softmax over Labels).</summary>
    public string Mode { get; set; } = "binary";
    public int InputChannels { get; set; } = 1;
    public int InputHeight { get; set; } = 112;
    public int InputWidth { get; set; } = 112;
    public Normalization Normalization { get; set; } = new();
    /// <summary>Millimetres per pixel at the model input, when the data knew it.</summary>
    public double? PixelSpacingMm { get; set; }

    [JsonIgnore] public int OutputChannels => Mode == "binary" ? 1 : Labels.Count;

    /// <summary>Every field in range and consistent with the graph it describes; throws naming <paramref name="source"/>.</summary>
    public void Check(NetworkGraph graph, string source)
    {
        InvalidDataException Bad(string what) => new($"{source}: task {what}");
        if (Mode is not ("binary" or "multiclass")) throw Bad($"mode must be binary or multiclass, got '{Mode}'");
        if (Labels is null || Labels.Count < 2 || Labels.Any(string.IsNullOrWhiteSpace)) throw Bad("needs at least two non-empty labels");
        if (Mode == "binary" && Labels.Count != 2) throw Bad($"binary mode has 2 labels, got {Labels.Count}");
        if (InputChannels is < 1 or > 64) throw Bad($"input_channels must be 1 to 64, got {InputChannels}");
        if (InputHeight is < 1 or > 8192 || InputWidth is < 1 or > 8192)
            throw Bad($"input size must be 1 to 8192, got {InputHeight}×{InputWidth}");
        var n = Normalization;
        if (n?.Mean is null || n.Std is null) throw Bad("normalization needs mean and std");
        foreach (var v in new[] { n.Mean, n.Std })
            if (v.Length != 1 && v.Length != InputChannels) throw Bad($"normalization needs 1 or {InputChannels} values, got {v.Length}");
        if (n.Mean.Any(v => !double.IsFinite(v)) || n.Std.Any(v => !(v > 0) || !double.IsFinite(v)))
            throw Bad("normalization must be finite with std > 0");
        if (PixelSpacingMm is { } mm && !(mm > 0 && double.IsFinite(mm))) throw Bad($"pixel_spacing_mm must be > 0, got {mm}");
        if (graph.InputNodes.Count() != 1 || graph.OutputNodes.Count() != 1) throw Bad("needs a graph with one input and one output");
        var input = graph.InputNodes.Single();
        if (input.Channels != InputChannels || input.Height != InputHeight || input.Width != InputWidth)
            throw Bad($"input {InputChannels}×{InputHeight}×{InputWidth} does not match the graph's {input.Channels}×{input.Height}×{input.Width}");
        int outputs = graph.Validate().Single(i => i.Node is OutputNode).Output.C;
        if (outputs != OutputChannels)
            throw Bad($"has {OutputChannels} output channel(s) for {Mode} with {Labels.Count} labels, the graph {outputs}");
    }

    /// <summary>Label names for a model with this many output channels when its source names none (1 channel: binary LV).</summary>
    public static List<string> DefaultLabels(int outputChannels) =>
        outputChannels == 1 ? new() { "background", "lv" } : Enumerable.Range(0, outputChannels).Select(i => i == 0 ? "background" : $"class{i}").ToList();
}

public sealed class ModelMeta
{
    public string Format { get; set; } = "sculpt-model";
    public int Version { get; set; } = 1;
    public TaskInfo Task { get; set; } = new();
    public string? Architecture { get; set; }
    public string? ParentHash { get; set; }
    public string CreatedBy { get; set; } = "sculpt";
    public DateTime CreatedUtc { get; set; } = DateTime.UtcNow;
    public JsonObject? Training { get; set; }
    public Dictionary<string, double> Metrics { get; set; } = new();
    public List<JsonObject> PruningHistory { get; set; } = new();
}

/// <summary>A model on disk: zip of graph.json, weights.safetensors and meta.json.</summary>
public sealed class ModelPackage
{
    public NetworkGraph Graph { get; }
    public WeightSet Weights { get; }
    public ModelMeta Meta { get; }

    public ModelPackage(NetworkGraph graph, WeightSet weights, ModelMeta meta)
    {
        Graph = graph; Weights = weights; Meta = meta;
    }

    /// <summary>SHA-256 of the weights and graph, used to link a pruned model to its parent.</summary>
    public string ContentHash()
    {
        using var sha = SHA256.Create();
        var g = Encoding.UTF8.GetBytes(Graph.ToJson());
        sha.TransformBlock(g, 0, g.Length, null, 0);
        var w = Safetensors.Write(Weights);
        sha.TransformFinalBlock(w, 0, w.Length);
        return Convert.ToHexStringLower(sha.Hash!)[..16];
    }

    public void Save(string path)
    {
        AtomicFile.Write(path, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            WriteEntry(zip, "graph.json", Encoding.UTF8.GetBytes(Graph.ToJson()), CompressionLevel.Optimal);
            WriteEntry(zip, "weights.safetensors", Safetensors.Write(Weights), CompressionLevel.NoCompression);
            WriteEntry(zip, "meta.json", JsonSerializer.SerializeToUtf8Bytes(Meta, NetworkGraph.JsonOptions), CompressionLevel.Optimal);
        });
    }

    private static void WriteEntry(ZipArchive zip, string name, byte[] data, CompressionLevel level)
    {
        var e = zip.CreateEntry(name, level);
        e.LastWriteTime = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero); // byte-identical packages for identical content
        using var s = e.Open();
        s.Write(data);
    }

    /// <summary>
    /// Largest entries a package may hold, checked against the zip's declared sizes before inflating and against
    /// the bytes actually inflated: graph and metadata are text of a few hundred KB; 2 GiB of weights is about
    /// 500 M float32 parameters (a 40 M-parameter DeepLabV3 is 160 MB).
    /// </summary>
    public const long MaxGraphBytes = 64L << 20, MaxMetaBytes = 16L << 20, MaxWeightBytes = int.MaxValue - 64;

    /// <summary>Loads and checks a package as a whole; any defect becomes an <see cref="InvalidDataException"/> naming the file.</summary>
    public static ModelPackage Load(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new FileNotFoundException($"{path}: model file not found");
        Common.InputFile.Require(path, "model file", long.MaxValue);
        try
        {
            using var zip = ZipFile.OpenRead(path);
            byte[] Entry(string name, long max)
            {
                var e = zip.GetEntry(name) ?? throw new InvalidDataException($"{path}: not a Sculpt model (no {name} inside)");
                if (e.Length > max)
                    throw new InvalidDataException($"{path}: {name} declares {e.Length:N0} bytes, more than the {max:N0} allowed");
                using var s = e.Open();
                var data = new byte[e.Length];
                int read = 0;
                while (read < data.Length)
                {
                    int n = s.Read(data, read, data.Length - read);
                    if (n == 0) throw new InvalidDataException($"{path}: {name} is shorter than the zip declares (truncated?)");
                    read += n;
                }
                if (s.ReadByte() >= 0) throw new InvalidDataException($"{path}: {name} is longer than the zip declares");
                // .NET does not check stored entries' CRC-32: a flipped bit in the weights would pass unnoticed
                if (Crc32.Of(data) != e.Crc32)
                    throw new InvalidDataException($"{path}: {name} fails its CRC-32 check (the file is corrupt)");
                return data;
            }
            NetworkGraph graph;
            try { graph = NetworkGraph.FromJson(Encoding.UTF8.GetString(Entry("graph.json", MaxGraphBytes))); }
            catch (GraphException e) { throw new InvalidDataException($"{path}: graph.json: {e.Message}"); }
            var weights = Safetensors.Read(Entry("weights.safetensors", MaxWeightBytes), $"{path}: weights.safetensors");
            ModelMeta meta;
            try
            {
                meta = JsonSerializer.Deserialize<ModelMeta>(Entry("meta.json", MaxMetaBytes), NetworkGraph.JsonOptions)
                    ?? throw new JsonException("empty");
            }
            catch (JsonException e) { throw new InvalidDataException($"{path}: meta.json is invalid: {e.Message.Split('\n')[0]}"); }
            catch (Exception e) when (e is InvalidOperationException or NotSupportedException or ArgumentException)
            {
                throw new InvalidDataException($"{path}: meta.json is invalid: {e.Message.Split('\n')[0]}");
            }
            WeightLayout.Check(graph, weights, path);
            meta.Task.Check(graph, $"{path}: meta.json");
            return new ModelPackage(graph, weights, meta);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path))
        {
            throw new InvalidDataException($"{path}: not a valid Sculpt model (corrupt or truncated zip: {e.Message.Split('\n')[0]})");
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw new InvalidDataException($"{path}: cannot read model: {e.Message.Split('\n')[0]}");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new InvalidDataException($"{path}: cannot read model: {e.Message}");
        }
    }
}

/// <summary>CRC-32 (IEEE 802.3, reflected, as zip uses it).</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Of(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}

/// <summary>
/// Writes go to a temporary file in the same folder and are renamed into place only when complete. Temporaries
/// still in flight are removed when the process is stopped by SIGINT or SIGTERM.
/// </summary>
public static class AtomicFile
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> InFlight = new();
    private static readonly System.Runtime.InteropServices.PosixSignalRegistration[] Handlers =
    [
        System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, _ => CleanUp()),
        System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, _ => CleanUp()),
    ];

    /// <summary>A temporary file or folder to remove if the process is stopped before it is renamed into place.</summary>
    public static void Track(string path) { _ = Handlers; InFlight[path] = true; }
    public static void Untrack(string path) => InFlight.TryRemove(path, out _);

    private static void CleanUp()
    {
        foreach (var path in InFlight.Keys)
        {
            try
            {
                if (File.Exists(path)) File.Delete(path);
                else if (Directory.Exists(path)) Directory.Delete(path, true);
            }
            catch (IOException) { } // best effort while the process ends
            catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Fails now, before long work, when <paramref name="path"/> cannot be written (its folder is created).</summary>
    public static void CheckWritable(string path)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new IOException($"{path}: is a folder, not a file to write");
        var probe = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.probe");
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write)) { }
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{path}: cannot be written ({e.Message.Split('\n')[0]})");
        }
    }

    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        Track(tmp);
        try
        {
            Directory.CreateDirectory(dir);
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                write(fs);
                fs.Flush(true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // name the file the user asked for, not the hidden temporary
            throw new IOException($"{path}: cannot write: {e.Message.Split('\n')[0].Replace(tmp, path)}");
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
            Untrack(tmp);
        }
    }

    /// <summary>
    /// Builds a folder in a sibling temp folder and renames it into place when complete. Refuses, before any
    /// work, an existing folder that is not empty.
    /// </summary>
    public static void WriteDirectory(string dir, Action<string> write)
    {
        var full = Path.GetFullPath(dir).TrimEnd('/');
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new IOException($"{dir}: output folder exists and is not empty");
        var tmp = full + $".tmp-{Guid.NewGuid():N}";
        Track(tmp);
        try
        {
            Directory.CreateDirectory(tmp);
            write(tmp);
            if (Directory.Exists(full)) Directory.Delete(full);
            Directory.Move(tmp, full);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            Untrack(tmp);
        }
    }

    public static void WriteAllText(string path, string text) => Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));
}

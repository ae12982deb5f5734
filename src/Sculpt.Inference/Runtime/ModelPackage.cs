using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Sculpt.Graph;
using Sculpt.Common;

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
        int outputs = graph.OutputChannels();
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
            byte[] Entry(string name, long max) => Common.ZipEntries.Read(
                zip.GetEntry(name) ?? throw new InvalidDataException($"{path}: not a Sculpt model (no {name} inside)"), max, path);
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
            if (meta.Task is null || meta.Metrics is null || meta.PruningHistory is null || meta.PruningHistory.Contains(null!))
                throw new InvalidDataException($"{path}: meta.json is invalid: task, metrics or pruning_history is null");
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

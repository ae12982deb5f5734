using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Sculpt.Graph;
using Sculpt.Runtime;
using Sculpt.Common;

namespace Sculpt.Report;

/// <summary>
/// How a run was made: written first by <c>sculpt demo</c> so that every later stage, a resumed run and
/// the report read the same configuration. Paths inside are relative to the run folder.
/// </summary>
public sealed class RunConfig
{
    public string Format { get; set; } = "sculpt-run";
    public int Version { get; set; } = 1;
    public int Seed { get; set; }
    public string Arch { get; set; } = "unet";
    public int Frames { get; set; }
    public int Epochs { get; set; }
    public double Compression { get; set; }
    /// <summary>The chosen model is the smallest step whose validation Dice has lost at most this fraction of the dense model's.</summary>
    public double? MaxRelativeLoss { get; set; }
    /// <summary>The absolute validation Dice that follows from <see cref="MaxRelativeLoss"/> once the dense model is trained.</summary>
    public double? MinDice { get; set; }
    public int FineTuneSamples { get; set; }
    public double MaxStepRatio { get; set; }
    public int MinChannels { get; set; }
    public string Criterion { get; set; } = "l1";
    /// <summary>How pruning allocates channels across layers (<see cref="Pruning.AllocationModes.Parse"/>); absent in older runs.</summary>
    public string Allocation { get; set; } = "global";
    public int FinalEpochs { get; set; }
    public bool Distill { get; set; }
    public List<string> Commands { get; set; } = new();
    public string? Note { get; set; }
}

/// <summary>The layout of a run folder (the output of <c>sculpt demo</c>, read by <c>sculpt report</c>).</summary>
public sealed class RunFolder(string root)
{
    public string Root { get; } = root;
    public string ConfigPath => Path.Combine(Root, "run.json");
    public string DataDir => Path.Combine(Root, "data");
    public string DenseModel => Path.Combine(Root, "models", "dense.sculpt");
    public string PrunedModel => Path.Combine(Root, "models", "pruned.sculpt");
    public string DenseOnnx => Path.Combine(Root, "models", "dense.onnx");
    public string PrunedOnnx => Path.Combine(Root, "models", "pruned.onnx");
    public string PruneRun => Path.Combine(Root, "prune.run");
    public string StepsLog => Path.Combine(PruneRun, "steps.jsonl");
    public string CurvePath => Path.Combine(Root, "curve.json");
    public string ReportPath => Path.Combine(Root, "report.html");
    public string MainPlotPath => Path.Combine(Root, "dice-vs-compression.png");

    public bool IsRun => File.Exists(ConfigPath);

    public RunConfig ReadConfig()
    {
        if (!IsRun) throw new InvalidDataException($"{Root}: not a Sculpt run folder (no run.json; `sculpt demo --out DIR` makes one)");
        try { return JsonSerializer.Deserialize<RunConfig>(Common.InputFile.ReadText(ConfigPath, "run configuration"), NetworkGraph.JsonOptions) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new InvalidDataException($"{ConfigPath}: not a valid run configuration: {e.Message}"); }
    }

    public void WriteConfig(RunConfig config) => AtomicFile.WriteAllText(ConfigPath, JsonSerializer.Serialize(config, NetworkGraph.JsonOptions));

    public List<Pruning.StepRecord> ReadSteps()
    {
        var list = new List<Pruning.StepRecord>();
        int line = 0;
        foreach (var text in Common.InputFile.ReadLines(StepsLog, "step log"))
        {
            line++;
            if (text.Length == 0) continue;
            try { list.Add(JsonSerializer.Deserialize<Pruning.StepRecord>(text, NetworkGraph.JsonOptions)!); }
            catch (JsonException e) { throw new InvalidDataException($"{StepsLog}:{line}: not a step record: {e.Message}"); }
        }
        return list;
    }

    /// <summary>The model of a step: the dense model for step 0, else the step's checkpoint.</summary>
    public string StepModel(int step) => step == 0 ? DenseModel : Pruning.PruneJob.StepModelPath(PruneRun, step);
}

/// <summary>Where a number was measured: the machine and the software versions.</summary>
public sealed record MachineInfo(int Cores, string Cpu, string Os, string DotNet, string Sculpt, string TorchSharp, string OnnxRuntime)
{
    public static MachineInfo Current()
    {
        string cpu = "unknown";
        try { cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? cpu; } catch (IOException) { }
        string Version(Assembly a) => a.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? a.GetName().Version?.ToString() ?? "?";
        return new MachineInfo(Environment.ProcessorCount, cpu, System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            Environment.Version.ToString(), Version(typeof(MachineInfo).Assembly), TorchRuntime.TorchSharpVersion,
            Version(typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly).Split('+')[0]);
    }
}

using System.Text.Json;
using Sculpt.Common;
using Sculpt.Deploy;
using Sculpt.Graph;
using Sculpt.Runtime;
using Sculpt.Training;

namespace Sculpt.Pruning;

/// <summary>One timing of the architecture at some uniform width: its MACs and ONNX Runtime's batch-1 median.</summary>
public sealed record LatencyProbe(long Macs, double Ms);

/// <summary>
/// A batch-1 latency target on this machine and the MAC target it was turned into: latency fitted as a fixed cost
/// per run plus a cost per MAC. Pruning targets <see cref="MaxMacs"/>; a run folder keeps the plan, so a resumed run
/// prunes to the same MACs instead of timing again.
/// </summary>
public sealed record LatencyPlan(double TargetMs, int Threads, long DenseMacs, double FixedMs, double MsPerGmac, long MaxMacs,
    List<LatencyProbe> Probes)
{
    public long MacsFor(double ms) => (long)((ms - FixedMs) / MsPerGmac * 1e9);
}

/// <summary>
/// Turns a latency target into a MAC budget: the architecture is timed in ONNX Runtime at batch 1 at uniform widths
/// 1, 1/2, 1/4 and 1/8 (weights do not change the time). The pruned model's own latency is measured afterwards
/// (<see cref="Measure"/>).
/// </summary>
public static class LatencyBudget
{
    /// <summary>The plan's file in a run folder.</summary>
    public const string FileName = "latency.json";

    /// <summary>
    /// The plan for <paramref name="targetMs"/>: the one kept in <paramref name="runDir"/> when resuming a run that
    /// has one (it must be for the same target and threads), otherwise a new fit. Refuses a target at or below the
    /// architecture's fixed cost per run, which no width reaches.
    /// </summary>
    public static LatencyPlan Plan(NetworkGraph dense, double targetMs, int threads, string? runDir = null, bool resume = false)
    {
        if (!(targetMs > 0 && double.IsFinite(targetMs)))
            throw new ArgumentException($"the latency target must be a positive number of ms, got {targetMs}");
        if (threads < 1) throw new ArgumentException($"the latency threads must be ≥ 1, got {threads}");
        var kept = runDir is null ? null : Path.Combine(runDir, FileName);
        if (resume && kept is not null && File.Exists(kept))
        {
            var plan = Read(kept);
            if (plan.DenseMacs != dense.MacCount())
                throw new PruneException($"{kept}: this run was planned for a model of {plan.DenseMacs:N0} MACs, not this one's "
                    + $"{dense.MacCount():N0}; give another run folder, or start it again");
            if (plan.TargetMs != targetMs || plan.Threads != threads)
                throw new PruneException($"{kept}: this run was planned for {plan.TargetMs} ms at {plan.Threads} thread(s), "
                    + $"not {targetMs} ms at {threads}; resume it with its own latency target, or start it again");
            return plan;
        }
        var probes = Probe(dense, threads);
        var fit = Latency.FitLatency(probes.Select(p => (p.Macs, p.Ms)).ToList())
            ?? throw new PruneException("the latency of this architecture does not change with its width; "
                + "a latency target cannot be planned");
        double fixedMs = Math.Max(0, fit.FixedMs);
        if (targetMs <= fixedMs * 1.05)
            throw new PruneException($"a batch-1 latency of {targetMs} ms cannot be reached: this architecture costs about "
                + $"{fixedMs:0.###} ms per run on this machine whatever its width ({threads} thread(s))");
        var fitted = new LatencyPlan(targetMs, threads, dense.MacCount(), fixedMs, fit.MsPerGmac, 0, probes);
        return fitted with { MaxMacs = Math.Max(1, Math.Min(dense.MacCount(), fitted.MacsFor(targetMs))) };
    }

    /// <summary>Uniform width factors the architecture is timed at.</summary>
    private static readonly double[] ProbeFactors = [1.0, 0.5, 0.25, 0.125];

    /// <summary>
    /// The architecture's batch-1 ONNX Runtime median at each of <see cref="ProbeFactors"/>: what a plan is fitted to.
    /// Timing the widths alternately in blocks instead was measured and not kept: no steadier on a quiet machine, and
    /// under load both swing by 15–20% (bench/RESULTS.md); a run folder keeps its plan for that reason.
    /// </summary>
    private static List<LatencyProbe> Probe(NetworkGraph dense, int threads)
    {
        var groups = ChannelGroups.Analyze(dense);
        return ProbeFactors.Select(factor =>
        {
            var widths = groups.Prunable.ToDictionary(p => p.Id, p => Math.Max(1, (int)Math.Round(p.Width * factor)));
            var g = Slicer.ApplyWidths(groups, widths);
            return new LatencyProbe(g.MacCount(), Measure(g, threads));
        }).ToList();
    }

    public static void Save(LatencyPlan plan, string runDir) =>
        AtomicFile.WriteAllText(Path.Combine(runDir, FileName), JsonSerializer.Serialize(plan, NetworkGraph.JsonOptions));

    private static LatencyPlan Read(string path)
    {
        LatencyPlan? plan = null;
        ResumeState.Read(path, () =>
        {
            plan = JsonSerializer.Deserialize<LatencyPlan>(InputFile.ReadText(path, "latency plan"), NetworkGraph.JsonOptions)
                ?? throw new JsonException("null plan");
            bool sane = plan.TargetMs > 0 && double.IsFinite(plan.TargetMs) && plan.Threads >= 1 && plan.MaxMacs >= 1 && plan.DenseMacs >= 1
                && double.IsFinite(plan.FixedMs) && plan.MsPerGmac > 0 && double.IsFinite(plan.MsPerGmac) && plan.Probes is not null;
            if (!sane) throw new JsonException("a target, thread count, MAC target or fit out of range");
        });
        return plan!;
    }

    /// <summary>ORT batch-1 median latency of a graph (random weights) or of a model.</summary>
    public static double Measure(NetworkGraph graph, int threads, WeightSet? weights = null)
    {
        using var ort = OrtModel.Fastest(level => OrtModel.FromPackage(RandomPackage(graph, weights), threads, level));
        return Latency.Ort(ort, 1, runs: 100).P50Ms;
    }

    /// <summary>A package of <paramref name="graph"/> to time: its weights, or random ones (weights do not change the time).</summary>
    private static ModelPackage RandomPackage(NetworkGraph graph, WeightSet? weights = null)
    {
        if (weights is null) { using var m = new GraphModule(graph); weights = m.ExportWeights(); }
        var input = graph.InputNodes.Single();
        var task = new TaskInfo { InputChannels = input.Channels, InputHeight = input.Height, InputWidth = input.Width };
        return new ModelPackage(graph, weights, new ModelMeta { Task = task });
    }
}

using Sculpt.Deploy;
using Sculpt.Graph;
using Sculpt.Pruning;
using Sculpt.Runtime;

namespace Sculpt.Cli.Commands;

/// <summary>
/// Turns a latency target on this machine into a MAC budget: the architecture is timed in ONNX Runtime at
/// batch 1 at uniform widths 1, 1/2, 1/4 and 1/8 (weights do not change the time), and latency is fitted as a
/// fixed cost per run plus a cost per MAC. Pruning then targets the MACs that model predicts; the pruned
/// model's own latency is measured afterwards.
/// </summary>
public static class LatencyBudget
{
    public sealed record Model(double FixedMs, double MsPerGmac, List<(long Macs, double Ms)> Probes)
    {
        public long MacsFor(double ms) => (long)((ms - FixedMs) / MsPerGmac * 1e9);
    }

    public static Model Fit(NetworkGraph graph, int threads)
    {
        var groups = ChannelGroups.Analyze(graph);
        var probes = new List<(long, double)>();
        foreach (double factor in new[] { 1.0, 0.5, 0.25, 0.125 })
        {
            var g = Slicer.ApplyWidths(groups, groups.Prunable.ToDictionary(p => p.Id, p => Math.Max(1, (int)Math.Round(p.Width * factor))));
            probes.Add((g.MacCount(), Measure(g, threads)));
        }
        var fit = Latency.FitLatency(probes) ?? throw new PruneException("the latency of this architecture does not change with its width; a latency target cannot be planned");
        return new Model(Math.Max(0, fit.FixedMs), fit.MsPerGmac, probes);
    }

    /// <summary>ORT batch-1 median latency of a graph (random weights) or of a model.</summary>
    public static double Measure(NetworkGraph graph, int threads, WeightSet? weights = null)
    {
        if (weights is null) { using var m = new GraphModule(graph); weights = m.ExportWeights(); }
        var input = graph.InputNodes.Single();
        var package = new ModelPackage(graph, weights, new ModelMeta { Task = new TaskInfo { InputChannels = input.Channels, InputHeight = input.Height, InputWidth = input.Width } });
        using var ort = OrtModel.Fastest(level => OrtModel.FromPackage(package, threads, level));
        return Latency.Ort(ort, 1, runs: 100).P50Ms;
    }
}

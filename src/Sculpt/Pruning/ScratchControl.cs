using System.Text.Json.Nodes;
using Sculpt.Data;
using Sculpt.Graph;
using Sculpt.Runtime;
using Sculpt.Training;

namespace Sculpt.Pruning;

/// <summary>One network trained from scratch as a control for a pruning result, on the validation split pruning used.</summary>
public sealed record ControlResult(string Kind, string Description, long Params, long Macs, long Samples, int Epochs, double ValDice,
    string Model, int Starts = 1)
{
    public JsonObject ToJson() => new()
    {
        ["kind"] = Kind, ["description"] = Description, ["params"] = Params, ["macs"] = Macs, ["samples"] = Samples,
        ["epochs"] = Epochs, ["val_dice"] = ValDice, ["model"] = Model, ["starts"] = Starts,
    };
}

/// <summary>
/// Whether pruning beats training a small network directly — the first question a reviewer asks of a pruning result.
/// Two controls, each trained from a fresh initialisation with the whole sample budget the pruned model consumed
/// (the dense model's training plus every fine-tune): the pruned architecture itself, and the plain alternative a
/// clinical group would try first, the dense architecture at one uniform width with at most the same parameter count.
/// </summary>
public static class ScratchControl
{
    /// <summary>Samples the dense model's training saw, from its meta.json (0 when unknown, e.g. an imported model).</summary>
    public static long DenseTrainingSamples(ModelMeta meta) =>
        // read as text: a value set in this process holds an int, one read from a file a JSON number
        meta.Training is { } t && t["train_samples"] is JsonValue n
        && long.TryParse(n.ToJsonString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture,
            out var samples)
        && t["history"] is JsonArray epochs
            ? samples * epochs.Count : 0;

    /// <summary>How tables and the report name the controls' budget, <paramref name="scale"/> times the pruned model's.</summary>
    public static string BudgetLabel(double scale) => scale == 1 ? "the same budget" : $"{scale:0.##}× the budget";

    /// <summary>
    /// The dense graph with every prunable channel group scaled by one factor, the largest whose network has at most
    /// <paramref name="targetParams"/> parameters, then filled up to that limit one block at a time, always in the group
    /// furthest below its dense width in proportion (groups the task fixes, input and output, stay whole). At most, not
    /// the closest: a control with more parameters than the pruned network would compare unequal sizes, and it could
    /// never be the run's output. No group goes below <paramref name="minChannels"/> (pruning's own floor, so that the two
    /// differ only in how they spend the parameters: at 1148× on EchoNet-format data the uniform network without it had
    /// one-channel layers at full resolution, and in one run all four of its starts stayed dead). Where even the
    /// narrowest network is over the limit, that narrowest network is returned.
    /// </summary>
    public static NetworkGraph UniformWidth(NetworkGraph dense, long targetParams, int minChannels = 1)
    {
        var groups = ChannelGroups.Analyze(dense);
        var prunable = groups.Prunable.ToList();
        NetworkGraph Build(IReadOnlyDictionary<int, int> blocks) =>
            Slicer.ApplyWidths(groups, prunable.ToDictionary(g => g.Id, g => blocks[g.Id] * g.Block));
        Dictionary<int, int> At(double factor) => prunable.ToDictionary(g => g.Id, g =>
        {
            int all = g.Width / g.Block;
            int least = Math.Min(all, Math.Max(1, (minChannels + g.Block - 1) / g.Block));
            return Math.Clamp((int)Math.Round(factor * all), least, all);
        });
        double lo = 0, hi = 1;
        for (int i = 0; i < 40; i++)
        {
            double mid = (lo + hi) / 2;
            if (Build(At(mid)).ParameterCount() <= targetParams) lo = mid; else hi = mid;
        }
        var blocks = At(lo);
        var graph = Build(blocks);
        if (graph.ParameterCount() > targetParams) return graph;
        var full = new HashSet<int>();
        while (true)
        {
            var next = prunable.Where(g => !full.Contains(g.Id) && blocks[g.Id] < g.Width / g.Block)
                .OrderBy(g => (double)blocks[g.Id] / (g.Width / g.Block)).FirstOrDefault();
            if (next is null) return graph;
            blocks[next.Id]++;
            var wider = Build(blocks);
            if (wider.ParameterCount() <= targetParams) graph = wider;
            else { blocks[next.Id]--; full.Add(next.Id); }
        }
    }

    /// <summary>
    /// Trains <paramref name="graph"/> from a seeded fresh initialisation for <paramref name="samples"/> samples (whole
    /// epochs, at least one; a dead start is abandoned and another trains for what remains: <see cref="Trainer.TrainFresh"/>).
    /// </summary>
    public static (ControlResult Result, ModelPackage Model) Train(string kind, string description, NetworkGraph graph, long samples,
        IReadOnlyList<Sample> train, IReadOnlyList<Sample> val, ModelMeta denseMeta, PruneOptions o, int seed, Action<Progress>? progress)
    {
        int epochs = (int)Math.Clamp((samples + train.Count - 1) / Math.Max(1, train.Count), 1, 10_000);
        var result = Trainer.TrainFresh(graph, train, val, denseMeta.Task, new TrainOptions
        {
            Epochs = epochs, BatchSize = o.BatchSize, LearningRate = o.ScratchLearningRate, Seed = seed,
        }, progress);
        var meta = new ModelMeta { Task = denseMeta.Task, Architecture = denseMeta.Architecture };
        meta.Metrics["val_dice"] = Math.Round(result.BestValDice, 6);
        if (o.ControlBudgetScale != 1) meta.Metrics["budget_scale"] = o.ControlBudgetScale;
        var model = new ModelPackage(graph, result.BestWeights, meta);
        return (new ControlResult(kind, description, graph.ParameterCount(), graph.MacCount(), (long)epochs * train.Count, epochs,
            result.BestValDice, "", result.Starts), model);
    }
}

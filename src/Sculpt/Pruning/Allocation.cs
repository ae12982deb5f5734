using Sculpt.Graph;

namespace Sculpt.Pruning;

/// <summary>
/// Global: one threshold on normalised scores across groups. Uniform: one ratio for every group. CostAware: global,
/// on importance per unit of the budget a channel frees (a channel of a 112×112 layer frees 256× the MACs of one
/// at 7×7, so at equal importance it goes first).
/// </summary>
public enum AllocationMode { Global, Uniform, CostAware }

public static class AllocationModes
{
    /// <summary>The command-line names: global, uniform, cost.</summary>
    public static AllocationMode Parse(string s) => s.ToLowerInvariant() switch
    {
        "global" => AllocationMode.Global, "uniform" => AllocationMode.Uniform, "cost" or "cost-aware" => AllocationMode.CostAware,
        _ => throw new ArgumentException($"unknown allocation '{s}' (global, uniform, cost)"),
    };
}

public enum HeadInputPolicy { Whole, Ranked }

/// <summary>What to shrink towards: parameters or MACs, at most <see cref="Value"/>.</summary>
public readonly record struct Budget(string Metric, double Value)
{
    public double Measure(NetworkGraph g) => Metric == "macs" ? g.MacCount() : g.ParameterCount();

    /// <summary>
    /// Whether <paramref name="g"/> is within the budget. A compression target divides the dense count, so the
    /// budget is rarely a whole number and a model at exactly that size must count as fitting despite rounding.
    /// </summary>
    public bool Fits(NetworkGraph g) => Measure(g) <= Value * (1 + 1e-9);
}

public sealed record AllocationOptions
{
    /// <summary>
    /// Cost-aware by measurement (bench/RESULTS.md, issue 14): global allocation stopped one of two EchoNet-format
    /// runs at 26× of a 1148× target (every attempt of a step collapsed) and collapsed 3 of 8 one-shot steps by
    /// spending a decoder layer's last channels for 40 parameters; cost-aware reached the target every time and
    /// collapsed none, at test Dice within the seed-to-seed spread of global on the demo.
    /// </summary>
    public AllocationMode Mode { get; init; } = AllocationMode.CostAware;
    /// <summary>
    /// At most this fraction of a group's current channels goes in one allocation, so no layer vanishes in
    /// one step. With 0.9, a 1.55× step of a trained width-16 U-Net cut single decoder layers by up to 90% and
    /// left Dice at 0 before and after fine-tuning; steps shrink the whole model by ≤ 1.5×, so no layer
    /// needs to lose more than half at once.
    /// </summary>
    public double MaxGroupRatio { get; init; } = 0.5;
    /// <summary>Kept widths are multiples of this (when the group is at least that wide).</summary>
    public int RoundTo { get; init; } = 1;
    /// <summary>
    /// No group is pruned below this many channels. A one-channel layer behind a ReLU is a single point of
    /// failure: the demo's width-16 U-Net, pruned globally down to one channel in its full-resolution layers,
    /// fell from Dice 0.84 to 0 on a 1.1× step and never recovered (bench/RESULTS.md).
    /// </summary>
    public int MinChannels { get; init; } = 2;
    /// <summary>
    /// How the channels the output layer reads are treated: chosen by least-squares reconstruction of the
    /// logits with the output layer refitted (see <see cref="Pruning.HeadInput"/>), or kept whole. Kept whole,
    /// a U-Net's last full-resolution layer sets a floor of 17.6 M MACs on unet-classic; ranked, a one-shot cut
    /// of that layer from 64 to 9 channels moved val Dice from 0.958 to 0.955 before any fine-tuning.
    /// </summary>
    public HeadInputPolicy HeadInput { get; init; } = HeadInputPolicy.Ranked;
}

/// <summary>Decides how many (and which) channels each group keeps to fit a budget.</summary>
public static class Allocation
{
    public static int MinKeep(int width, AllocationOptions o) =>
        Math.Clamp(Math.Max((int)Math.Ceiling(width * (1 - o.MaxGroupRatio) - 1e-9), o.MinChannels), 1, width);

    private static int Round(int keep, int width, AllocationOptions o)
    {
        if (o.RoundTo <= 1 || width < o.RoundTo) return keep;
        int r = (int)Math.Round((double)keep / o.RoundTo) * o.RoundTo;
        return Math.Clamp(r, o.RoundTo, width - width % o.RoundTo);
    }

    /// <summary>
    /// Prunable groups that allocation leaves whole: those the output layer reads, unless they are chosen by
    /// least squares (possible when a 1×1 output layer is their only consumer, see <see cref="Pruning.HeadInput.Find"/>).
    /// </summary>
    public static HashSet<int> Fixed(ChannelGroups groups, AllocationOptions o)
    {
        var heads = Pruning.HeadInput.OutputLayers(groups);
        var readByHead = groups.Prunable.Where(g => g.Consumers.Any(m => heads.Contains(m.Node))).Select(g => g.Id).ToHashSet();
        if (o.HeadInput == HeadInputPolicy.Ranked) readByHead.ExceptWith(Pruning.HeadInput.Find(groups).Keys);
        return readByHead;
    }

    /// <summary>The width a group ends with for a wanted channel count: whole if fixed, else rounded.</summary>
    private static int Keep(ChannelGroup g, int count, HashSet<int> whole, AllocationOptions o) =>
        whole.Contains(g.Id) ? g.Width
        : g.Block > 1 ? Math.Min(g.Width, (count + g.Block - 1) / g.Block * g.Block) // whole groups of a group norm
        : Round(count, g.Width, o);

    /// <summary>
    /// Scores with every block of a blocked group replaced by the block's mean, so that a block's channels are
    /// ranked, counted and selected together (ties break by channel index, which keeps a block contiguous).
    /// </summary>
    private static Dictionary<int, double[]> BlockScores(ChannelGroups groups, Dictionary<int, double[]> scores)
    {
        var result = new Dictionary<int, double[]>(scores);
        foreach (var g in groups.Prunable.Where(g => g.Block > 1 && scores.ContainsKey(g.Id)))
        {
            var s = scores[g.Id];
            result[g.Id] = s.Select((_, c) => s.Skip(c / g.Block * g.Block).Take(g.Block).Average()).ToArray();
        }
        return result;
    }

    /// <summary>The smallest model the graph can become (every prunable group at its minimum).</summary>
    public static double Floor(ChannelGroups groups, Budget budget, AllocationOptions o)
    {
        var whole = Fixed(groups, o);
        return budget.Measure(Slicer.ApplyWidths(groups, groups.Prunable.ToDictionary(g => g.Id, g => Keep(g, MinKeep(g.Width, o), whole, o))));
    }

    /// <summary>
    /// Channel indices each prunable group keeps so that the pruned graph fits the budget with as little
    /// removed as possible. Global: one threshold on normalised scores across all groups. Uniform: one
    /// ratio for every group. Both respect <see cref="AllocationOptions.MaxGroupRatio"/> and keep ≥ 1 channel.
    /// </summary>
    public static Dictionary<int, int[]> Allocate(ChannelGroups groups, Dictionary<int, double[]> scores, Budget budget, AllocationOptions o)
    {
        var prunable = groups.Prunable.ToList();
        var whole = Fixed(groups, o);
        scores = BlockScores(groups, scores);
        var full = prunable.ToDictionary(g => g.Id, g => g.Width);
        double Measure(Dictionary<int, int> counts) => budget.Measure(Slicer.ApplyWidths(groups, counts));
        if (Measure(full) <= budget.Value) return Select(prunable, scores, full);

        Func<double, Dictionary<int, int>> countsAt;
        double hi;
        if (o.Mode == AllocationMode.Uniform)
        {
            countsAt = r => prunable.ToDictionary(g => g.Id, g => Keep(g, Math.Clamp((int)Math.Round(g.Width * (1 - r)), MinKeep(g.Width, o), g.Width), whole, o));
            hi = o.MaxGroupRatio;
        }
        else
        {
            // Global: remove channels in ascending order of normalised importance (ties broken by group, then
            // channel, so the order is total and deterministic), skipping any group already at its minimum.
            // Removing one channel at a time lands on the budget even when many scores tie (e.g. dead channels).
            var cost = o.Mode == AllocationMode.CostAware ? ChannelCosts(groups, prunable, full, Measure) : null;
            var order = prunable.SelectMany(g => scores[g.Id].Select((s, c) => (Score: cost is null ? s : s / cost[g.Id], Group: g.Id, Channel: c)))
                .OrderBy(t => t.Score).ThenBy(t => t.Group).ThenBy(t => t.Channel).ToList();
            var minKeep = prunable.ToDictionary(g => g.Id, g => whole.Contains(g.Id) ? g.Width : MinKeep(g.Width, o));
            countsAt = k =>
            {
                var counts = new Dictionary<int, int>(full);
                int removed = 0;
                foreach (var t in order)
                {
                    if (removed >= (int)k) break;
                    if (counts[t.Group] > minKeep[t.Group]) { counts[t.Group]--; removed++; }
                }
                return prunable.ToDictionary(g => g.Id, g => Keep(g, counts[g.Id], whole, o));
            };
            hi = order.Count;
        }
        if (Measure(countsAt(hi)) > budget.Value) return Select(prunable, scores, countsAt(hi)); // as small as allowed; the caller reports the shortfall
        double lo = 0;
        for (int it = 0; it < 60 && (o.Mode == AllocationMode.Uniform || hi - lo > 1); it++)
        {
            double mid = o.Mode == AllocationMode.Uniform ? (lo + hi) / 2 : Math.Floor((lo + hi) / 2);
            if (Measure(countsAt(mid)) <= budget.Value) hi = mid; else lo = mid;
        }
        return Select(prunable, scores, countsAt(hi));
    }

    /// <summary>What removing one channel (one block) of each group frees of the budget metric, at the current widths.</summary>
    private static Dictionary<int, double> ChannelCosts(ChannelGroups groups, List<ChannelGroup> prunable, Dictionary<int, int> full,
        Func<Dictionary<int, int>, double> measure)
    {
        double whole = measure(full);
        var costs = new Dictionary<int, double>();
        foreach (var g in prunable)
        {
            if (g.Width <= g.Block) { costs[g.Id] = double.PositiveInfinity; continue; } // cannot lose a block: never first
            var less = new Dictionary<int, int>(full) { [g.Id] = g.Width - g.Block };
            costs[g.Id] = Math.Max(1e-12, (whole - measure(less)) / g.Block);
        }
        return costs;
    }

    private static Dictionary<int, int[]> Select(List<ChannelGroup> groups, Dictionary<int, double[]> scores, Dictionary<int, int> counts) =>
        groups.ToDictionary(g => g.Id, g => Enumerable.Range(0, g.Width)
            .OrderByDescending(c => scores[g.Id][c]).ThenBy(c => c) // deterministic tie-break
            .Take(counts[g.Id]).OrderBy(c => c).ToArray());
}

using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Pruning;

/// <summary>
/// Physical pruning: a new graph with smaller channel counts and weights sliced to match — never masks.
/// <c>keep</c> maps a group id to the sorted channel indices it keeps; groups not listed keep everything.
/// </summary>
public static class Slicer
{
    public static NetworkGraph ApplyWidths(ChannelGroups groups, IReadOnlyDictionary<int, int> keepCounts)
    {
        var keep = keepCounts.ToDictionary(kv => kv.Key, kv => Enumerable.Range(0, kv.Value).ToArray());
        return Slice(groups, keep, null).Graph;
    }

    public static (NetworkGraph Graph, WeightSet? Weights) Slice(ChannelGroups groups, IReadOnlyDictionary<int, int[]> keep, WeightSet? weights)
    {
        foreach (var (id, k) in keep)
        {
            var g = groups.Groups[id];
            if (!g.Prunable && k.Length != g.Width) throw new InvalidOperationException($"group '{g.Name}' is protected ({g.ProtectedBecause}) and cannot be pruned");
            if (k.Length < 1) throw new InvalidOperationException($"group '{g.Name}' would keep no channel");
            if (k.Any(i => i < 0 || i >= g.Width) || k.Distinct().Count() != k.Length)
                throw new InvalidOperationException($"group '{g.Name}': kept indices must be distinct and within 0..{g.Width - 1}");
        }
        var graph = groups.Graph.Clone();
        var sliced = weights is null ? null : new WeightSet();
        foreach (var node in graph.Nodes)
        {
            int[] InIdx() => ChannelGroups.KeptIndices(groups.Layout[node.Inputs[0]], keep);
            int[] OutIdx() => ChannelGroups.KeptIndices(groups.Layout[node.Name], keep);
            switch (node)
            {
                case ConvTranspose2dNode t:
                {
                    var (i, o) = (InIdx(), OutIdx());
                    Copy(sliced, weights, $"{t.Name}.weight", w => Select(Select(w, 0, i), 1, o));
                    if (t.Bias) Copy(sliced, weights, $"{t.Name}.bias", w => Select(w, 0, o));
                    t.InChannels = i.Length; t.OutChannels = o.Length;
                    break;
                }
                case Conv2dNode c when c.Groups > 1 && c.Groups == c.InChannels && c.OutChannels == c.InChannels:
                {
                    var i = InIdx();
                    Copy(sliced, weights, $"{c.Name}.weight", w => Select(w, 0, i));
                    if (c.Bias) Copy(sliced, weights, $"{c.Name}.bias", w => Select(w, 0, i));
                    c.InChannels = c.OutChannels = c.Groups = i.Length;
                    break;
                }
                case Conv2dNode c when c.Groups > 1:
                    CopyAll(sliced, weights, c.Name, c.Bias ? new[] { "weight", "bias" } : new[] { "weight" });
                    break;
                case Conv2dNode c:
                {
                    var (i, o) = (InIdx(), OutIdx());
                    Copy(sliced, weights, $"{c.Name}.weight", w => Select(Select(w, 0, o), 1, i));
                    if (c.Bias) Copy(sliced, weights, $"{c.Name}.bias", w => Select(w, 0, o));
                    c.InChannels = i.Length; c.OutChannels = o.Length;
                    break;
                }
                case BatchNorm2dNode b:
                {
                    var i = InIdx();
                    foreach (var p in new[] { "weight", "bias", "running_mean", "running_var" })
                        Copy(sliced, weights, $"{b.Name}.{p}", w => Select(w, 0, i));
                    b.Channels = i.Length;
                    break;
                }
            }
        }
        graph.Validate();
        return (graph, sliced);
    }

    private static void Copy(WeightSet? dst, WeightSet? src, string key, Func<TensorData, TensorData> f)
    {
        if (dst is null || src is null) return;
        if (!src.TryGetValue(key, out var t)) throw new InvalidDataException($"weights lack {key}");
        dst[key] = f(t);
    }

    private static void CopyAll(WeightSet? dst, WeightSet? src, string node, string[] names)
    {
        foreach (var n in names) Copy(dst, src, $"{node}.{n}", t => t);
    }

    /// <summary>index_select on dimension 0 or 1 of a row-major tensor.</summary>
    public static TensorData Select(TensorData t, int dim, int[] idx)
    {
        var shape = (long[])t.Shape.Clone();
        long outer = 1, inner = 1;
        for (int d = 0; d < dim; d++) outer *= shape[d];
        for (int d = dim + 1; d < shape.Length; d++) inner *= shape[d];
        long n = shape[dim];
        if (idx.Length == n && idx.Select((v, k) => v == k).All(x => x)) return t;
        shape[dim] = idx.Length;
        var data = new float[outer * idx.Length * inner];
        for (long o = 0; o < outer; o++)
            for (int k = 0; k < idx.Length; k++)
                Array.Copy(t.Data, (o * n + idx[k]) * inner, data, (o * idx.Length + k) * inner, inner);
        return new TensorData(shape, data);
    }
}

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
            if (g.Block > 1 && k.GroupBy(i => i / g.Block).Any(b => b.Count() != g.Block))
                throw new InvalidOperationException($"group '{g.Name}' is pruned in whole blocks of {g.Block} channels");
        }
        var graph = groups.Graph.Clone();
        var sliced = weights is null ? null : new WeightSet();
        foreach (var node in graph.Nodes)
        {
            if (node is InputNode) continue;
            // every node reads its channels from its first input; its weights say which axes hold them
            var inIdx = node.Inputs.Count > 0 ? ChannelGroups.KeptIndices(groups.Layout[node.Inputs[0]], keep) : [];
            var outIdx = ChannelGroups.KeptIndices(groups.Layout[node.Name], keep);
            foreach (var spec in node.Weights())
                Copy(sliced, weights, $"{node.Name}.{spec.Name}", w =>
                {
                    if (spec.InAxis >= 0) w = Select(w, spec.InAxis, inIdx);
                    if (spec.OutAxis >= 0 && spec.OutAxis != spec.InAxis) w = Select(w, spec.OutAxis, outIdx);
                    return w;
                });
            node.SetChannels(inIdx.Length, outIdx.Length);
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

    /// <summary>index_select on one dimension of a row-major tensor.</summary>
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

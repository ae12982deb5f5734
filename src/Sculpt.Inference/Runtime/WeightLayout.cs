using Sculpt.Graph;

namespace Sculpt.Runtime;

/// <summary>Names and shapes of the tensors a graph needs, in PyTorch state_dict naming.</summary>
public static class WeightLayout
{
    public static IEnumerable<(string Key, long[] Shape, bool IsBuffer)> Of(NetworkGraph graph) =>
        Specs(graph).Select(p => (p.Key, p.Spec.Shape, p.Spec.IsBuffer));

    public static IEnumerable<(string Key, WeightSpec Spec)> Specs(NetworkGraph graph) =>
        graph.Nodes.SelectMany(n => n.Weights().Select(w => ($"{n.Name}.{w.Name}", w)));

    /// <summary>Throws one message listing every missing, unexpected or wrongly shaped tensor.</summary>
    public static void Check(NetworkGraph graph, WeightSet weights, string source)
    {
        var problems = new List<string>();
        var expected = Of(graph).ToDictionary(e => e.Key, e => e.Shape);
        foreach (var (key, shape) in expected)
        {
            if (!weights.TryGetValue(key, out var t)) problems.Add($"missing {key}");
            else if (!t.SameShape(shape)) problems.Add($"{key} has shape {t.ShapeText}, graph needs [{string.Join(", ", shape)}]");
        }
        foreach (var key in weights.Keys)
            if (!expected.ContainsKey(key)) problems.Add($"unexpected {key}");
        if (problems.Count > 0)
            throw new InvalidDataException($"{source}: graph and weights disagree: {string.Join("; ", problems.Take(8))}{(problems.Count > 8 ? $"; and {problems.Count - 8} more" : "")}");
    }
}

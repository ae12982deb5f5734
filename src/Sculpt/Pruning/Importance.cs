using Sculpt.Graph;
using Sculpt.Runtime;

namespace Sculpt.Pruning;

public enum Criterion { Taylor, L1, L2, BnScale, Fpgm, Random }

/// <summary>
/// Group-aggregated channel importance. Each member of a group (producer filters, consumer input slices,
/// BN channels, depthwise filters) yields one score per channel; each member's scores are divided by their
/// mean so that no single layer dominates, summed over members, and the group's vector is divided by its
/// mean again so that scores compare across groups (global ranking), as in DepGraph/Torch-Pruning.
/// </summary>
public static class Importance
{
    public static Criterion Parse(string s) => s.ToLowerInvariant() switch
    {
        "taylor" => Criterion.Taylor, "l1" => Criterion.L1, "l2" => Criterion.L2, "bn" or "bn-scale" or "bnscale" => Criterion.BnScale,
        "fpgm" => Criterion.Fpgm, "random" => Criterion.Random,
        _ => throw new ArgumentException($"unknown criterion '{s}' (taylor, l1, l2, bn-scale, fpgm, random)"),
    };

    /// <param name="gradients">Accumulated ∂L/∂w over calibration batches; required for Taylor.</param>
    public static Dictionary<int, double[]> Score(ChannelGroups groups, WeightSet weights, Criterion criterion, WeightSet? gradients = null, int seed = 0)
    {
        if (criterion == Criterion.Taylor && gradients is null) throw new ArgumentException("Taylor importance needs calibration gradients");
        var nodes = groups.Graph.Nodes.ToDictionary(n => n.Name);
        var rng = new Random(seed);
        var result = new Dictionary<int, double[]>();
        foreach (var g in groups.Prunable)
        {
            var total = new double[g.Width];
            int contributions = 0;
            void AddScores(double[] s)
            {
                double mean = s.Average();
                if (!(mean > 0)) return;
                for (int c = 0; c < s.Length; c++) total[c] += s[c] / mean;
                contributions++;
            }
            if (criterion == Criterion.Random)
                for (int c = 0; c < g.Width; c++) total[c] = rng.NextDouble();
            else
            {
                foreach (var m in g.Members)
                {
                    var s = MemberScores(nodes[m.Node], m, g.Width, weights, gradients, criterion);
                    if (s != null) AddScores(s);
                }
                if (contributions == 0 && criterion is Criterion.BnScale or Criterion.Fpgm)
                    foreach (var m in g.Members) { var s = MemberScores(nodes[m.Node], m, g.Width, weights, null, Criterion.L2); if (s != null) AddScores(s); }
            }
            result[g.Id] = Normalise(total);
        }
        return result;
    }

    /// <summary>A group's scores divided by their mean, so that groups compare in a global ranking (all 1 when every score is 0).</summary>
    private static double[] Normalise(double[] scores)
    {
        double mean = scores.Average();
        return mean > 0 ? scores.Select(v => v / mean).ToArray() : scores.Select(_ => 1.0).ToArray();
    }

    /// <summary>The tensors of a member and the axis that holds the group's channels, from the node's weight specs.</summary>
    private static List<(string Key, int Axis, WeightSpec Spec)> Parts(Node node, Role role) =>
        node.Weights().Where(w => !w.IsBuffer).Select(w => (Key: $"{node.Name}.{w.Name}", Axis: role switch
        {
            Role.Consumer => w.InAxis != w.OutAxis ? w.InAxis : -1,
            _ => w.OutAxis,
        }, Spec: w)).Where(p => p.Axis >= 0).ToList();

    /// <summary>Per-channel scores of one member, or null when the criterion ignores this kind of member.</summary>
    private static double[]? MemberScores(Node node, Member m, int width, WeightSet w, WeightSet? grad, Criterion criterion)
    {
        var parts = Parts(node, m.Role);
        if (parts.Count == 0) return null;
        switch (criterion)
        {
            case Criterion.BnScale:
                if (m.Role != Role.Norm) return null;
                return Enumerable.Range(0, width).Select(c => (double)Math.Abs(w[$"{node.Name}.weight"].Data[m.Offset + c])).ToArray();
            case Criterion.Fpgm:
                if (m.Role != Role.Producer) return null;
                return GeometricMedianDistance(w[parts[0].Key], parts[0].Axis, m.Offset, width);
            case Criterion.L1 or Criterion.L2:
            {
                // a norm's β is a shift, not a magnitude of the channel's filter: only γ counts for magnitude criteria
                var s = new double[width];
                foreach (var (key, axis, _) in parts.Where(p => !p.Spec.IsShift))
                    ForEachChannel(w[key], axis, m.Offset, width, (c, v, _) => s[c] += criterion == Criterion.L1 ? Math.Abs(v) : v * v);
                if (criterion == Criterion.L2) for (int c = 0; c < width; c++) s[c] = Math.Sqrt(s[c]);
                return s;
            }
            case Criterion.Taylor:
            {
                // first-order Taylor estimate of the loss change when the channel's parameters are zeroed: |Σ w·∂L/∂w|
                var s = new double[width];
                foreach (var (key, axis, _) in parts)
                {
                    var gr = grad![key].Data;
                    ForEachChannel(w[key], axis, m.Offset, width, (c, v, i) => s[c] += v * gr[i]);
                }
                for (int c = 0; c < width; c++) s[c] = Math.Abs(s[c]);
                return s;
            }
        }
        return null;
    }

    /// <summary>Visits every element of the slices [offset, offset+width) along <paramref name="axis"/>.</summary>
    private static void ForEachChannel(TensorData t, int axis, int offset, int width, Action<int, float, long> visit)
    {
        long outer = 1, inner = 1, n = t.Shape[axis];
        for (int d = 0; d < axis; d++) outer *= t.Shape[d];
        for (int d = axis + 1; d < t.Shape.Length; d++) inner *= t.Shape[d];
        for (long a = 0; a < outer; a++)
            for (long b = 0; b < n; b++)
            {
                long ch = b - offset;
                if (ch < 0 || ch >= width) continue;
                long start = (a * n + b) * inner;
                for (long k = 0; k < inner; k++) visit((int)ch, t.Data[start + k], start + k);
            }
    }

    /// <summary>FPGM (He et al. 2019): filters near the geometric median of their layer are redundant; score = Σ distances to the others.</summary>
    private static double[] GeometricMedianDistance(TensorData w, int axis, int offset, int width)
    {
        var filters = new List<double>[width];
        for (int c = 0; c < width; c++) filters[c] = new List<double>();
        ForEachChannel(w, axis, offset, width, (c, v, _) => filters[c].Add(v));
        var s = new double[width];
        for (int i = 0; i < width; i++)
            for (int j = i + 1; j < width; j++)
            {
                double d = 0;
                for (int k = 0; k < filters[i].Count; k++) { double x = filters[i][k] - filters[j][k]; d += x * x; }
                d = Math.Sqrt(d);
                s[i] += d; s[j] += d;
            }
        return s;
    }
}

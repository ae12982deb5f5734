using Sculpt.Runtime;
using static TorchSharp.torch;

namespace Sculpt.Pruning;

/// <summary>Per-channel sums of chosen nodes' outputs over every pixel of calibration batches, in eval mode.</summary>
internal static class ChannelMoments
{
    /// <summary>Σx per channel, and Σxxᵀ (C×C, row-major) with <paramref name="covariance"/>, else Σx² per channel.</summary>
    public static Dictionary<string, (double[] Sum, double[] Products, long Pixels)> Measure(ModelPackage model, IReadOnlySet<string> nodes,
        IEnumerable<Tensor> batches, bool covariance)
    {
        var sums = new Dictionary<string, (double[] Sum, double[] Products, long Pixels)>();
        using var module = new GraphModule(model.Graph, model.Weights);
        module.eval();
        using var _ = no_grad();
        foreach (var x in batches)
        {
            using var scope = NewDisposeScope();
            module.Forward(x, (name, y) =>
            {
                if (!nodes.Contains(name)) return;
                var a = y.transpose(0, 1).reshape(y.shape[1], -1).to_type(ScalarType.Float64);
                var s = a.sum(1).data<double>().ToArray();
                var p = (covariance ? a.matmul(a.t()) : (a * a).sum(1)).data<double>().ToArray();
                var acc = sums.TryGetValue(name, out var v) ? v : (new double[s.Length], new double[p.Length], 0L);
                for (int i = 0; i < s.Length; i++) acc.Item1[i] += s[i];
                for (int i = 0; i < p.Length; i++) acc.Item2[i] += p[i];
                sums[name] = (acc.Item1, acc.Item2, acc.Item3 + a.shape[1]);
            });
        }
        return sums;
    }
}

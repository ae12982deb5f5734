using Sculpt.Graph;
using Sculpt.Runtime;
using static TorchSharp.torch;

namespace Sculpt.Pruning;

/// <summary>
/// Gives a network exported with its batch norms folded (torch.onnx's default) batch norms back, without changing
/// what it computes: after every convolution that no normalisation follows, a batch norm whose running statistics are
/// the convolution's own per-channel mean μ and variance σ² on calibration data, and whose affine undoes them
/// (γ = √(σ² + ε), β = μ), so that in eval mode it is the identity. In training mode it normalises as the original
/// network's batch norms did, which keeps fine-tuning of a deeply pruned network stable: measured on torchvision's
/// DeepLabV3-ResNet50 trained in PyTorch and exported with defaults, pruning the folded network at the default
/// learning rate collapsed at its first step (bench/RESULTS.md).
/// </summary>
public static class BatchNormRestore
{
    /// <summary>Convolutions that get a batch norm: ungrouped or depthwise, not followed only by a norm, not producing an output.</summary>
    public static List<Conv2dNode> Candidates(NetworkGraph graph)
    {
        var groups = ChannelGroups.Analyze(graph);
        var outputs = HeadInput.OutputLayers(groups);
        var consumers = graph.Nodes.SelectMany(n => n.Inputs.Select(i => (i, n))).ToLookup(p => p.i, p => p.n);
        return graph.Nodes.OfType<Conv2dNode>()
            .Where(c => c is not ConvTranspose2dNode && (c.Groups == 1 || c.IsDepthwise) && !outputs.Contains(c.Name))
            .Where(c => !consumers[c.Name].Any(n => n is BatchNorm2dNode or ImageNormNode))
            .ToList();
    }

    public static ModelPackage Apply(ModelPackage model, IEnumerable<Tensor> calibration)
    {
        var candidates = Candidates(model.Graph);
        if (candidates.Count == 0) return model;
        var names = candidates.Select(c => c.Name).ToHashSet();
        var sums = ChannelMoments.Measure(model, names, calibration, covariance: false);
        var graph = model.Graph.Clone();
        var weights = new WeightSet();
        foreach (var (k, v) in model.Weights) weights[k] = v;
        foreach (var conv in candidates)
        {
            if (!sums.TryGetValue(conv.Name, out var acc) || acc.Pixels == 0) continue;
            string bn = Unique(graph, conv.Name + ".restored_bn");
            const double eps = 1e-5;
            int c = conv.OutChannels;
            var mean = new float[c]; var variance = new float[c]; var gamma = new float[c];
            for (int i = 0; i < c; i++)
            {
                double m = acc.Sum[i] / acc.Pixels, v = Math.Max(acc.Products[i] / acc.Pixels - m * m, 0);
                mean[i] = (float)m; variance[i] = (float)v; gamma[i] = (float)Math.Sqrt(v + eps);
            }
            foreach (var n in graph.Nodes) for (int i = 0; i < n.Inputs.Count; i++) if (n.Inputs[i] == conv.Name) n.Inputs[i] = bn;
            graph.Nodes.Insert(graph.Nodes.FindIndex(n => n.Name == conv.Name) + 1,
                new BatchNorm2dNode { Name = bn, Inputs = { conv.Name }, Channels = c, Eps = eps });
            weights[$"{bn}.weight"] = new TensorData([c], gamma);
            weights[$"{bn}.bias"] = new TensorData([c], (float[])mean.Clone());
            weights[$"{bn}.running_mean"] = new TensorData([c], mean);
            weights[$"{bn}.running_var"] = new TensorData([c], variance);
        }
        graph.Validate();
        return new ModelPackage(graph, weights, model.Meta);
    }

    private static string Unique(NetworkGraph g, string name)
    {
        var n = name;
        for (int k = 2; g.Find(n) != null; k++) n = $"{name}_{k}";
        return n;
    }
}

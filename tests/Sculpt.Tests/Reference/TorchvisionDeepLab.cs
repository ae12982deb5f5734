using Sculpt.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sculpt.Tests.Reference;

/// <summary>
/// torchvision's DeepLabV3-ResNet50 forward (eval mode) written directly against a state dict keyed by
/// torchvision's names, independent of Sculpt's graph IR: the check that imported weights land where
/// torchvision would use them.
/// </summary>
public static class TorchvisionDeepLab
{
    public static Tensor Forward(Tensor x, IReadOnlyDictionary<string, Tensor> sd, DeepLabConfig c)
    {
        Tensor Conv(Tensor t, string name, long stride = 1, long padding = 0, long dilation = 1) =>
            F.conv2d(t, sd[name + ".weight"], sd.TryGetValue(name + ".bias", out var b) ? b : null, new[] { stride, stride }, new[] { padding, padding }, new[] { dilation, dilation });
        Tensor Bn(Tensor t, string name) => F.batch_norm(t, sd[name + ".running_mean"], sd[name + ".running_var"], sd[name + ".weight"], sd[name + ".bias"], false, 0.1, 1e-5);
        var h = F.relu(Bn(Conv(x, "backbone.conv1", 2, 3), "backbone.bn1"));
        h = F.max_pool2d(h, new long[] { 3, 3 }, new long[] { 2, 2 }, new long[] { 1, 1 });
        long dilation = 1;
        for (int layer = 1; layer <= 4; layer++)
        {
            long stride = layer == 1 ? 1 : 2, previous = dilation;
            if (layer >= 3) { dilation *= stride; stride = 1; }
            for (int block = 0; block < c.Blocks[layer - 1]; block++)
            {
                string p = $"backbone.layer{layer}.{block}";
                long s = block == 0 ? stride : 1, d = block == 0 ? previous : dilation;
                var y = F.relu(Bn(Conv(h, p + ".conv1"), p + ".bn1"));
                y = F.relu(Bn(Conv(y, p + ".conv2", s, d, d), p + ".bn2"));
                y = Bn(Conv(y, p + ".conv3"), p + ".bn3");
                var identity = sd.ContainsKey(p + ".downsample.0.weight") ? Bn(Conv(h, p + ".downsample.0", s), p + ".downsample.1") : h;
                h = F.relu(y + identity);
            }
        }
        var branches = new List<Tensor> { F.relu(Bn(Conv(h, "classifier.0.convs.0.0"), "classifier.0.convs.0.1")) };
        for (int i = 0; i < c.AsppRates.Length; i++)
            branches.Add(F.relu(Bn(Conv(h, $"classifier.0.convs.{i + 1}.0", 1, c.AsppRates[i], c.AsppRates[i]), $"classifier.0.convs.{i + 1}.1")));
        string pool = $"classifier.0.convs.{c.AsppRates.Length + 1}";
        var pooled = F.relu(Bn(Conv(F.adaptive_avg_pool2d(h, new long[] { 1, 1 }), pool + ".1"), pool + ".2"));
        branches.Add(F.interpolate(pooled, new[] { h.shape[2], h.shape[3] }, mode: InterpolationMode.Bilinear, align_corners: false));
        var a = F.relu(Bn(Conv(cat(branches, 1), "classifier.0.project.0"), "classifier.0.project.1"));
        a = F.relu(Bn(Conv(a, "classifier.1", 1, 1), "classifier.2"));
        var logits = Conv(a, "classifier.4");
        return F.interpolate(logits, new[] { x.shape[2], x.shape[3] }, mode: InterpolationMode.Bilinear, align_corners: false);
    }
}

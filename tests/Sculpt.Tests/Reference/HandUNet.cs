using Sculpt.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sculpt.Tests.Reference;

/// <summary>
/// A U-Net written by hand with TorchSharp's own layer modules, independently of the graph IR: the reference
/// that GraphModule is checked against (tests) and timed against (bench). Transposed-conv decoder with BN.
/// </summary>
public sealed class HandUNet : nn.Module<Tensor, Tensor>
{
    private sealed class DoubleConv : nn.Module<Tensor, Tensor>
    {
        public readonly Conv2d conv1, conv2;
        public readonly BatchNorm2d bn1, bn2;
        public DoubleConv(long cin, long cout) : base("DoubleConv")
        {
            conv1 = nn.Conv2d(cin, cout, 3, padding: 1, bias: false);
            bn1 = nn.BatchNorm2d(cout);
            conv2 = nn.Conv2d(cout, cout, 3, padding: 1, bias: false);
            bn2 = nn.BatchNorm2d(cout);
            RegisterComponents();
        }
        public override Tensor forward(Tensor x) => bn2.forward(conv2.forward(bn1.forward(conv1.forward(x)).relu())).relu();
    }

    private readonly ModuleList<DoubleConv> _enc = new(), _dec = new();
    private readonly ModuleList<ConvTranspose2d> _up = new();
    private readonly Conv2d _head;
    private readonly int _depth;

    public HandUNet(int depth, int width, int inChannels, int classes) : base("HandUNet")
    {
        _depth = depth;
        _enc.Add(new DoubleConv(inChannels, width));
        for (int l = 1; l <= depth; l++) _enc.Add(new DoubleConv(width << (l - 1), width << l));
        for (int l = depth - 1; l >= 0; l--)
        {
            _up.Add(nn.ConvTranspose2d(width << (l + 1), width << l, 2, stride: 2));
            _dec.Add(new DoubleConv(width << (l + 1), width << l));
        }
        _head = nn.Conv2d(width, classes, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var skips = new List<Tensor>();
        var h = _enc[0].forward(x);
        for (int l = 1; l <= _depth; l++)
        {
            skips.Add(h);
            h = _enc[l].forward(nn.functional.max_pool2d(h, 2, 2));
        }
        for (int k = 0; k < _depth; k++)
        {
            int level = _depth - 1 - k;
            var up = _up[k].forward(h);
            h = _dec[k].forward(cat(new[] { skips[level], up }, 1));
        }
        return _head.forward(h);
    }

    /// <summary>Copies weights named as Sculpt's U-Net builder names them.</summary>
    public void CopyFrom(WeightSet w)
    {
        using var _ = no_grad();
        void Set(Tensor? target, string key)
        {
            using var source = tensor(w[key].Data, w[key].Shape); // alive until copy_ returns (see GraphModule.LoadWeights)
            target!.copy_(source);
        }
        void SetDouble(DoubleConv d, string prefix)
        {
            Set(d.conv1.weight, $"{prefix}.conv1.weight"); Set(d.conv2.weight, $"{prefix}.conv2.weight");
            foreach (var (bn, i) in new[] { (d.bn1, 1), (d.bn2, 2) })
            {
                Set(bn.weight, $"{prefix}.bn{i}.weight"); Set(bn.bias, $"{prefix}.bn{i}.bias");
                Set(bn.running_mean, $"{prefix}.bn{i}.running_mean"); Set(bn.running_var, $"{prefix}.bn{i}.running_var");
            }
        }
        for (int l = 0; l <= _depth; l++) SetDouble(_enc[l], $"enc{l}");
        for (int k = 0; k < _depth; k++)
        {
            int level = _depth - 1 - k;
            Set(_up[k].weight, $"up{level}.upconv.weight"); Set(_up[k].bias!, $"up{level}.upconv.bias");
            SetDouble(_dec[k], $"dec{level}");
        }
        Set(_head.weight, "head.weight"); Set(_head.bias!, "head.bias");
    }
}

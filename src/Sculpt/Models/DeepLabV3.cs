using Sculpt.Graph;

namespace Sculpt.Models;

public sealed record DeepLabConfig
{
    public int InChannels { get; init; } = 3;
    public int Classes { get; init; } = 1;
    public int InputSize { get; init; } = 112;
    /// <summary>ResNet stem width (64 in ResNet-50); bottleneck widths are 1, 2, 4, 8 × this, expansion 4.</summary>
    public int Width { get; init; } = 64;
    public int[] Blocks { get; init; } = { 3, 4, 6, 3 };
    public int AsppChannels { get; init; } = 256;
    public int[] AsppRates { get; init; } = { 12, 24, 36 };
}

/// <summary>
/// torchvision's <c>deeplabv3_resnet50(aux_loss=False)</c> as a graph whose node names are torchvision's module
/// paths, so a state_dict maps onto it key for key: ResNet-50 (v1.5: stride on the 3×3 conv) with
/// replace_stride_with_dilation=[False, True, True] (output stride 8), DeepLabHead = ASPP (1×1, three 3×3
/// atrous branches, image pooling), 3×3 conv, 1×1 classifier, then bilinear upsampling (align_corners=False)
/// to the input size. EchoNet-Dynamic replaces the last conv with a 1-channel one: <see cref="DeepLabConfig.Classes"/> = 1.
/// </summary>
public static class DeepLabV3
{
    public static NetworkGraph Build(DeepLabConfig c)
    {
        var b = new GraphBuilder();
        string x = b.Input("input", c.InChannels, c.InputSize, c.InputSize);
        string h = b.Relu("backbone.relu", b.BatchNorm("backbone.bn1", b.Conv("backbone.conv1", x, c.Width, 7, stride: 2, padding: 3, bias: false)));
        h = b.MaxPool("backbone.maxpool", h, 3, 2, padding: 1);
        int dilation = 1;
        bool[] dilate = { false, false, true, true };
        for (int layer = 0; layer < 4; layer++)
        {
            int planes = c.Width << layer, stride = layer == 0 ? 1 : 2;
            int previousDilation = dilation;
            if (dilate[layer]) { dilation *= stride; stride = 1; }
            for (int block = 0; block < c.Blocks[layer]; block++)
            {
                string p = $"backbone.layer{layer + 1}.{block}";
                int s = block == 0 ? stride : 1, d = block == 0 ? previousDilation : dilation;
                string identity = h;
                string y = b.Relu($"{p}.relu1", b.BatchNorm($"{p}.bn1", b.Conv($"{p}.conv1", h, planes, 1, bias: false)));
                y = b.Relu($"{p}.relu2", b.BatchNorm($"{p}.bn2", b.Conv($"{p}.conv2", y, planes, 3, stride: s, padding: d, dilation: d, bias: false)));
                y = b.BatchNorm($"{p}.bn3", b.Conv($"{p}.conv3", y, planes * 4, 1, bias: false));
                if (block == 0 && (s != 1 || b.ChannelsOf(h) != planes * 4))
                    identity = b.BatchNorm($"{p}.downsample.1", b.Conv($"{p}.downsample.0", h, planes * 4, 1, stride: s, bias: false));
                h = b.Relu($"{p}.relu", b.AddNodes($"{p}.add", y, identity));
            }
        }
        // ASPP
        int a = c.AsppChannels;
        var branches = new List<string> { b.Relu("classifier.0.convs.0.2", b.BatchNorm("classifier.0.convs.0.1", b.Conv("classifier.0.convs.0.0", h, a, 1, bias: false))) };
        for (int i = 0; i < c.AsppRates.Length; i++)
        {
            int r = c.AsppRates[i];
            string p = $"classifier.0.convs.{i + 1}";
            branches.Add(b.Relu($"{p}.2", b.BatchNorm($"{p}.1", b.Conv($"{p}.0", h, a, 3, padding: r, dilation: r, bias: false))));
        }
        string pool = $"classifier.0.convs.{c.AsppRates.Length + 1}";
        string pooled = b.Relu($"{pool}.3", b.BatchNorm($"{pool}.2", b.Conv($"{pool}.1", b.AdaptiveAvgPool($"{pool}.0", h, 1), a, 1, bias: false)));
        branches.Add(b.UpsampleLike($"{pool}.upsample", pooled, h, "bilinear"));
        string aspp = b.Concat("classifier.0.cat", branches.ToArray());
        aspp = b.Relu("classifier.0.project.2", b.BatchNorm("classifier.0.project.1", b.Conv("classifier.0.project.0", aspp, a, 1, bias: false)));
        aspp = b.Dropout("classifier.0.project.3", aspp, 0.5);
        string head = b.Relu("classifier.3", b.BatchNorm("classifier.2", b.Conv("classifier.1", aspp, a, 3, padding: 1, bias: false)));
        string logits = b.Conv("classifier.4", head, c.Classes, 1);
        b.Output("output", b.UpsampleLike("upsample", logits, x, "bilinear"));
        return b.Build();
    }
}

/// <summary>Every architecture a user can name with <c>--arch</c>.</summary>
public static class Architectures
{
    public static readonly string[] Names = { "unet-classic", "unet", "unet-small", "deeplabv3_resnet50" };

    public static NetworkGraph Build(string arch, int inChannels, int classes, int inputSize) => arch switch
    {
        "deeplabv3_resnet50" or "deeplabv3-resnet50" => DeepLabV3.Build(new DeepLabConfig { InChannels = inChannels, Classes = classes, InputSize = inputSize }),
        _ => UNet.Build(UNet.Preset(arch, inChannels, classes, inputSize)),
    };
}

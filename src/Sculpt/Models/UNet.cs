using Sculpt.Graph;

namespace Sculpt.Models;

/// <summary>U-Net configuration. The defaults are the classic Ronneberger/milesial network (~31M parameters).</summary>
public sealed record UNetConfig
{
    public int Depth { get; init; } = 4;
    public int BaseWidth { get; init; } = 64;
    public bool BatchNorm { get; init; } = true;
    /// <summary>Bilinear upsampling (milesial's bilinear=True, halved bottleneck) instead of transposed convolutions.</summary>
    public bool Bilinear { get; init; }
    public int InChannels { get; init; } = 1;
    /// <summary>Output channels: 1 for a binary (sigmoid) task, otherwise one logit per class incl. background.</summary>
    public int Classes { get; init; } = 1;
    public int InputSize { get; init; } = 112;
}

public static class UNet
{
    /// <summary>Named presets a user can pass as <c>--arch</c>.</summary>
    public static UNetConfig Preset(string arch, int inChannels, int classes, int inputSize) => arch switch
    {
        "unet-classic" => new UNetConfig { InChannels = inChannels, Classes = classes, InputSize = inputSize },
        "unet" => new UNetConfig { BaseWidth = 16, InChannels = inChannels, Classes = classes, InputSize = inputSize },
        "unet-small" => new UNetConfig { BaseWidth = 8, Depth = 3, InChannels = inChannels, Classes = classes, InputSize = inputSize },
        _ => throw new ArgumentException($"unknown architecture '{arch}' (known: {string.Join(", ", Architectures.Names)})"),
    };

    public static NetworkGraph Build(UNetConfig c)
    {
        if (c.Depth < 1 || c.BaseWidth < 1) throw new ArgumentException("U-Net depth and base width must be ≥ 1");
        if (c.InputSize % (1 << c.Depth) != 0)
            throw new ArgumentException($"input size {c.InputSize} must be divisible by 2^depth = {1 << c.Depth}");
        var b = new GraphBuilder();
        string x = b.Input("input", c.InChannels, c.InputSize, c.InputSize);

        string DoubleConv(string prefix, string input, int outCh, int midCh)
        {
            string h = b.Conv($"{prefix}.conv1", input, midCh, 3, padding: 1, bias: !c.BatchNorm);
            if (c.BatchNorm) h = b.BatchNorm($"{prefix}.bn1", h);
            h = b.Relu($"{prefix}.relu1", h);
            h = b.Conv($"{prefix}.conv2", h, outCh, 3, padding: 1, bias: !c.BatchNorm);
            if (c.BatchNorm) h = b.BatchNorm($"{prefix}.bn2", h);
            return b.Relu($"{prefix}.relu2", h);
        }

        int factor = c.Bilinear ? 2 : 1;
        var skips = new List<string>();
        string h = DoubleConv("enc0", x, c.BaseWidth, c.BaseWidth);
        for (int level = 1; level <= c.Depth; level++)
        {
            skips.Add(h);
            int w = c.BaseWidth << level;
            if (level == c.Depth) w /= factor;
            string p = b.MaxPool($"down{level}.pool", h, 2, 2);
            h = DoubleConv($"enc{level}", p, w, w);
        }
        for (int level = c.Depth - 1; level >= 0; level--)
        {
            int inCh = b.ChannelsOf(h);
            int outCh = level == 0 ? c.BaseWidth : (c.BaseWidth << level) / factor;
            string up = c.Bilinear
                ? b.UpsampleScale($"up{level}.upsample", h, 2, "bilinear", alignCorners: true)
                : b.ConvTranspose($"up{level}.upconv", h, inCh / 2, 2, 2);
            string cat = b.Concat($"up{level}.cat", skips[level], up);
            int mid = c.Bilinear ? b.ChannelsOf(cat) / 2 : outCh;
            h = DoubleConv($"dec{level}", cat, outCh, mid);
        }
        string logits = b.Conv("head", h, c.Classes, 1);
        b.Output("logits", logits);
        return b.Build();
    }
}

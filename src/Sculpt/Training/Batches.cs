using Sculpt.Data;
using Sculpt.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sculpt.Training;

/// <summary>Turns samples into normalised tensors, and model outputs back into label maps.</summary>
public static class Batches
{
    public static Tensor Images(IReadOnlyList<Sample> batch, int channels, int h, int w, Normalization norm)
    {
        var data = new float[batch.Count * channels * h * w];
        int plane = h * w;
        for (int b = 0; b < batch.Count; b++) CopyInChannels(batch[b].Image, channels, h, w, data, b * channels * plane);
        using var x = tensor(data, new long[] { batch.Count, channels, h, w }); // alive until Normalize returns
        return Normalize(x, norm);
    }

    /// <summary>A frame as the model's <paramref name="channels"/> planes, unnormalised.</summary>
    public static float[] InChannels(float[] image, int channels, int h, int w)
    {
        var planes = new float[channels * h * w];
        CopyInChannels(image, channels, h, w, planes, 0);
        return planes;
    }

    private static void CopyInChannels(float[] image, int channels, int h, int w, float[] to, int offset)
    {
        int plane = h * w;
        if (image.Length == channels * plane) image.CopyTo(to, offset);
        // a grey frame for a colour model is fed as EchoNet feeds its grey videos: the same plane in every channel
        else if (image.Length == plane) for (int c = 0; c < channels; c++) image.CopyTo(to, offset + c * plane);
        else throw new InvalidDataException($"an image of {image.Length} values does not fit {channels}×{h}×{w}");
    }

    public static Tensor Normalize(Tensor x, Normalization norm)
    {
        // every intermediate is held until the next call returns: callers outside a DisposeScope (batch-norm
        // calibration) would otherwise leave temporaries the GC can finalize while libtorch still reads them
        using var mean = PerChannel(norm.Mean, x.shape[1]);
        using var std = PerChannel(norm.Std, x.shape[1]);
        using var centred = x - mean;
        return centred / std;
    }

    /// <summary>The inverse of <see cref="Normalize"/>: intensities in [0, 1] again.</summary>
    public static Tensor Denormalize(Tensor x, Normalization norm)
    {
        using var mean = PerChannel(norm.Mean, x.shape[1]);
        using var std = PerChannel(norm.Std, x.shape[1]);
        using var scaled = x * std;
        return scaled.add(mean, HeldScalars.One);
    }

    /// <summary>One value per channel as [1, c, 1, 1] (the last value repeated when fewer are given).</summary>
    private static Tensor PerChannel(double[] v, long c) =>
        tensor(Enumerable.Range(0, (int)c).Select(i => (float)v[Math.Min(i, v.Length - 1)]).ToArray(), new long[] { 1, c, 1, 1 });

    /// <summary>Labels as long [B,H,W].</summary>
    public static Tensor Labels(IReadOnlyList<Sample> batch, int h, int w)
    {
        var data = new long[batch.Count * h * w];
        for (int b = 0; b < batch.Count; b++)
            for (int i = 0; i < h * w; i++) data[b * h * w + i] = batch[b].Mask[i];
        return tensor(data, new long[] { batch.Count, h, w });
    }

    /// <summary>Label maps from logits: sigmoid &gt; 0.5 for one channel, argmax otherwise.</summary>
    public static byte[][] Predict(Tensor logits)
    {
        using var scope = NewDisposeScope();
        var labels = logits.shape[1] == 1
            ? logits.squeeze(1).gt(HeldScalars.Zero).to_type(ScalarType.Byte)
            : logits.argmax(1).to_type(ScalarType.Byte);
        long n = labels.shape[0], hw = labels.shape[1] * labels.shape[2];
        var flat = labels.contiguous().data<byte>().ToArray();
        return Enumerable.Range(0, (int)n).Select(b => flat.AsSpan((int)(b * hw), (int)hw).ToArray()).ToArray();
    }

    /// <summary>Mean and std of training intensities, per channel, for the model's normalisation.</summary>
    public static Normalization Statistics(IReadOnlyList<Sample> samples, int channels)
    {
        var mean = new double[channels]; var sq = new double[channels];
        long count = 0;
        foreach (var s in samples)
        {
            int hw = s.Image.Length / channels;
            for (int c = 0; c < channels; c++)
                for (int i = 0; i < hw; i++) { double v = s.Image[c * hw + i]; mean[c] += v; sq[c] += v * v; }
            count += s.Image.Length / channels;
        }
        var std = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            mean[c] /= count;
            std[c] = Math.Sqrt(Math.Max(sq[c] / count - mean[c] * mean[c], 1e-8));
        }
        return new Normalization { Mean = mean.Select(v => Math.Round(v, 6)).ToArray(), Std = std.Select(v => Math.Round(v, 6)).ToArray() };
    }
}

/// <summary>Random affine, gamma, contrast and noise augmentation on [0,1] image batches and their labels.</summary>
public sealed class Augmenter(int seed)
{
    private readonly Random _random = new(seed);
    public double MaxRotationDeg { get; init; } = 12;
    public double ScaleRange { get; init; } = 0.12;
    public double ShiftRange { get; init; } = 0.08;

    private double U(double lo, double hi) => lo + (hi - lo) * _random.NextDouble();

    /// <summary>Returns augmented (images in [0,1], labels long [B,H,W]).</summary>
    public (Tensor Images, Tensor Labels) Apply(Tensor images, Tensor labels)
    {
        long b = images.shape[0];
        var theta = new float[b * 6];
        var gamma = new float[b]; var contrast = new float[b]; var noise = new float[b];
        for (int i = 0; i < b; i++)
        {
            double a = U(-MaxRotationDeg, MaxRotationDeg) * Math.PI / 180, s = 1 + U(-ScaleRange, ScaleRange);
            double ca = Math.Cos(a) / s, sa = Math.Sin(a) / s;
            theta[i * 6 + 0] = (float)ca; theta[i * 6 + 1] = (float)-sa; theta[i * 6 + 2] = (float)U(-ShiftRange, ShiftRange) * 2;
            theta[i * 6 + 3] = (float)sa; theta[i * 6 + 4] = (float)ca; theta[i * 6 + 5] = (float)U(-ShiftRange, ShiftRange) * 2;
            gamma[i] = (float)Math.Exp(U(-0.4, 0.4));
            contrast[i] = (float)U(0.8, 1.2);
            noise[i] = (float)U(0, 0.04);
        }
        var th = tensor(theta, new long[] { b, 2, 3 });
        var grid = F.affine_grid(th, images.shape, align_corners: false);
        var warped = F.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros, align_corners: false);
        var lab = F.grid_sample(labels.unsqueeze(1).to_type(ScalarType.Float32), grid, GridSampleMode.Nearest, GridSamplePaddingMode.Zeros, align_corners: false)
            .squeeze(1).round().to_type(ScalarType.Int64);
        var g = tensor(gamma).reshape(b, 1, 1, 1);
        var k = tensor(contrast).reshape(b, 1, 1, 1);
        var sd = tensor(noise).reshape(b, 1, 1, 1);
        var x = (warped.clamp(HeldScalars.Zero, HeldScalars.One).pow(g) * k).add(randn_like(warped) * sd, HeldScalars.One);
        return (x.clamp(HeldScalars.Zero, HeldScalars.One), lab);
    }
}

using StbImageSharp;
using StbImageWriteSharp;
using Sculpt.Common;

namespace Sculpt.Data;

/// <summary>An 8-bit image, channels interleaved (H, W, C).</summary>
public sealed record Image8(int Width, int Height, int Channels, byte[] Pixels)
{
    public byte this[int y, int x, int c = 0] => Pixels[(y * Width + x) * Channels + c];
}

public static class ImageIO
{
    /// <summary>Reads PNG (or JPEG/BMP) keeping its channels (1 = grey, 3 = RGB; alpha dropped).</summary>
    public static Image8 Read(string path)
    {
        return Decode(InputLimits.ReadFile(path, "image"), path);
    }

    /// <summary>The bytes <see cref="Read"/> would decode the file to, from its header alone (checked as Read checks it).</summary>
    public static long DecodedBytes(string path)
    {
        Common.InputFile.Require(path, "image", InputLimits.MaxFileBytes); // before opening: a FIFO would block
        // the header is read from the file itself: reading all of it here would read every image twice, since the
        // caller measures a whole folder before it decodes any of it
        var (width, height, channels) = Guarded(path, () =>
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            return Header(stream, path);
        });
        return (long)width * height * channels;
    }

    public static Image8 Decode(byte[] bytes, string source) => Guarded(source, () =>
    {
        var (_, _, c) = Header(new MemoryStream(bytes), source);
        var img = ImageResult.FromMemory(bytes, c == 1 ? StbImageSharp.ColorComponents.Grey : StbImageSharp.ColorComponents.RedGreenBlue);
        if (img.Data is null || img.Data.Length != img.Width * img.Height * c) throw new InvalidDataException("truncated pixel data");
        return new Image8(img.Width, img.Height, c, img.Data);
    });

    /// <summary>
    /// Width, height and the channels the file decodes to (grey stays grey, alpha is dropped, anything else is RGB),
    /// with its size checked before a single pixel is decoded (a 389 KB PNG can declare gigapixels).
    /// </summary>
    private static (int Width, int Height, int Channels) Header(Stream image, string source)
    {
        var info = ImageInfo.FromStream(image) ?? throw new InvalidDataException("unknown image format");
        InputLimits.CheckPixels(info.Width, info.Height, source);
        bool grey = info.ColorComponents is StbImageSharp.ColorComponents.Grey or StbImageSharp.ColorComponents.GreyAlpha;
        return (info.Width, info.Height, grey ? 1 : 3);
    }

    /// <summary><paramref name="read"/>, with any decoder failure as one line naming the file.</summary>
    private static T Guarded<T>(string source, Func<T> read)
    {
        try { return read(); }
        catch (Exception e) when (e is not InvalidDataException || !e.Message.StartsWith(source))
        {
            // the decoder's own messages can carry NUL padding
            throw new InvalidDataException($"{source}: corrupt or unsupported image ({Common.Messages.OneLine(e.Message).Trim()})");
        }
    }

    public static byte[] EncodePng(Image8 img)
    {
        using var ms = new MemoryStream();
        var comps = img.Channels switch
        {
            1 => StbImageWriteSharp.ColorComponents.Grey,
            3 => StbImageWriteSharp.ColorComponents.RedGreenBlue,
            4 => StbImageWriteSharp.ColorComponents.RedGreenBlueAlpha,
            _ => throw new ArgumentException($"cannot write {img.Channels}-channel PNG"),
        };
        new ImageWriter().WritePng(img.Pixels, img.Width, img.Height, comps, ms);
        return ms.ToArray();
    }

    public static void WritePng(string path, Image8 img) => AtomicFile.WriteAllBytes(path, EncodePng(img));

    /// <summary>Bilinear resize of float planes (C, H, W), pixel-centre aligned like PyTorch's align_corners=False.</summary>
    /// <summary>Image as channel planes in [0,1]; RGB averaged for one channel, grey replicated for several.</summary>
    public static float[] ToPlanes(Image8 img, int channels)
    {
        var planes = new float[channels * img.Width * img.Height];
        int hw = img.Width * img.Height;
        for (int p = 0; p < hw; p++)
            for (int c = 0; c < channels; c++)
            {
                float v;
                if (img.Channels == channels) v = img.Pixels[p * img.Channels + c];
                else if (channels == 1) { int s = 0; for (int k = 0; k < img.Channels; k++) s += img.Pixels[p * img.Channels + k]; v = (float)s / img.Channels; }
                else v = img.Pixels[p * img.Channels]; // grey image fed to a multi-channel model: replicate
                planes[c * hw + p] = v / 255f;
            }
        return planes;
    }

    public static float[] ResizeBilinear(float[] src, int channels, int h, int w, int outH, int outW)
    {
        if (h == outH && w == outW) return (float[])src.Clone();
        var dst = new float[channels * outH * outW];
        double sy = (double)h / outH, sx = (double)w / outW;
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < outH; y++)
            {
                double fy = Math.Max(0, (y + 0.5) * sy - 0.5);
                int y0 = Math.Min((int)fy, h - 1), y1 = Math.Min(y0 + 1, h - 1);
                double wy = fy - y0;
                for (int x = 0; x < outW; x++)
                {
                    double fx = Math.Max(0, (x + 0.5) * sx - 0.5);
                    int x0 = Math.Min((int)fx, w - 1), x1 = Math.Min(x0 + 1, w - 1);
                    double wx = fx - x0;
                    int b = c * h * w;
                    double v = (1 - wy) * ((1 - wx) * src[b + y0 * w + x0] + wx * src[b + y0 * w + x1])
                             + wy * ((1 - wx) * src[b + y1 * w + x0] + wx * src[b + y1 * w + x1]);
                    dst[(c * outH + y) * outW + x] = (float)v;
                }
            }
        return dst;
    }

    /// <summary>Nearest-neighbour resize for label maps (never invents label values).</summary>
    public static byte[] ResizeNearest(byte[] src, int h, int w, int outH, int outW)
    {
        if (h == outH && w == outW) return (byte[])src.Clone();
        var dst = new byte[outH * outW];
        for (int y = 0; y < outH; y++)
        {
            int sy = Math.Min(h - 1, (int)Math.Floor((y + 0.5) * h / outH));
            for (int x = 0; x < outW; x++)
                dst[y * outW + x] = src[sy * w + Math.Min(w - 1, (int)Math.Floor((x + 0.5) * w / outW))];
        }
        return dst;
    }
}

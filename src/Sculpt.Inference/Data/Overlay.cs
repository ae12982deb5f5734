namespace Sculpt.Data;

/// <summary>Pictures for people: label overlays and contact sheets.</summary>
public static class Overlay
{
    private static readonly (byte R, byte G, byte B)[] Colours =
    {
        (0, 0, 0), (255, 60, 60), (60, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255),
    };

    /// <summary>Grey image with each label tinted and its boundary drawn solid.</summary>
    public static Image8 Draw(float[] image, byte[] mask, int height, int width, double alpha = 0.35)
    {
        var px = new byte[height * width * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = y * width + x;
                double g = Math.Clamp(image[i], 0, 1) * 255;
                double r = g, gg = g, b = g;
                int label = mask[i];
                if (label > 0)
                {
                    var c = Colours[label % Colours.Length];
                    bool edge = x == 0 || y == 0 || x == width - 1 || y == height - 1 ||
                                mask[i - 1] != label || mask[i + 1] != label || mask[i - width] != label || mask[i + width] != label;
                    double a = edge ? 1.0 : alpha;
                    r = (1 - a) * r + a * c.R; gg = (1 - a) * gg + a * c.G; b = (1 - a) * b + a * c.B;
                }
                px[i * 3] = (byte)r; px[i * 3 + 1] = (byte)gg; px[i * 3 + 2] = (byte)b;
            }
        return new Image8(width, height, 3, px);
    }

    /// <summary>Tiles equally sized RGB images into a grid.</summary>
    public static Image8 Montage(IReadOnlyList<Image8> tiles, int columns, int gap = 2)
    {
        int w = tiles[0].Width, h = tiles[0].Height, rows = (tiles.Count + columns - 1) / columns;
        int W = columns * w + (columns - 1) * gap, H = rows * h + (rows - 1) * gap;
        var px = new byte[W * H * 3];
        for (int t = 0; t < tiles.Count; t++)
        {
            var tile = tiles[t];
            int ox = (t % columns) * (w + gap), oy = (t / columns) * (h + gap);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++)
                        px[((oy + y) * W + ox + x) * 3 + c] = tile.Pixels[(y * w + x) * tile.Channels + (tile.Channels == 3 ? c : 0)];
        }
        return new Image8(W, H, 3, px);
    }
}

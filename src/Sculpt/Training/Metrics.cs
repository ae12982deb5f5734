namespace Sculpt.Training;

/// <summary>Per-case overlap and boundary metrics for one label.</summary>
public readonly record struct CaseMetrics(double Dice, double IoU, double Hd95Px, bool Hd95Defined);

/// <summary>
/// Dice, IoU and HD95 on label maps. Conventions (as MONAI/medpy): both masks empty ⇒ Dice = IoU = 1 and
/// HD95 = 0; exactly one empty ⇒ Dice = IoU = 0 and HD95 undefined (reported as NaN, excluded from means
/// and counted). HD95 is the 95th percentile of the pooled symmetric surface distances (medpy's hd95),
/// surfaces being the mask pixels with a 4-neighbour outside the mask, distances Euclidean in pixels.
/// </summary>
public static class Metrics
{
    public static CaseMetrics Compute(byte[] prediction, byte[] truth, int height, int width, byte label = 1)
    {
        long inter = 0, p = 0, t = 0;
        for (int i = 0; i < truth.Length; i++)
        {
            bool a = prediction[i] == label, b = truth[i] == label;
            if (a) p++;
            if (b) t++;
            if (a && b) inter++;
        }
        if (p == 0 && t == 0) return new CaseMetrics(1, 1, 0, true);
        double dice = 2.0 * inter / (p + t), iou = (double)inter / (p + t - inter);
        if (p == 0 || t == 0) return new CaseMetrics(dice, iou, double.NaN, false);
        return new CaseMetrics(dice, iou, Hd95(prediction, truth, height, width, label), true);
    }

    public static List<(int Y, int X)> Surface(byte[] mask, int height, int width, byte label)
    {
        var s = new List<(int, int)>();
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = y * width + x;
                if (mask[i] != label) continue;
                if (x == 0 || y == 0 || x == width - 1 || y == height - 1 || mask[i - 1] != label || mask[i + 1] != label ||
                    mask[i - width] != label || mask[i + width] != label)
                    s.Add((y, x));
            }
        return s;
    }

    public static double Hd95(byte[] a, byte[] b, int height, int width, byte label = 1)
    {
        var sa = Surface(a, height, width, label);
        var sb = Surface(b, height, width, label);
        var distances = new List<double>(sa.Count + sb.Count);
        distances.AddRange(Directed(sa, b, height, width, label, sb));
        distances.AddRange(Directed(sb, a, height, width, label, sa));
        return Common.Statistics.Percentile(distances, 95);
    }

    /// <summary>For each surface point of one mask, the distance to the nearest surface point of the other (0 if it lies on it).</summary>
    private static IEnumerable<double> Directed(List<(int Y, int X)> from, byte[] other, int h, int w, byte label, List<(int Y, int X)> otherSurface)
    {
        foreach (var (y, x) in from)
        {
            long best = long.MaxValue;
            foreach (var (oy, ox) in otherSurface)
            {
                long d = (long)(oy - y) * (oy - y) + (long)(ox - x) * (ox - x);
                if (d < best) { best = d; if (d == 0) break; }
            }
            yield return Math.Sqrt(best);
        }
    }

    /// <summary>Linear-interpolated percentile, as numpy.percentile's default.</summary>
    /// <summary>Dice over the pooled pixels of many cases: 2·Σ|P∩T| / (Σ|P| + Σ|T|) (EchoNet-Dynamic's split-level Dice).</summary>
    public static double PooledDice(IEnumerable<byte[]> predictions, IEnumerable<byte[]> truths, byte label)
    {
        long inter = 0, sum = 0;
        foreach (var (p, t) in predictions.Zip(truths))
            for (int i = 0; i < p.Length; i++)
            {
                bool a = p[i] == label, b = t[i] == label;
                if (a && b) inter++;
                sum += (a ? 1 : 0) + (b ? 1 : 0);
            }
        return sum == 0 ? 1.0 : 2.0 * inter / sum;
    }
}

using Sculpt.Data;

namespace Sculpt.Training;

/// <summary>
/// Non-learned reference: smooth, Otsu-threshold the dark (blood) pixels inside the imaged sector, and take
/// the dark connected component at — or nearest to — the mean LV centre of the training masks. It shows how
/// far "darkness plus expected position" goes, i.e. how much a learned model must add.
/// </summary>
public sealed class DarkRegionBaseline
{
    private readonly double _cy, _cx;

    public DarkRegionBaseline(IReadOnlyList<Sample> train, int h, int w)
    {
        double sy = 0, sx = 0, n = 0;
        foreach (var s in train)
            for (int i = 0; i < h * w; i++)
                if (s.Mask[i] == 1) { sy += i / w; sx += i % w; n++; }
        _cy = n > 0 ? sy / n : h / 2.0; _cx = n > 0 ? sx / n : w / 2.0;
    }

    public byte[] Segment(float[] image, int h, int w)
    {
        var smooth = SyntheticEcho.GaussianBlur(image[..(h * w)], h, w, 2.0);
        var inside = new bool[h * w];
        var closed = SyntheticEcho.GaussianBlur(image[..(h * w)], h, w, 6.0);
        for (int i = 0; i < h * w; i++) inside[i] = closed[i] > 0.02;
        double t = Otsu(smooth, inside);
        var dark = new bool[h * w];
        for (int i = 0; i < h * w; i++) dark[i] = inside[i] && smooth[i] < t;

        var comp = new int[h * w];
        Array.Fill(comp, -1);
        var sizes = new List<int>(); var centres = new List<(double Y, double X)>();
        var queue = new Queue<int>();
        for (int s = 0; s < h * w; s++)
        {
            if (!dark[s] || comp[s] >= 0) continue;
            int id = sizes.Count, size = 0; double sy = 0, sx = 0;
            comp[s] = id; queue.Enqueue(s);
            while (queue.Count > 0)
            {
                int p = queue.Dequeue(); size++; sy += p / w; sx += p % w;
                int y = p / w, x = p % w;
                foreach (var q in new[] { x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1 })
                    if (q >= 0 && dark[q] && comp[q] < 0) { comp[q] = id; queue.Enqueue(q); }
            }
            sizes.Add(size); centres.Add((sy / size, sx / size));
        }
        var mask = new byte[h * w];
        if (sizes.Count == 0) return mask;
        int centrePixel = (int)Math.Round(_cy) * w + (int)Math.Round(_cx);
        int chosen = comp[centrePixel];
        if (chosen < 0 || sizes[chosen] < 30)
        {
            var candidates = Enumerable.Range(0, sizes.Count).Where(c => sizes[c] >= 30).ToList();
            if (candidates.Count == 0) return mask;
            chosen = candidates.MinBy(c => Math.Pow(centres[c].Y - _cy, 2) + Math.Pow(centres[c].X - _cx, 2));
        }
        for (int i = 0; i < h * w; i++) if (comp[i] == chosen) mask[i] = 1;
        return mask;
    }

    private static double Otsu(float[] v, bool[] use)
    {
        var hist = new double[256]; double total = 0;
        for (int i = 0; i < v.Length; i++)
            if (use[i]) { hist[Math.Clamp((int)(v[i] * 255), 0, 255)]++; total++; }
        double sumAll = 0; for (int k = 0; k < 256; k++) sumAll += k * hist[k];
        double wB = 0, sumB = 0, bestVar = -1; int best = 0;
        for (int k = 0; k < 256; k++)
        {
            wB += hist[k]; if (wB == 0) continue;
            double wF = total - wB; if (wF == 0) break;
            sumB += k * hist[k];
            double mB = sumB / wB, mF = (sumAll - sumB) / wF, between = wB * wF * (mB - mF) * (mB - mF);
            if (between > bestVar) { bestVar = between; best = k; }
        }
        return (best + 0.5) / 255.0;
    }
}

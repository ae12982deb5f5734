namespace Sculpt.Clinical;

public sealed record Beat(int EndDiastole, int EndSystole, double Edv, double Esv)
{
    public double EjectionFraction => AreaLength.EjectionFraction(Edv, Esv);
}

/// <summary>
/// End-diastole/end-systole detection on an LV volume curve: the period is estimated from the autocorrelation
/// of the curve smoothed over 3 frames, the curve is then smoothed over about a fifth of a period (3 frames
/// below a 20-frame period, 5 up to 30, …), ED frames are its largest values at least half a period apart, and
/// each ED is paired
/// with the smallest volume that follows it before the next ED (or, for the last beat, before the curve
/// rises again). EDV and ESV come from a local quadratic fit at those frames. EF is averaged over beats, as
/// EchoNet-Dynamic reports it.
/// </summary>
public static class CardiacCycle
{
    public static List<Beat> Beats(IReadOnlyList<double> volume)
    {
        int n = volume.Count;
        var beats = new List<Beat>();
        if (n < 3) return beats;
        // Diastole is a plateau: over it, frame-to-frame segmentation noise decides which frame is largest, and a
        // 3-frame average put a segmented loop's ED 3 frames early (true ED 10, a one-frame spike at 6). A window
        // of a fifth of the period averages the plateau while staying inside the shorter systolic trough.
        int period = Period(Smooth(volume, 1));
        int half = Math.Max(1, period / 10);
        var v = Smooth(volume, half);
        int minGap = Math.Max(2, period / 2);
        // ED candidates: local maxima in the upper half of the volume range (a loop that starts near ES has a
        // "maximum" at frame 0 that is no end-diastole), greedily kept from the largest down with a minimum spacing
        double low = v.Min(), high = v.Max();
        var maxima = Enumerable.Range(0, n).Where(i => (i == 0 || v[i] >= v[i - 1]) && (i == n - 1 || v[i] >= v[i + 1]) && v[i] >= low + 0.5 * (high - low))
            .OrderByDescending(i => v[i]).ToList();
        var ed = new List<int>();
        foreach (var m in maxima)
            if (ed.All(e => Math.Abs(e - m) >= minGap)) ed.Add(m);
        ed.Sort();
        double range = high - low;
        for (int k = 0; k < ed.Count; k++)
        {
            int start = ed[k], end = k + 1 < ed.Count ? ed[k + 1] : n - 1;
            if (end - start < 2) continue;
            int es = Enumerable.Range(start + 1, end - start - 1).MinBy(i => v[i]);
            // the last beat counts only when the volume really fell and rose again after ES
            bool closed = k + 1 < ed.Count || (es < n - 2 && v[n - 1] - v[es] > 0.2 * range);
            // and only when its fall is at least 30% of the loop's range: segmentation noise at the start of a loop
            // that opens just after an ES otherwise makes a shallow 2-frame "beat" (seen with EF 7% beside a 38% one)
            if (!closed || v[start] - v[es] < 0.3 * range) continue;
            beats.Add(new Beat(start, es, ExtremumVolume(volume, start, half + 1), ExtremumVolume(volume, es, half + 1)));
        }
        return beats;
    }

    /// <summary>
    /// The volume at an ED or ES frame, from a Savitzky–Golay fit (quadratic over 2·<paramref name="m"/>+1
    /// frames, 5 by default; the detector widens it with its smoothing) rather than the frame alone: one
    /// frame's segmentation noise (a 1-pixel change of the long axis moves the volume by 4% at 64 px) otherwise
    /// lands directly in the EF. A moving average would flatten the extremum itself (by about 8% of the stroke
    /// volume at a systolic trough), the quadratic fit does not. Raw value where the window leaves the loop.
    /// </summary>
    public static double ExtremumVolume(IReadOnlyList<double> volume, int i, int m = 2)
    {
        if (i < m || i + m >= volume.Count) return volume[i];
        // quadratic Savitzky–Golay smoothing weights: 3(3m² + 3m − 1 − 5k²) / ((2m+3)(2m+1)(2m−1))
        double denominator = (2 * m + 3) * (2 * m + 1) * (2 * m - 1), sum = 0;
        for (int k = -m; k <= m; k++) sum += 3.0 * (3 * m * m + 3 * m - 1 - 5 * k * k) / denominator * volume[i + k];
        return sum;
    }

    /// <summary>Centred moving average over 2·<paramref name="half"/>+1 frames (fewer at the ends).</summary>
    private static double[] Smooth(IReadOnlyList<double> x, int half)
    {
        var s = new double[x.Count];
        for (int i = 0; i < x.Count; i++)
        {
            double sum = 0; int c = 0;
            for (int j = Math.Max(0, i - half); j <= Math.Min(x.Count - 1, i + half); j++) { sum += x[j]; c++; }
            s[i] = sum / c;
        }
        return s;
    }

    /// <summary>Dominant period (frames) from the first autocorrelation peak; the whole length if none.</summary>
    public static int Period(IReadOnlyList<double> x)
    {
        int n = x.Count;
        double mean = x.Average();
        var d = x.Select(v => v - mean).ToArray();
        double zero = d.Sum(v => v * v);
        if (zero <= 0) return n;
        double Ac(int lag) { double s = 0; for (int i = 0; i + lag < n; i++) s += d[i] * d[i + lag]; return s / zero; }
        int best = -1; double bestValue = 0.1;
        for (int lag = 4; lag <= n * 2 / 3; lag++)
        {
            double a = Ac(lag);
            if (a > bestValue && a >= Ac(lag - 1) && a >= Ac(lag + 1)) { best = lag; bestValue = a; break; }
        }
        return best > 0 ? best : n;
    }
}

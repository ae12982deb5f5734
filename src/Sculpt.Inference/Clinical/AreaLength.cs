namespace Sculpt.Clinical;

/// <summary>
/// Single-plane area–length LV volume, V = 8·A² / (3·π·L), with A the cavity area and L its long-axis
/// length. L is the extent of the mask along its principal (long) axis, measured in pixels between the
/// outermost pixel edges. Units: pixels³ unless a spacing is applied by the caller.
/// </summary>
public static class AreaLength
{
    public static (double Area, double Length) Measure(byte[] mask, int height, int width, byte label = 1)
    {
        double n = 0, sx = 0, sy = 0;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                if (mask[y * width + x] == label) { n++; sx += x; sy += y; }
        if (n == 0) return (0, 0);
        double mx = sx / n, my = sy / n, cxx = 0, cyy = 0, cxy = 0;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                if (mask[y * width + x] == label)
                {
                    double dx = x - mx, dy = y - my;
                    cxx += dx * dx; cyy += dy * dy; cxy += dx * dy;
                }
        // principal eigenvector of the 2×2 covariance
        double angle = 0.5 * Math.Atan2(2 * cxy, cxx - cyy);
        double ux = Math.Cos(angle), uy = Math.Sin(angle);
        double lo = double.MaxValue, hi = double.MinValue;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                if (mask[y * width + x] == label)
                {
                    double p = (x - mx) * ux + (y - my) * uy;
                    lo = Math.Min(lo, p); hi = Math.Max(hi, p);
                }
        return (n, hi - lo + 1);
    }

    public static double Volume(double area, double length) => length <= 0 ? 0 : 8 * area * area / (3 * Math.PI * length);

    public static double Volume(byte[] mask, int height, int width, byte label = 1)
    {
        var (a, l) = Measure(mask, height, width, label);
        return Volume(a, l);
    }

    /// <summary>Ejection fraction in percent from end-diastolic and end-systolic volumes.</summary>
    public static double EjectionFraction(double edv, double esv) => edv <= 0 ? double.NaN : 100.0 * (edv - esv) / edv;
}

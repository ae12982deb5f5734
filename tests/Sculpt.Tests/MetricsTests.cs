using Sculpt.Clinical;
using Sculpt.Training;
using Xunit;

namespace Sculpt.Tests;

public class MetricsTests
{
    private static byte[] Rect(int h, int w, int y0, int x0, int y1, int x1)
    {
        var m = new byte[h * w];
        for (int y = y0; y < y1; y++) for (int x = x0; x < x1; x++) m[y * w + x] = 1;
        return m;
    }

    [Fact]
    public void DiceAndIouOnOverlappingSquares()
    {
        // 4×4 squares offset by 2 columns: overlap 4×2 = 8 pixels
        var a = Rect(10, 10, 2, 2, 6, 6);
        var b = Rect(10, 10, 2, 4, 6, 8);
        var m = Metrics.Compute(a, b, 10, 10);
        Assert.Equal(2.0 * 8 / 32, m.Dice, 12);
        Assert.Equal(8.0 / 24, m.IoU, 12);
    }

    [Fact]
    public void Hd95OfShiftedSquaresIsTheShift()
    {
        // identical 5×5 squares shifted by 3 columns: every surface distance is between 0 and 3; the
        // 95th percentile of the pooled distances, computed by hand below, must match
        var a = Rect(20, 20, 5, 5, 10, 10);
        var b = Rect(20, 20, 5, 8, 10, 13);
        var sa = Metrics.Surface(a, 20, 20, 1);
        var sb = Metrics.Surface(b, 20, 20, 1);
        Assert.Equal(16, sa.Count); // perimeter pixels of a 5×5 square
        var d = new List<double>();
        foreach (var p in sa) d.Add(sb.Min(q => Math.Sqrt((p.Y - q.Y) * (p.Y - q.Y) + (p.X - q.X) * (p.X - q.X))));
        foreach (var p in sb) d.Add(sa.Min(q => Math.Sqrt((p.Y - q.Y) * (p.Y - q.Y) + (p.X - q.X) * (p.X - q.X))));
        d.Sort();
        double pos = 0.95 * (d.Count - 1);
        double expected = d[(int)pos] + (pos - (int)pos) * (d[(int)pos + 1] - d[(int)pos]);
        Assert.Equal(expected, Metrics.Compute(a, b, 20, 20).Hd95Px, 12);
        Assert.Equal(3.0, Metrics.Compute(a, b, 20, 20).Hd95Px, 12); // left/right edges are 3 px from any surface of the other
    }

    [Fact]
    public void IdenticalMasksScorePerfectly()
    {
        var a = Rect(8, 8, 1, 1, 5, 7);
        var m = Metrics.Compute(a, a, 8, 8);
        Assert.Equal((1.0, 1.0, 0.0), (m.Dice, m.IoU, m.Hd95Px));
    }

    [Fact]
    public void EmptyMaskConventions()
    {
        var empty = new byte[64];
        var both = Metrics.Compute(empty, empty, 8, 8);
        Assert.Equal((1.0, 1.0, 0.0, true), (both.Dice, both.IoU, both.Hd95Px, both.Hd95Defined));
        var one = Metrics.Compute(empty, Rect(8, 8, 0, 0, 2, 2), 8, 8);
        Assert.Equal(0.0, one.Dice);
        Assert.Equal(0.0, one.IoU);
        Assert.False(one.Hd95Defined);
        Assert.True(double.IsNaN(one.Hd95Px));
    }

    [Fact]
    public void BootstrapCiBracketsTheMeanAndIsDeterministic()
    {
        var v = Enumerable.Range(0, 50).Select(i => i / 50.0).ToList();
        var (mean, lo, hi) = Common.Statistics.MeanCi(v, seed: 4);
        Assert.Equal(v.Average(), mean, 12);
        Assert.True(lo < mean && mean < hi);
        Assert.Equal((mean, lo, hi), Common.Statistics.MeanCi(v, seed: 4));
        // standard error of the mean ≈ 0.0408; the 95% interval is about ±1.96 SE
        Assert.InRange(hi - lo, 0.12, 0.20);
    }

    [Fact]
    public void AreaLengthVolumeOfAnAxisAlignedRectangle()
    {
        // 10 rows × 4 columns: area 40, long axis along y with extent 10 pixels
        var m = Rect(20, 20, 5, 8, 15, 12);
        var (area, length) = AreaLength.Measure(m, 20, 20);
        Assert.Equal(40, area);
        Assert.Equal(10, length, 9);
        Assert.Equal(8 * 40.0 * 40 / (3 * Math.PI * 10), AreaLength.Volume(m, 20, 20), 9);
        Assert.Equal(50.0, AreaLength.EjectionFraction(100, 50));
    }
}
